"""Guests as Ansible inventory hosts, reached over SSH through their dom0.

``guest_hosts`` turns one dom0's guest facts (the ``xen_guests_fact`` shape the
xen_guests role sets as ``xen_guests_facts``) into hosts for the inventory: each
running guest, at its static address or, when it takes its address by DHCP, at
the IPv6 link-local address its stable MAC gives it on the dom0's bridge (known
before it boots, and reachable from the dom0 whatever DHCP hands out), in the
groups ``xen_guests`` and
``xen_guests_<dom0>``, with an ``ansible_ssh_common_args`` ProxyCommand that jumps
through the dom0 as Ansible itself connects to it. ``guests_from_settings`` makes
the same facts from a raw ``xen_guests_list``, for the inventory plugin, which
runs before any host is contacted.

Guests are never jump hosts: a dom0 that is itself a guest (it has
``xen_guest_dom0``) lists no guests, and a guest never takes the name of a dom0 or
of another host the inventory already has.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_guests_plan import (
    plan_guests,
    validate_guests,
)

GROUP = "xen_guests"
DEFAULT_USER = "root"

MSG_DOM0_IS_GUEST = (
    "{dom0}: the host is itself a guest of {parent}; guests are never jump hosts, so its"
    " guests are not added to the inventory."
)
MSG_NAME_TAKEN = (
    "{dom0}: guest {name} is not added to the inventory: the inventory already has a host"
    " of that name."
)


def dom0_group(dom0_name: str) -> str:
    """The group of one dom0's guests: ``xen_guests_`` and its name, [^A-Za-z0-9_] as _."""
    return f"{GROUP}_" + re.sub(r"[^A-Za-z0-9_]", "_", dom0_name)


def _ssh_word(value: Any) -> str:
    """One user-supplied word of the jump command, as the dom0's shell must see it.

    ssh expands ``%`` tokens in a ProxyCommand before its shell runs it, so a literal
    ``%`` is written ``%%``; the shell quoting keeps spaces and ``$`` literal.
    """
    return shlex.quote(str(value).replace("%", "%%"))


def proxy_command(dom0_name: str, dom0_vars: Mapping[str, Any]) -> str:
    """The jump command through the dom0, as ssh runs it for ``-o ProxyCommand``.

    It connects as Ansible connects to the dom0: ``ansible_host`` (the inventory name
    without it), ``ansible_port``, ``ansible_user`` (root without it), the private key
    and the dom0's own ``ansible_ssh_common_args``. Host keys of a new dom0 are
    accepted on first use unless those arguments decide otherwise.
    """
    host = dom0_vars.get("ansible_host") or dom0_name
    user = dom0_vars.get("ansible_user") or DEFAULT_USER
    port = dom0_vars.get("ansible_port")
    key = dom0_vars.get("ansible_ssh_private_key_file") or dom0_vars.get("ansible_private_key_file")
    own = shlex.split(str(dom0_vars.get("ansible_ssh_common_args") or ""))
    # '[%h]:%p': brackets keep an IPv6 address (with its %bridge scope) apart from
    # the port; the quotes keep the shell from reading the brackets as a glob.
    words = ["ssh", "-W", "'[%h]:%p'", "-q"]
    if port not in (None, ""):
        words += ["-p", _ssh_word(port)]
    if key:
        words += ["-i", _ssh_word(key)]
    words += [_ssh_word(word) for word in own]
    if not any("stricthostkeychecking" in word.lower() for word in own):
        words += ["-o", "StrictHostKeyChecking=accept-new"]
    words.append(_ssh_word(f"{user}@{host}"))
    return " ".join(words)


def jump_args(dom0_name: str, dom0_vars: Mapping[str, Any]) -> str:
    """``ansible_ssh_common_args`` of a guest of this dom0: ``-o ProxyCommand="..."``.

    Ansible splits the value with shlex, so inside the double quotes only ``\\`` and
    ``"`` need a backslash.
    """
    command = proxy_command(dom0_name, dom0_vars).replace("\\", "\\\\").replace('"', '\\"')
    return f'-o ProxyCommand="{command}"'


def _address(guest: Mapping[str, Any]) -> str | None:
    address = guest.get("address") or guest.get("ipv4")
    return str(address) if address else None


def link_local(mac: str, bridge: str) -> str:
    """The IPv6 link-local address (modified EUI-64) of MAC, scoped to the dom0's BRIDGE.

    A Debian guest's kernel gives its NIC this address as soon as the link is up,
    DHCP or not; the dom0 reaches it on the bridge the NIC is on.
    """
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = ":".join(f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2))
    return f"fe80::{groups}%{bridge}"


def _select(
    dom0_name: str,
    dom0_vars: Mapping[str, Any],
    guests: list[Mapping[str, Any]],
    taken: Collection[str],
) -> tuple[list[Mapping[str, Any]], list[str]]:
    parent = dom0_vars.get("xen_guest_dom0")
    if parent:
        return [], [MSG_DOM0_IS_GUEST.format(dom0=dom0_name, parent=parent)]
    chosen: list[Mapping[str, Any]] = []
    warnings: list[str] = []
    for guest in guests:
        # A console-only guest has no SSH key to log in with.
        if guest.get("state") != "running" or not _address(guest) or guest.get("console_only"):
            continue
        name = str(guest["name"])
        if name == dom0_name or name in taken:
            warnings.append(MSG_NAME_TAKEN.format(dom0=dom0_name, name=name))
            continue
        chosen.append(guest)
    return chosen, warnings


def guest_hosts(
    dom0_name: str,
    dom0_vars: Mapping[str, Any],
    guests: list[Mapping[str, Any]],
    taken: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The inventory hosts of a dom0's running guests, at their static or link-local address.

    ``guests`` are guest facts; a guest's ``address``, when set, wins over its static
    ``ipv4``. ``taken`` are host names a guest must not take over (the dom0's own name
    never can). Each host is {"name", "groups", "vars"}; ``ansible_ssh_common_args`` is
    empty when the dom0 is the controller (``ansible_connection: local``).
    """
    chosen = _select(dom0_name, dom0_vars, guests, taken)[0]
    if not chosen:
        return []
    # A dom0 that is the controller itself (connection local) is on the guests' bridge.
    local = dom0_vars.get("ansible_connection") in ("local", "ansible.builtin.local")
    common_args = "" if local else jump_args(dom0_name, dom0_vars)
    user = dom0_vars.get("xen_guests_user") or DEFAULT_USER
    # The role installs the admin's keys in the guests: the key that reaches the
    # dom0 reaches its guests too.
    key = dom0_vars.get("ansible_ssh_private_key_file") or dom0_vars.get("ansible_private_key_file")
    hosts = []
    for guest in chosen:
        host_vars: dict[str, Any] = {
            "ansible_host": _address(guest),
            "ansible_user": str(user),
            "xen_guest_dom0": str(dom0_name),
            "xen_guest_type": None if guest.get("type") is None else str(guest["type"]),
            "ansible_ssh_common_args": common_args,
        }
        if key:
            host_vars["ansible_ssh_private_key_file"] = str(key)
        hosts.append(
            {
                "name": str(guest["name"]),
                "groups": [GROUP, dom0_group(dom0_name)],
                "vars": host_vars,
            }
        )
    return hosts


def guest_host_warnings(
    dom0_name: str,
    dom0_vars: Mapping[str, Any],
    guests: list[Mapping[str, Any]],
    taken: Collection[str] = (),
) -> list[str]:
    """Why guests that ``guest_hosts`` would otherwise list are left out, one sentence each."""
    return _select(dom0_name, dom0_vars, guests, taken)[1]


def guest_fact(guest: Mapping[str, Any]) -> dict[str, Any]:
    """One planned guest as a guest fact, like the role's ``xen_guests_fact`` filter."""
    first = (guest.get("interfaces") or [{}])[0]
    ipv4 = first.get("ipv4") or {}
    ipv6 = first.get("ipv6") or {}
    static4 = None if ipv4.get("dhcp", True) else ipv4.get("address")
    static6 = None if ipv6.get("dhcp", True) else ipv6.get("address")
    local = (
        link_local(first["mac"], first["bridge"])
        if first.get("mac") and first.get("bridge")
        else None
    )
    return {
        "name": guest["name"],
        "type": guest["type"],
        "state": guest["state"],
        "memory_mib": guest["memory_mib"],
        "vcpus": guest["vcpus"],
        "bridge": first.get("bridge"),
        "mac": first.get("mac"),
        "ipv4": static4,
        "ipv6": static6,
        "dhcp": bool(ipv4.get("dhcp")),
        "link_local": local,
        # Where the dom0 (and a jump through it) reaches the guest.
        "address": static4 or static6 or local,
        "config": guest["config_path"],
        "disks": [disk["path"] for disk in guest["disks"]],
        "console_only": bool(guest.get("console_only")),
    }


def _settings(defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """The planner's settings; the keys every guest gets are not read, so not checked."""
    return {"ssh_authorized_keys": None, **(defaults or {})}


def guests_from_settings(
    guests_list: Any, defaults: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Guest facts from a raw ``xen_guests_list``, planned without host facts.

    ``defaults`` are the planner's defaults (for example ``{"type": "hvm"}``).
    ValueError lists every problem, as ``plan_guests`` does.
    """
    return [guest_fact(guest) for guest in plan_guests(guests_list, {}, _settings(defaults))]


def valid_guests_from_settings(
    guests_list: Any, defaults: Mapping[str, Any] | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The facts of the guests whose settings are valid, and every problem of the list.

    Guests are taken in order; one is left out when adding it to those taken so far
    makes the list invalid, so of two guests that share a name or an address the
    first stays.
    """
    problems = validate_guests(guests_list, {}, _settings(defaults))
    if not problems:
        return guests_from_settings(guests_list, defaults), []
    if not isinstance(guests_list, list):
        return [], problems
    kept: list[Any] = []
    for entry in guests_list:
        if not validate_guests([*kept, entry], {}, _settings(defaults)):
            kept.append(entry)
    return guests_from_settings(kept, defaults), problems
