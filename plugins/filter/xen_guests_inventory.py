"""Jinja filters for playbooks/guests.yml: the guests a dom0 runs, as hosts for add_host."""

from collections.abc import Callable, Collection, Mapping
from typing import Any

from ansible.utils.display import Display

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_guests_inventory import (
    GROUP,
    guest_host_warnings,
    guest_hosts,
)

_display = Display()


def _not_guests(dom0_hostvars: Mapping[str, Any]) -> set[str]:
    """Hosts of the inventory that are not guests: a guest never takes over one of them."""
    groups = dom0_hostvars.get("groups") or {}
    return set(groups.get("all") or []) - set(groups.get(GROUP) or [])


def xen_guests_inventory_hosts(
    guest_facts: list[Mapping[str, Any]] | None,
    dom0_name: str,
    dom0_hostvars: Mapping[str, Any],
    taken: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """{"name", "groups", "vars"} of each running guest of one dom0 that has an address.

    ``guest_facts`` is the role's ``xen_guests_facts``, ``dom0_hostvars`` the dom0's
    ``hostvars`` entry (its connection variables, ``xen_guests_user`` and ``groups``).
    ``taken``: host names a guest must not take; by default every host that is not in
    the group xen_guests. Guests left out for their name are warned about.
    """
    facts = list(guest_facts or [])
    if taken is None:
        taken = _not_guests(dom0_hostvars)
    for warning in guest_host_warnings(dom0_name, dom0_hostvars, facts, taken):
        _display.warning(warning)
    return guest_hosts(dom0_name, dom0_hostvars, facts, taken)


def xen_guests_inventory_batch(
    dom0_names: list[str], hostvars: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """``xen_guests_inventory_hosts`` of every dom0 in ``dom0_names``, as one list.

    add_host runs once per batch, not once per host: looping over this list adds the
    guests of every dom0 of the batch (``ansible_play_batch``). A guest name that an
    earlier dom0 of the batch, or another dom0 in the inventory, already uses stays
    with that dom0.
    """
    hosts: list[dict[str, Any]] = []
    for dom0 in map(str, dom0_names):
        dom0_hostvars = hostvars[dom0]
        guests = set((dom0_hostvars.get("groups") or {}).get(GROUP) or [])
        others = {
            guest for guest in guests if hostvars[guest].get("xen_guest_dom0") not in (None, dom0)
        }
        taken = _not_guests(dom0_hostvars) | others | {host["name"] for host in hosts}
        hosts += xen_guests_inventory_hosts(
            dom0_hostvars.get("xen_guests_facts"), dom0, dom0_hostvars, taken
        )
    return hosts


class FilterModule:
    """xen_guests inventory filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "xen_guests_inventory_hosts": xen_guests_inventory_hosts,
            "xen_guests_inventory_batch": xen_guests_inventory_batch,
        }
