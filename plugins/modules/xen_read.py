#!/usr/bin/python
# Copyright: xen-lab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module xen_read: a role's reads of a host in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_read
short_description: Read files, paths, folders, commands, packages and units in one run
description:
  - Answers all of a role's reads of a host in one module run, instead of one
    C(stat), C(slurp), C(find) or C(command) task each. On a dom0 every module
    run starts Python on the host, which is most of what a no-op run costs.
  - Never changes anything and never fails on what it finds. A missing file,
    folder, program or package is an answer, not an error; the role decides.
  - A command (or the C(dpkg-query) and C(systemctl) runs of I(packages) and I(units))
    still running after I(timeout) seconds is killed, and the module fails with a
    message that names it, for example C(xl info timed out after 60 s).
  - Runs in check mode too, with the same answers.
version_added: "1.0.0"
author:
  - xen-lab maintainers (!UNKNOWN)
options:
  paths:
    description: Paths whose kind, mode and owner are returned; a final link is not followed.
    type: list
    elements: path
    default: []
  files:
    description: Files returned with their content as text (UTF-8, undecodable bytes replaced).
    type: list
    elements: path
    default: []
  raw_files:
    description: Files returned with their content base64-encoded, for binary content.
    type: list
    elements: path
    default: []
  dirs:
    description: Folders whose regular files (not recursive) are listed by full path.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Folder path.
        type: path
        required: true
      patterns:
        description: Shell patterns a file's name must match (any of them).
        type: list
        elements: str
        default: ["*"]
      hidden:
        description: Whether names starting with a dot are listed.
        type: bool
        default: false
      read:
        description: Whether each file's content is returned, as in I(files).
        type: bool
        default: false
  commands:
    description:
      - Read-only commands by name, each an argument list, run without a shell.
      - A program that does not exist gives rc 127.
    type: dict
    default: {}
  packages:
    description: Debian packages whose installed version is returned (empty when not installed).
    type: list
    elements: str
    default: []
  units:
    description: systemd units whose ActiveState is returned.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds each command may take.
    type: int
    default: 60
notes:
  - Supports check mode; it reads the same way in both.
"""

EXAMPLES = r"""
- name: Host's Xen state is read
  xen_lab.dom0.xen_read:
    files: [/proc/xen/capabilities, /boot/grub/grub.cfg]
    commands:
      xl_info: [xl, info]
    packages: [xen-system-amd64]
  register: host

- name: Xen runs
  ansible.builtin.assert:
    that: "'control_d' in host.files['/proc/xen/capabilities'].content | default('')"
"""

RETURN = r"""
paths:
  description:
    - For each of I(paths), C(exists) and, when it exists, C(isdir), C(isreg),
      C(islnk), C(mode), C(uid) and C(gid).
  returned: always
  type: dict
  sample:
    /sbin/ifup: {exists: true, isreg: true, mode: "0755", uid: 0, gid: 0}
files:
  description: For each of I(files), what RV(paths) gives, C(readable) and C(content) (or C(error)).
  returned: always
  type: dict
raw_files:
  description: Like RV(files), with C(content_b64) instead of C(content).
  returned: always
  type: dict
dirs:
  description: For each folder, C(exists) and C(files) by full path, as in RV(paths) or RV(files).
  returned: always
  type: dict
commands:
  description: For each command, C(rc), C(stdout) and C(stderr).
  returned: always
  type: dict
  sample: {xl_info: {rc: 0, stdout: "host : dom0\n", stderr: ""}}
packages:
  description: Installed version of each package, or an empty string.
  returned: always
  type: dict
  sample: {xen-system-amd64: "4.20.0+68-g35cb38b222-1", qemu-utils: ""}
units:
  description: ActiveState of each unit (C(inactive) for a unit that does not exist).
  returned: always
  type: dict
  sample: {NetworkManager.service: inactive}
"""

# Ansible modules keep their imports below the documentation blocks.
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_command, xen_read

_PATHS = {"type": "list", "elements": "path", "default": []}
ARGUMENT_SPEC = {
    "paths": _PATHS,
    "files": _PATHS,
    "raw_files": _PATHS,
    "dirs": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "path": {"type": "path", "required": True},
            "patterns": {"type": "list", "elements": "str", "default": ["*"]},
            "hidden": {"type": "bool", "default": False},
            "read": {"type": "bool", "default": False},
        },
    },
    "commands": {"type": "dict", "default": {}},
    "packages": {"type": "list", "elements": "str", "default": []},
    "units": {"type": "list", "elements": "str", "default": []},
    "timeout": {"type": "int", "default": xen_read.COMMAND_TIMEOUT},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    bad = [name for name, argv in module.params["commands"].items() if not isinstance(argv, list)]
    if bad:
        module.fail_json(msg=f"commands must be argument lists: {', '.join(sorted(bad))}")
    try:
        answers = xen_read.read(module.params)
    except xen_command.CommandTimeout as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **answers)


if __name__ == "__main__":
    main()
