# Copyright: xen-lab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory plugin ``xen_guests``: the guests of the Xen dom0s, reached through their dom0."""

# Ansible plugins keep their imports below the documentation blocks.
# ruff: noqa: E402
from __future__ import annotations

DOCUMENTATION = r"""
name: xen_guests
short_description: Guests of the Xen dom0s, from each dom0's xen_guests_list
description:
  - Adds the guests that the xen_guests role runs on each host of O(dom0_group) as
    inventory hosts, in the groups C(xen_guests) and C(xen_guests_<dom0>) (the dom0's
    inventory name with every character other than letters, digits and C(_) as C(_)).
  - Each guest gets C(ansible_host) (its address), C(ansible_user) (the dom0's
    C(xen_guests_user), C(root) without it), C(xen_guest_dom0), C(xen_guest_type) and
    C(ansible_ssh_common_args) with a C(ProxyCommand) that jumps through the dom0 the way
    Ansible reaches the dom0 (its C(ansible_host), C(ansible_port), C(ansible_user), private
    key and C(ansible_ssh_common_args)); without a jump when the dom0 has
    C(ansible_connection=local). Guests are never used as jump hosts.
  - The dom0's variables are read as a play sees them - host and group variables of the
    sources before this one plus C(host_vars/) and C(group_vars/) (every vars plugin) - but
    only C(xen_guests_list), C(xen_guests_user), C(xen_guests_default_type), the settings
    that decide the bridge of an interface that names none (C(xen_guests_default_bridge),
    else the xen_network role's C(xen_network_default_bridge) and C(xen_network_bridges),
    as the xen_guests role reads them) and the connection variables. A
    C(xen_guests_list) that is a Jinja template is skipped with a warning; the bridge
    settings, connection variables and C(xen_guests_user) that are templates are evaluated
    with the dom0's variables.
  - Running guests are listed at the static IPv4 address of their first interface, else at
    its static IPv6 address, else - the guest takes its address by DHCP - at the IPv6
    link-local address of the first NIC's stable MAC on its bridge (for example
    C(fe80::216:3eff:fe12:3456%xenbr0) for MAC C(00:16:3e:12:34:56) on C(xenbr0)), which
    the jump through the dom0 reaches whatever address DHCP handed out; Debian guests
    configure that address on every NIC as the link comes up. Stopped guests, guests
    without an interface and guests with C(console_only) (they have no SSH key) are not
    listed.
  - Guests whose settings are invalid, and guests named like a host the inventory already
    has, are left out with a warning that names the dom0; the rest of the inventory stands.
  - The plugin reads the hosts of the sources parsed before it. In an inventory directory,
    name its file so it sorts after the others, for example C(zz-guests.xen_guests.yml).
  - The source file name must end in C(xen_guests.yml) or C(xen_guests.yaml).
options:
  plugin:
    description: Marks the file as a source for this plugin.
    required: true
    type: str
    choices: [xen_lab.dom0.xen_guests]
  dom0_group:
    description: The inventory group whose hosts are the dom0s.
    type: str
    default: xen_dom0s
extends_documentation_fragment:
  - constructed
notes:
  - O(compose), O(groups) and O(keyed_groups) apply to the guest hosts and see the
    variables this plugin sets on them.
"""

EXAMPLES = r"""
# inventory/<yours>/zz-guests.xen_guests.yml: sorts after hosts.yml, so the dom0s exist.
plugin: xen_lab.dom0.xen_guests
---
# The dom0s are the group hypervisors; guests are also grouped by type
# (xen_guest_type_pv, xen_guest_type_pvh, xen_guest_type_hvm).
plugin: xen_lab.dom0.xen_guests
dom0_group: hypervisors
keyed_groups:
  - prefix: xen_guest_type
    key: xen_guest_type
"""

from typing import Any

from ansible.inventory.helpers import get_group_vars, sort_groups
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.utils.vars import combine_vars
from ansible.vars.plugins import get_vars_from_inventory_sources

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_guests_inventory import (
    guest_host_warnings,
    guest_hosts,
    valid_guests_from_settings,
)
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_guests_plan import default_bridge

# The dom0's variables that say how Ansible reaches it, and the guests' login user.
CONNECTION_VARS = (
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_ssh_common_args",
    "ansible_connection",
    "xen_guests_user",
    "xen_guest_dom0",
)
# The dom0's variables that decide the bridge of a guest interface that names none.
BRIDGE_VARS = ("xen_guests_default_bridge", "xen_network_default_bridge", "xen_network_bridges")


class InventoryModule(BaseInventoryPlugin, Constructable):
    """Guests of the dom0s of the inventory so far."""

    NAME = "xen_lab.dom0.xen_guests"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("xen_guests.yml", "xen_guests.yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        group_name = self.get_option("dom0_group")
        group = self.inventory.groups.get(group_name)
        if group is None:
            self.display.warning(
                f"xen_guests inventory {path}: no group {group_name} in the sources before it;"
                " name the file so it sorts after them (zz-guests.xen_guests.yml)."
            )
            return
        # Every source so far; the vars plugins read group_vars/ and host_vars/ next to them.
        sources = list(dict.fromkeys([*self.inventory.processed_sources, path]))
        # Hosts the guests must not take over: the dom0s and whatever other sources listed.
        taken = set(self.inventory.hosts)
        strict = self.get_option("strict")
        for dom0 in sorted(host.name for host in group.get_hosts()):
            try:
                hosts = self._guests_of(dom0, sources, taken)
            except Exception as exc:  # one dom0's odd settings never sink the inventory
                self.display.warning(
                    f"xen_guests inventory, dom0 {dom0}: its guests are not added: {exc}"
                )
                continue
            for guest in hosts:
                taken.add(self._add_guest(guest, strict))

    def _add_guest(self, guest: dict[str, Any], strict: bool) -> str:
        """One guest host with its groups and variables, then compose and the groups options."""
        name = self.inventory.add_host(guest["name"])
        for group_name in guest["groups"]:
            self.inventory.add_child(self.inventory.add_group(group_name), name)
        for key, value in guest["vars"].items():
            self.inventory.set_variable(name, key, value)
        variables = dict(guest["vars"])
        self._set_composite_vars(self.get_option("compose"), variables, name, strict)
        self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict)
        return name

    def _dom0_vars(self, dom0: str, sources: list[str]) -> dict[str, Any]:
        """The dom0's variables as a play sees them, without templating."""
        host = self.inventory.hosts[dom0]
        groups = host.get_groups()
        everyone = self.inventory.groups.get("all")
        if everyone is not None and everyone not in groups:
            groups = [everyone, *groups]
        groups = sort_groups(groups)
        group_vars = combine_vars(
            get_group_vars(groups),
            get_vars_from_inventory_sources(self.loader, sources, groups, "all"),
        )
        host_vars = combine_vars(
            host.get_vars(), get_vars_from_inventory_sources(self.loader, sources, [host], "all")
        )
        return combine_vars(combine_vars(group_vars, host_vars), self._vars or {})

    def _guests_of(self, dom0: str, sources: list[str], taken: set[str]) -> list[dict[str, Any]]:
        """The guest hosts of one dom0; what is left out, and why, is a warning."""
        dom0_vars = self._dom0_vars(dom0, sources)
        settings = dom0_vars.get("xen_guests_list") or []
        if self.templar.is_possibly_template(settings):
            self.display.warning(
                f"xen_guests inventory, dom0 {dom0}: xen_guests_list is a Jinja template, which"
                " the inventory does not evaluate; its guests are not added."
            )
            return []
        defaults: dict[str, Any] = {}
        default_type = dom0_vars.get("xen_guests_default_type")
        if isinstance(default_type, str) and not self.templar.is_possibly_template(default_type):
            defaults["type"] = str(default_type)
        # As the role does: no xen_network_facts yet, the network role's settings instead.
        bridge = self._templated(dom0, dom0_vars, BRIDGE_VARS)
        defaults["bridge"] = default_bridge(
            bridge.get("xen_guests_default_bridge") or "",
            None,
            bridge.get("xen_network_default_bridge") or "",
            bridge.get("xen_network_bridges"),
        )
        facts, problems = valid_guests_from_settings(settings, defaults)
        if problems:
            self.display.warning(
                f"xen_guests inventory, dom0 {dom0}: guests with invalid settings are not"
                " added:\n" + "\n".join(f"- {problem}" for problem in problems)
            )
        if not facts:
            return []
        connection = self._templated(dom0, dom0_vars, CONNECTION_VARS)
        for warning in guest_host_warnings(dom0, connection, facts, taken):
            self.display.warning(f"xen_guests inventory, dom0 {warning}")
        return guest_hosts(dom0, connection, facts, taken)

    def _templated(
        self, dom0: str, dom0_vars: dict[str, Any], keys: tuple[str, ...]
    ) -> dict[str, Any]:
        """The dom0's variables KEYS that are set, templates evaluated with its variables."""
        templar = self.templar.copy_with_new_env(
            available_variables={**dom0_vars, "inventory_hostname": dom0}
        )
        return {
            key: templar.template(dom0_vars[key]) for key in keys if dom0_vars.get(key) is not None
        }
