#!/usr/bin/python
# Copyright: xen-lab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module xen_domain: start, stop and restart Xen guests from their xl.cfg files."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_domain
short_description: Bring Xen domains to the wanted run state with xl
description:
  - Reads the host once with C(xl list -l) and C(xl list), then creates, shuts down,
    destroys or restarts each listed domain so that its run state matches I(state).
  - Creates a domain with C(xl create -p <config>), never attaching a console; its
    standard input is C(/dev/null). All domains the call starts are made paused and
    unpaused together at the end, so that no guest boots while the hotplug scripts of
    the next one run (on a slow dom0, libxl's hotplug timeout would kill them). Domains
    already made are unpaused even when a later step fails.
  - A create whose device hotplug script still ran out of libxl's time is tried once
    more after 15 seconds.
  - A paused domain that should run is unpaused.
  - Shuts a domain down gracefully with C(xl shutdown -F) (HVM guests without PV
    drivers get an ACPI power button press) and destroys it with C(xl destroy) when
    it is still running after I(shutdown_timeout) seconds.
  - A running domain whose memory, maxmem or vCPU count differs from its config
    file needs a restart to pick up the change. The module restarts it only with
    I(allow_restart); otherwise it reports C(restart_needed).
  - Every C(xl) call has a deadline - I(create_timeout) for C(xl create),
    I(shutdown_timeout) for C(xl destroy), 60 seconds for the calls that only read or
    ask (C(xl list), C(xl shutdown), C(xl unpause)). A call still running then is killed
    and the module fails with a message that names it, for example
    C(xl create -p /etc/xen/web1.cfg timed out after 120 s).
  - Writing, validating and removing the config files is the calling role's job.
version_added: "1.0.0"
author:
  - xen-lab maintainers (!UNKNOWN)
options:
  domains:
    description: The domains to manage, each by name and config file.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Domain name, as in the config file's C(name=).
        type: str
        required: true
      config:
        description:
          - Path of the domain's xl.cfg file on the host.
          - Required when I(state=running).
        type: path
      state:
        description:
          - C(running) creates the domain when it is not running.
          - C(stopped) and C(absent) shut it down; the module treats them alike,
            the role keeps or removes the files.
        type: str
        choices: [running, stopped, absent]
        default: running
      restart:
        description:
          - Restart this domain even when its size is unchanged, for example
            because its config file changed. Needs I(allow_restart).
        type: bool
        default: false
  shutdown_timeout:
    description:
      - Seconds to wait for a graceful shutdown before C(xl destroy).
      - Also the time C(xl destroy) itself may take.
    type: int
    default: 120
  create_timeout:
    description:
      - Seconds C(xl create) of one domain may take, its device hotplug scripts included.
      - A PV guest's create takes about 30 seconds on an emulated dom0.
    type: int
    default: 120
  allow_restart:
    description:
      - Consent to restart running domains that need it. Without it the module
        reports C(restart_needed) and leaves them running.
    type: bool
    default: false
notes:
  - Supports check mode; it reports what it would do and reads no config file
    that does not exist yet.
  - Needs root on a Xen dom0 with C(xl) in the path.
"""

EXAMPLES = r"""
- name: Guests run as configured
  xen_lab.dom0.xen_domain:
    domains:
      - name: web1
        config: /etc/xen/web1.cfg
      - name: db1
        config: /etc/xen/db1.cfg
        state: stopped

- name: Guests whose config changed run with the new config
  xen_lab.dom0.xen_domain:
    domains: "{{ changed_guests | map('combine', {'restart': true}) }}"
    allow_restart: true
    shutdown_timeout: 300
"""

RETURN = r"""
changed:
  description: Whether any domain was, or in check mode would be, acted on.
  returned: always
  type: bool
domains:
  description: One result per requested domain, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
      sample: web1
    action:
      description:
        - What was done, or would be done in check mode.
        - C(create), C(shutdown) (graceful, then destroy after the timeout),
          C(destroy) (remains of a shut down, crashed or dying domain),
          C(restart) (shutdown then create), C(recreate) (destroy remains, then
          create), C(unpause) (a paused domain that should run) or C(none).
      type: str
      sample: create
    changed:
      description: Whether this domain was acted on.
      type: bool
    restart_needed:
      description: The domain runs with a size or config that only a restart applies.
      type: bool
    differences:
      description: What differs between the running domain and its config file.
      type: list
      elements: str
      sample: ["memory 512 MiB -> 1024 MiB"]
    run_state:
      description: State before the module acted, from C(xl list).
      type: str
      sample: running
    forced:
      description: The graceful shutdown timed out and the domain was destroyed.
      type: bool
"""

# Ansible modules keep their imports below the documentation blocks.
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_command
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_domain_state as ds

MSG_NO_CONFIG = "Domain {name}: config is required with state running."
MSG_CONFIG_MISSING = "Domain {name}: config file {config} does not exist."

ARGUMENT_SPEC = {
    "domains": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "name": {"type": "str", "required": True},
            "config": {"type": "path"},
            "state": {
                "type": "str",
                "choices": ["running", "stopped", "absent"],
                "default": "running",
            },
            "restart": {"type": "bool", "default": False},
        },
    },
    "shutdown_timeout": {"type": "int", "default": 120},
    "create_timeout": {"type": "int", "default": ds.CREATE_TIMEOUT},
    "allow_restart": {"type": "bool", "default": False},
}


def _stdin_from_devnull() -> None:
    """xl and what it forks must never read the module's stdin (the SSH channel)."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    _stdin_from_devnull()
    xl = module.get_bin_path("xl", required=True)

    create_timeout = module.params["create_timeout"]
    shutdown_timeout = module.params["shutdown_timeout"]

    def run(args: list[str]) -> tuple[int, str, str]:
        """One xl call; CommandTimeout (a RuntimeError) names it when it hangs."""
        return xen_command.run(args, ds.xl_timeout(args, create_timeout, shutdown_timeout))

    outputs = []
    for command in ([xl, "list", "-l"], [xl, "list"]):
        try:
            rc, out, err = run(command)
        except xen_command.CommandTimeout as exc:
            module.fail_json(msg=str(exc))
        if rc != 0:
            module.fail_json(msg=f"{' '.join(command)} failed with exit code {rc}: {err.strip()}")
        outputs.append(out)
    try:
        current = ds.current_domains(*outputs)
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    wanted = []
    for item in module.params["domains"]:
        want = dict(item)
        config = item.get("config")
        if item["state"] == ds.RUNNING:
            if not config:
                module.fail_json(msg=MSG_NO_CONFIG.format(name=item["name"]))
            if os.path.exists(config):
                with open(config, encoding="utf-8") as handle:
                    want.update(ds.wanted_config(ds.parse_xl_cfg(handle.read())))
            elif not module.check_mode:
                module.fail_json(msg=MSG_CONFIG_MISSING.format(name=item["name"], config=config))
        wanted.append(want)

    try:
        results = ds.plan_actions(current, wanted, module.params["allow_restart"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    if module.check_mode:
        done = [{**result, "forced": False} for result in results]
    else:
        try:
            done = ds.apply_all(results, xl, run, shutdown_timeout)
        except ds.ApplyError as exc:
            module.fail_json(msg=str(exc), domains=exc.done)

    module.exit_json(changed=any(r["changed"] for r in done), domains=done)


if __name__ == "__main__":
    main()
