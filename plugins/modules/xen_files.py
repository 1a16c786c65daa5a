#!/usr/bin/python
# Copyright: xen-lab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module xen_files: many folders, files, copies and links in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_files
short_description: Bring many folders, files, copies and links to their wanted state at once
description:
  - Writes a whole set of files (a guest set's xl configs, cloud-init seed
    files and scripts; a network plan's staged ifupdown files), makes their
    folders, copies kernels and sets links in one module
    run, instead of one run per file. On a dom0 each module run starts Python
    on the host, which is most of what a no-op run of a large guest set costs.
  - Steps run in this order; the first that cannot be done fails the module
    and names its path. Folders, files, copies, links, removals.
  - A file is written to a temporary file beside its destination, validated
    there when I(validate) is set, then renamed into place. A file that fails
    validation is never written, and neither is one whose validate command runs
    longer than I(validate_timeout) seconds; that command is killed, and the
    module fails naming it.
  - Everything is owned by the user the module runs as (root on a dom0).
version_added: "1.0.0"
author:
  - xen-lab maintainers (!UNKNOWN)
options:
  directories:
    description: Folders that must exist, created with their parents.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Folder path.
        type: path
        required: true
      mode:
        description: Permissions, as an octal string.
        type: str
        required: true
  files:
    description: Files with their full content; their changes are shown with C(--diff).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: File path. Its folder must exist, or be listed in I(directories).
        type: path
        required: true
      content:
        description: The whole content.
        type: str
        required: true
      mode:
        description: Permissions, as an octal string.
        type: str
        required: true
      validate:
        description: Command that checks the new content before it is used; C(%s) is its path.
        type: str
  secret_files:
    description:
      - Like I(files), for content that may hold secrets (cloud-init user-data).
      - Their content never appears in the module's output or in C(--diff).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: File path.
        type: path
        required: true
      content:
        description: The whole content.
        type: str
        required: true
      mode:
        description: Permissions, as an octal string.
        type: str
        required: true
      validate:
        description: Command that checks the new content before it is used; C(%s) is its path.
        type: str
  copies:
    description:
      - Files copied on the host, once. A destination that exists is kept even
        when its source changed; only its permissions are set.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: Source file on the host.
        type: path
        required: true
      dest:
        description: Destination file.
        type: path
        required: true
      mode:
        description: Permissions, as an octal string.
        type: str
        required: true
  links:
    description: Symbolic links; a link pointing elsewhere is replaced, any other file is an error.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: What the link points to.
        type: path
        required: true
      dest:
        description: The link's path.
        type: path
        required: true
  absent:
    description: Paths that must not exist; folders are removed with their content.
    type: list
    elements: path
    default: []
  probe:
    description: Paths whose existence is reported in RV(exists), read before anything changes.
    type: list
    elements: path
    default: []
  lock:
    description:
      - A lock file to hold (C(flock), exclusive) while the module works, created if missing.
      - When another process holds it, the module fails at once with I(lock_message)
        and changes nothing.
    type: path
  lock_message:
    description: What the failure says when I(lock) is held by another process.
    type: str
    default: another run is changing these files; nothing was changed
  validate_timeout:
    description: Seconds each I(validate) command may take, such as C(xl -N create %s).
    type: int
    default: 60
notes:
  - Supports check mode and diff mode. In check mode nothing is validated,
    and a copy whose source does not exist yet is reported as a change.
"""

EXAMPLES = r"""
- name: Guest configs and their folders are in place
  xen_lab.dom0.xen_files:
    directories:
      - path: /var/lib/xen/seeds/web1
        mode: "0700"
    files:
      - path: /etc/xen/web1.cfg
        content: "{{ lookup('ansible.builtin.template', 'pv.cfg.j2') }}"
        mode: "0644"
        validate: xl -N create %s
    links:
      - src: /etc/xen/web1.cfg
        dest: /etc/xen/auto/web1.cfg
"""

RETURN = r"""
changed_paths:
  description: Paths that were changed, or would be in check mode, in the order of the steps.
  returned: always
  type: list
  elements: str
  sample: [/etc/xen/web1.cfg]
exists:
  description: For each path of I(probe), whether it existed before the module changed anything.
  returned: always
  type: dict
  sample: {/var/lib/xen/seeds/web1/seed.iso: true}
"""

# Ansible modules keep their imports below the documentation blocks.
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_files


def _entries(**options: dict[str, object]) -> dict[str, object]:
    return {"type": "list", "elements": "dict", "default": [], "options": options}


_REQUIRED_PATH = {"type": "path", "required": True}
_REQUIRED_STR = {"type": "str", "required": True}
_FILE = {
    "path": _REQUIRED_PATH,
    "content": _REQUIRED_STR,
    "mode": _REQUIRED_STR,
    "validate": {"type": "str"},
}
ARGUMENT_SPEC = {
    "directories": _entries(path=_REQUIRED_PATH, mode=_REQUIRED_STR),
    "files": _entries(**_FILE),
    # The list is not a secret itself; the content of each entry is.
    "secret_files": {
        **_entries(**{**_FILE, "content": {"type": "str", "required": True, "no_log": True}}),
        "no_log": False,
    },
    "copies": _entries(src=_REQUIRED_PATH, dest=_REQUIRED_PATH, mode=_REQUIRED_STR),
    "links": _entries(src=_REQUIRED_PATH, dest=_REQUIRED_PATH),
    "absent": {"type": "list", "elements": "path", "default": []},
    "probe": {"type": "list", "elements": "path", "default": []},
    "lock": {"type": "path"},
    "lock_message": {
        "type": "str",
        "default": "another run is changing these files; nothing was changed",
    },
    "validate_timeout": {"type": "int", "default": xen_files.VALIDATE_TIMEOUT},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def run(argv: list[str]) -> tuple[int, str]:
        return xen_files.run_validate(argv, module.params["validate_timeout"])

    steps = {
        name: module.params[name]
        for name in ARGUMENT_SPEC
        if not name.startswith("lock") and name != "validate_timeout"
    }
    try:
        with xen_files.hold(module.params["lock"], module.params["lock_message"]):
            result = xen_files.apply(**steps, check=module.check_mode, run=run)
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    output: dict[str, object] = {
        "changed": bool(result.changed),
        "changed_paths": result.changed,
        "exists": result.exists,
    }
    if module._diff and result.diff:
        output["diff"] = result.diff
    module.exit_json(**output)


if __name__ == "__main__":
    main()
