"""The xen_network role's plan: validated bridges, the ifupdown files that build
them, and the interfaces a change takes down and brings up.

``plan`` turns the role's settings, a few host facts and the text of the host's
ifupdown files into either a list of errors, one sentence each, or:

- ``files``: the complete new content of /etc/network/interfaces and of every
  /etc/network/interfaces.d/xen-<bridge> file the role owns;
- ``remove``: owned files of bridges that are no longer wanted;
- ``down`` / ``up``: the interfaces whose definition changes, in the order the
  apply script takes them down (old configuration) and up (new configuration);
- ``manifest``: all of that as the apply script reads it.

Nothing here touches a host; the role feeds it what it read and writes what it
returns.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_ifupdown import (
    INTERFACES,
    INTERFACES_D,
    ParsedFile,
    Stanza,
    definitions,
    load_config,
    sourced_paths,
)

OWNED_MARKER = "# Managed by the xen_network role (Ansible); edits here are overwritten."
PORT_NOTE = "# xen_network: port of {bridge}; its addresses are on the bridge."
_PORT_NOTE_RE = re.compile(r"# xen_network: port of \S+; its addresses are on the bridge\.")
# A port must not get IPv6 addresses of its own (SLAAC would give it the
# bridge's, as they share the MAC). Before the link comes up: no link-local
# address (addrgenmode none, as bridge-utils sets once the link is up) and no
# router advertisements, which would still give it a SLAAC address. At boot
# `allow-hotplug` brings the NIC up before networking.service makes it a port,
# and a router that advertised in that window (QEMU's user network did)
# left it with a global address in the lab.
PORT_IPV6_OFF = (
    "    pre-up ip link set dev {nic} addrgenmode none"
    " && echo 0 > /proc/sys/net/ipv6/conf/{nic}/accept_ra"
)
# Also the line of earlier versions (addrgenmode only), which this one replaces.
_PORT_IPV6_OFF_RE = re.compile(
    r"    pre-up ip link set dev (\S+) addrgenmode none"
    r"( && echo 0 > /proc/sys/net/ipv6/conf/\1/accept_ra)?"
)
FILE_PREFIX = "xen-"
SOURCE_ALL = "source /etc/network/interfaces.d/*"
SOURCE_OURS = "source /etc/network/interfaces.d/xen-*"
SOURCE_COMMENT = "# Bridges for Xen guests (xen_network role):"

BRIDGE_KEYS = ("name", "ports", "primary", "vlan", "bond", "ipv4", "ipv6", "stp", "fd")
BOND_KEYS = ("name", "mode", "miimon")
IP_KEYS = ("method", "address", "gateway", "dns")
IPV4_METHODS = ("inherit", "dhcp", "static", "manual")
IPV6_METHODS = ("inherit", "auto", "dhcp", "static", "manual")
BOND_MODES = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)
# Kernel interface names: at most 15 bytes (IFNAMSIZ - 1). The role allows the
# characters real NIC names use; bridges and bonds take no dot, because
# ifupdown reads "name.N" as VLAN N over "name".
MAX_NAME = 15
_PORT_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_LINK_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")

# Options of a NIC's stanza that describe its addresses (and the hooks that
# usually go with them): they move to the bridge that takes the NIC over. The
# rest (mtu, hwaddress, bond-*, ethtool settings, ...) stays on the NIC.
_MOVED_OPTIONS = frozenset(
    [
        "address",
        "netmask",
        "broadcast",
        "network",
        "gateway",
        "pointopoint",
        "metric",
        "scope",
        "hostname",
        "leasehours",
        "leasetime",
        "vendor",
        "client",
        "request-prefix",
        "accept-ra",
        "autoconf",
        "privext",
        "dhcp",
        "preferred-lifetime",
        "dad-attempts",
        "dad-interval",
        "ll-attempts",
        "ll-interval",
        "media",
        "pre-up",
        "up",
        "post-up",
        "down",
        "pre-down",
        "post-down",
    ]
)

MSG_MANAGED_BY = (
    "This host's network is managed by {manager} ({evidence}), not by ifupdown. The "
    "xen_network role writes ifupdown configuration only and has changed nothing; build the "
    "bridges with {manager}, or move the host to ifupdown first."
)
MSG_NO_IFUPDOWN = (
    "ifupdown is not installed (no /sbin/ifup) or /etc/network/interfaces is missing. The "
    "xen_network role builds bridges with ifupdown only and has changed nothing."
)
MSG_NOT_A_LIST = "xen_network_bridges must be a list of bridges (dicts), not {value!r}."
MSG_NOT_A_DICT = "xen_network_bridges item {index} is {value!r}: each bridge is a dict with a name."
MSG_UNKNOWN_KEY = "{where}: unknown key {key!r}; the known keys are {known}."
MSG_NAME_MISSING = "xen_network_bridges item {index} has no name."
MSG_NAME_LONG = "{what} {name!r} is {length} characters long; interface names have at most 15."
MSG_NAME_CHARS = "{what} {name!r} is not a usable interface name: use {allowed} only."
MSG_NAME_DUPLICATE = (
    "Bridge {name} is defined {count} times in xen_network_bridges; names must be unique."
)
MSG_NAME_TAKEN = (
    "Bridge {name}: {name} is already a {kind} interface on this host; choose another name."
)
MSG_PORTS_NOT_LIST = "Bridge {bridge}: ports must be a list of interface names, not {value!r}."
MSG_PORT_TWICE = (
    "Interface {port} is claimed by both bridge {first} and bridge {second}; an interface can"
    " serve one bridge only."
)
MSG_PORT_IS_BRIDGE = (
    "Bridge {bridge}: port {port} is a bridge of xen_network_bridges itself; bridges cannot "
    "be nested."
)
MSG_PORT_MISSING = (
    "Bridge {bridge}: interface {port} does not exist on this host (it has {existing})."
)
MSG_PORT_NOT_NIC = "Bridge {bridge}: {port} is a {kind} interface and cannot be a bridge port."
MSG_PRIMARY_TWICE = (
    "Bridges {names} all set primary: true; only one bridge can take over the primary NIC."
)
MSG_PRIMARY_VLAN = (
    "Bridge {bridge}: primary: true takes over the NIC itself and cannot be combined with vlan."
)
MSG_NO_PRIMARY = (
    "Bridge {bridge} takes over the primary NIC, but the host has no default route to find it "
    "by; set xen_network_primary_nic."
)
MSG_PRIMARY_AMBIGUOUS = (
    "The default route goes through bridge {holder}, which has the ports {ports}; set "
    "xen_network_primary_nic to the NIC bridge {bridge} should take over."
)
MSG_NOT_BOOL = "Bridge {bridge}: {key} must be true or false, not {value!r}."
MSG_VLAN_NOT_INT = "Bridge {bridge}: vlan must be a number from 1 to 4094, not {value!r}."
MSG_VLAN_RANGE = "Bridge {bridge}: VLAN {vlan} is outside 1-4094."
MSG_VLAN_NO_PARENT = "Bridge {bridge}: vlan {vlan} needs its parent NIC (or a bond) in ports."
MSG_VLAN_TWICE = (
    "Bridge {bridge}: port {port} already names a VLAN; drop the vlan key or the .N suffix."
)
MSG_FD = (
    "Bridge {bridge}: fd (forward delay) must be a whole number of seconds from 0 to 30, not "
    "{value!r}."
)
MSG_BOND_NOT_DICT = "Bridge {bridge}: bond must be a dict with a name, not {value!r}."
MSG_BOND_NAME = "Bridge {bridge}: bond needs a name, such as bond0."
MSG_BOND_FEW = "Bridge {bridge}: a bond needs at least two NICs in ports; it has {count}."
MSG_BOND_MODE = "Bridge {bridge}: bond mode {mode!r} is unknown; use one of {modes}."
MSG_BOND_MIIMON = "Bridge {bridge}: bond miimon must be a number of milliseconds, not {value!r}."
MSG_BOND_TAKEN = "Bridge {bridge}: bond name {name} is already a {kind} interface on this host."
MSG_IP_NOT_DICT = (
    "Bridge {bridge}: {family} must be a dict such as {{method: dhcp}}, not {value!r}."
)
MSG_METHOD = "Bridge {bridge}: {family}.method {method!r} is unknown; use one of {methods}."
MSG_ADDRESS_MISSING = (
    "Bridge {bridge}: {family}.method static needs {family}.address, such as {example}."
)
MSG_ONLY_STATIC = (
    "Bridge {bridge}: {family}.{key} is used with method static only (the method is {method})."
)
MSG_ADDRESS_INVALID = (
    "Bridge {bridge}: {family}.address {address!r} is not an {version} address with a prefix, "
    "such as {example}."
)
MSG_ADDRESS_NOT_HOST = (
    "Bridge {bridge}: {family}.address {address} is the {which} address of {network}; use a host "
    "address."
)
MSG_GATEWAY_INVALID = "Bridge {bridge}: {family}.gateway {gateway!r} is not an {version} address."
MSG_GATEWAY_OUTSIDE = (
    "Bridge {bridge}: {family}.gateway {gateway} is outside {network}, the subnet of {address}."
)
MSG_GATEWAY_IS_SELF = "Bridge {bridge}: {family}.gateway {gateway} is the bridge's own address."
MSG_DNS_INVALID = (
    "Bridge {bridge}: {family}.dns must be a list of IP addresses; {value!r} is not one."
)
MSG_TWO_GATEWAYS = (
    "Bridges {first} and {second} both have an {family} gateway, but a host has one default route; "
    "keep the gateway on one bridge."
)
MSG_INHERIT_NONE = (
    "Bridge {bridge}: ipv4.method inherit found no addressing for {nic}: no 'iface {nic} inet' "
    "stanza and no bridge holding {nic} in {files}; set ipv4 explicitly."
)
MSG_INHERIT_NO_PORT = (
    "Bridge {bridge}: {family}.method inherit needs a port (or primary: true) to inherit from."
)
MSG_PORT_ELSEWHERE = (
    "Interface {port} is configured in {path}, which the xen_network role does not edit; move its "
    "stanza into /etc/network/interfaces or remove it."
)
MSG_LINK_ELSEWHERE = (
    "{name} is already configured in {path}, which the xen_network role does not edit; remove that "
    "stanza or choose another name."
)
MSG_PORT_FOREIGN_BRIDGE = (
    "Interface {port} is a port of bridge {holder} in {path}; remove that bridge's stanza first "
    "(bridge {bridge} can carry its addresses)."
)
MSG_FOREIGN_FILE = (
    "{path} exists but was not written by the xen_network role; move it away or rename the bridge."
)
MSG_CONFIRM_TIMEOUT = (
    "xen_network_confirm_timeout is {value}: give the controller {low} to {high} seconds to"
    " reach the host again (a fresh SSH connection takes a few seconds, more on a busy network)."
)
CONFIRM_TIMEOUT_RANGE = (30, 3600)
MSG_DEFAULT_BRIDGE = (
    "xen_network_default_bridge is {name!r}, which is not in xen_network_bridges ({names})."
)

# What the apply script reports in its state file, and what the role makes of it.
MSG_ROLLED_BACK_TIMEOUT = (
    "The new network configuration was rolled back because the controller could not reach the "
    "host within {timeout} s; previous configuration restored. The host log is "
    "/var/log/xen-network-apply.log."
)
MSG_ROLLED_BACK_IFUP = (
    "The new network configuration was rolled back because `ifup {iface}` failed on the host; "
    "previous configuration restored. The host log is /var/log/xen-network-apply.log."
)
MSG_ROLLED_BACK_INSTALL = (
    "The new network configuration was rolled back because {path} could not be installed on the "
    "host; previous configuration restored. The host log is /var/log/xen-network-apply.log."
)
MSG_ROLLED_BACK_INTERRUPTED = (
    "The new network configuration was rolled back because its apply script on the host was "
    "{how} before the change was confirmed; previous configuration restored. The host log is "
    "/var/log/xen-network-apply.log."
)
MSG_ROLLBACK_FAILED = (
    "The new network configuration was NOT confirmed ({reason}) and the host could NOT fully "
    "restore the previous one: {left}. The change stays recorded in "
    "/var/lib/xen-network/pending, and xen-network-guard.service restores the remaining files "
    "at the next boot; check the host's console and /var/log/xen-network-apply.log."
)
MSG_APPLY_FAILED = (
    "The network change was not applied ({reason}); the previous configuration is in place. The "
    "host log is /var/log/xen-network-apply.log."
)
MSG_UNREACHABLE = (
    "The host did not answer within {seconds} s after the network change. Unless it was "
    "confirmed, the host restores its previous configuration by itself {timeout} s after the new "
    "one came up; check its console and /var/log/xen-network-apply.log."
)


@dataclass
class Bridge:
    """One validated entry of xen_network_bridges, and what the role derives from it."""

    name: str
    nics: list[str]
    primary: bool
    vlan: int | None
    bond: dict[str, Any] | None
    ipv4: dict[str, Any]
    ipv6: dict[str, Any] | None
    stp: bool
    fd: int
    ports: list[str] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)

    @property
    def claims(self) -> list[str]:
        """Interfaces this bridge uses: its ports, the NICs it takes over, its bond."""
        names = self.ports + self.consumed + ([self.bond["name"]] if self.bond else [])
        return list(dict.fromkeys(names))

    @property
    def path(self) -> str:
        return f"{INTERFACES_D}/{FILE_PREFIX}{self.name}"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+", value.strip()):
        return int(value)
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
        return value.lower() in ("true", "yes")
    return None


def _name_errors(what: str, name: str, pattern: re.Pattern[str], allowed: str) -> list[str]:
    errors = []
    if len(name) > MAX_NAME:
        errors.append(MSG_NAME_LONG.format(what=what, name=name, length=len(name)))
    if not pattern.fullmatch(name) or name in (".", ".."):
        errors.append(MSG_NAME_CHARS.format(what=what, name=name, allowed=allowed))
    return errors


def _link_name_errors(what: str, name: str) -> list[str]:
    return _name_errors(what, name, _LINK_NAME_RE, "letters, digits, '-' and '_'")


def _port_name_errors(bridge: str, name: str) -> list[str]:
    errors = _name_errors(
        f"Bridge {bridge}: port", name, _PORT_NAME_RE, "letters, digits, '.', '-' and '_'"
    )
    if not errors and "." in name:
        vlan = _as_int(name.rsplit(".", 1)[1])
        if vlan is None or not 1 <= vlan <= 4094:
            errors.append(MSG_VLAN_RANGE.format(bridge=bridge, vlan=name.rsplit(".", 1)[1]))
    return errors


def _unknown_keys(where: str, raw: dict[str, Any], known: tuple[str, ...]) -> list[str]:
    return [
        MSG_UNKNOWN_KEY.format(where=where, key=key, known=", ".join(known))
        for key in raw
        if key not in known
    ]


def _check_ip(
    bridge: str, family: str, raw: Any, primary: bool
) -> tuple[dict[str, Any] | None, list[str]]:
    """Validate ipv4 or ipv6 settings; None (no settings) gives the default method."""
    v6 = family == "ipv6"
    version, example = ("IPv6", "2001:db8::1/64") if v6 else ("IPv4", "198.51.100.1/24")
    methods = IPV6_METHODS if v6 else IPV4_METHODS
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [MSG_IP_NOT_DICT.format(bridge=bridge, family=family, value=raw)]
    errors = _unknown_keys(f"Bridge {bridge} {family}", raw, IP_KEYS)
    default = "static" if raw.get("address") else "inherit" if primary else "manual"
    method = str(raw.get("method") or default)
    if v6 and not raw and not primary:
        return None, errors
    if method not in methods:
        methods_text = ", ".join(methods)
        return None, [
            *errors,
            MSG_METHOD.format(bridge=bridge, family=family, method=method, methods=methods_text),
        ]
    out: dict[str, Any] = {"method": method}
    if method != "static":
        for key in ("address", "gateway", "dns"):
            if raw.get(key):
                errors.append(
                    MSG_ONLY_STATIC.format(bridge=bridge, family=family, key=key, method=method)
                )
        return out, errors
    address = str(raw.get("address") or "")
    if not address:
        return None, [
            *errors,
            MSG_ADDRESS_MISSING.format(bridge=bridge, family=family, example=example),
        ]
    try:
        if "/" not in address:
            raise ValueError(address)
        iface = ipaddress.ip_interface(address)
        if iface.version != (6 if v6 else 4):
            raise ValueError(address)
    except ValueError:
        errors.append(
            MSG_ADDRESS_INVALID.format(
                bridge=bridge, family=family, address=address, version=version, example=example
            )
        )
        return None, errors
    network = iface.network
    if not v6 and network.prefixlen <= 30:
        which = {network.network_address: "network", network.broadcast_address: "broadcast"}
        if iface.ip in which:
            errors.append(
                MSG_ADDRESS_NOT_HOST.format(
                    bridge=bridge,
                    family=family,
                    address=address,
                    which=which[iface.ip],
                    network=network,
                )
            )
    out["address"] = str(iface.with_prefixlen)
    gateway = raw.get("gateway")
    if gateway:
        try:
            gw = ipaddress.ip_address(str(gateway))
            if gw.version != iface.version:
                raise ValueError(gateway)
        except ValueError:
            errors.append(
                MSG_GATEWAY_INVALID.format(
                    bridge=bridge, family=family, gateway=gateway, version=version
                )
            )
        else:
            if gw == iface.ip:
                errors.append(MSG_GATEWAY_IS_SELF.format(bridge=bridge, family=family, gateway=gw))
            elif gw not in network and not (v6 and gw.is_link_local):
                errors.append(
                    MSG_GATEWAY_OUTSIDE.format(
                        bridge=bridge, family=family, gateway=gw, network=network, address=address
                    )
                )
            out["gateway"] = str(gw)
    dns = raw.get("dns") or []
    if isinstance(dns, str):
        dns = [dns]
    for server in dns:
        try:
            ipaddress.ip_address(str(server))
        except ValueError:
            errors.append(MSG_DNS_INVALID.format(bridge=bridge, family=family, value=server))
    out["dns"] = [str(server) for server in dns]
    return out, errors


def _check_bond(bridge: str, raw: Any) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [MSG_BOND_NOT_DICT.format(bridge=bridge, value=raw)]
    errors = _unknown_keys(f"Bridge {bridge} bond", raw, BOND_KEYS)
    name = str(raw.get("name") or "")
    if not name:
        return None, [*errors, MSG_BOND_NAME.format(bridge=bridge)]
    errors += _link_name_errors(f"Bridge {bridge}: bond", name)
    mode = str(raw.get("mode") or "active-backup")
    if mode not in BOND_MODES:
        errors.append(MSG_BOND_MODE.format(bridge=bridge, mode=mode, modes=", ".join(BOND_MODES)))
    miimon = _as_int(raw.get("miimon", 100))
    if miimon is None:
        errors.append(MSG_BOND_MIIMON.format(bridge=bridge, value=raw.get("miimon")))
    return {"name": name, "mode": mode, "miimon": miimon}, errors


def _check_bridge(index: int, raw: Any) -> tuple[Bridge | None, list[str]]:
    """Shape and values of one bridge, without looking at the host."""
    if not isinstance(raw, dict):
        return None, [MSG_NOT_A_DICT.format(index=index + 1, value=raw)]
    name = str(raw.get("name") or "")
    if not name:
        return None, [MSG_NAME_MISSING.format(index=index + 1)]
    errors = _unknown_keys(f"Bridge {name}", raw, BRIDGE_KEYS)
    errors += _link_name_errors("Bridge name", name)
    ports = raw.get("ports") or []
    if not isinstance(ports, list) or not all(isinstance(port, str) for port in ports):
        errors.append(MSG_PORTS_NOT_LIST.format(bridge=name, value=ports))
        ports = []
    for port in ports:
        errors += _port_name_errors(name, port)
    flags = {}
    for key in ("primary", "stp"):
        flags[key] = _as_bool(raw.get(key, False))
        if flags[key] is None:
            errors.append(MSG_NOT_BOOL.format(bridge=name, key=key, value=raw.get(key)))
    primary = bool(flags["primary"])
    fd = _as_int(raw.get("fd", 0))
    if fd is None or not 0 <= fd <= 30:
        errors.append(MSG_FD.format(bridge=name, value=raw.get("fd")))
    vlan = None
    if raw.get("vlan") is not None:
        vlan = _as_int(raw["vlan"])
        if vlan is None:
            errors.append(MSG_VLAN_NOT_INT.format(bridge=name, value=raw["vlan"]))
        elif not 1 <= vlan <= 4094:
            errors.append(MSG_VLAN_RANGE.format(bridge=name, vlan=vlan))
            vlan = None
        elif primary:
            errors.append(MSG_PRIMARY_VLAN.format(bridge=name))
        for port in ports:
            if "." in port:
                errors.append(MSG_VLAN_TWICE.format(bridge=name, port=port))
    bond = None
    if raw.get("bond") is not None:
        bond, bond_errors = _check_bond(name, raw["bond"])
        errors += bond_errors
    ipv4, v4_errors = _check_ip(name, "ipv4", raw.get("ipv4"), primary)
    ipv6, v6_errors = _check_ip(name, "ipv6", raw.get("ipv6"), primary)
    errors += v4_errors + v6_errors
    if errors or ipv4 is None:
        return None, errors
    return (
        Bridge(
            name=name,
            nics=list(dict.fromkeys(ports)),
            primary=primary,
            vlan=vlan,
            bond=bond,
            ipv4=ipv4,
            ipv6=ipv6,
            stp=bool(flags["stp"]),
            fd=fd or 0,
        ),
        [],
    )


def host_interfaces(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Interfaces from Ansible's facts: name -> {type, ports} (ports of a bridge)."""
    out: dict[str, dict[str, Any]] = {}
    for name in facts.get("interfaces") or []:
        info = facts.get(name.replace("-", "_")) or facts.get(name) or {}
        out[name] = {
            "type": info.get("type", "unknown"),
            "ports": sorted(info.get("interfaces") or []),
        }
    return out


def manager_errors(managers: dict[str, Any]) -> list[str]:
    """A host that NetworkManager, systemd-networkd or netplan runs is not ours to change."""
    errors = []
    if managers.get("networkmanager"):
        errors.append(
            MSG_MANAGED_BY.format(
                manager="NetworkManager", evidence="NetworkManager.service is running"
            )
        )
    if managers.get("networkd"):
        errors.append(
            MSG_MANAGED_BY.format(
                manager="systemd-networkd", evidence="systemd-networkd.service is running"
            )
        )
    if managers.get("netplan"):
        errors.append(
            MSG_MANAGED_BY.format(
                manager="netplan", evidence=", ".join(sorted(managers["netplan"])) + " exists"
            )
        )
    if not errors and not managers.get("ifupdown", True):
        errors.append(MSG_NO_IFUPDOWN)
    return errors


def _owned(content: str) -> bool:
    return content.split("\n", 1)[0] == OWNED_MARKER


def _primary_nic(
    bridge: Bridge,
    settings: dict[str, Any],
    host: dict[str, Any],
    stanzas: list[Stanza],
) -> tuple[str | None, str | None]:
    """The NIC behind the default route, seen through a bridge that already holds it."""
    chosen = str(settings.get("primary_nic") or "")
    if chosen:
        return chosen, None
    default = str(host.get("default_interface") or "")
    if not default:
        return None, MSG_NO_PRIMARY.format(bridge=bridge.name)
    ports: list[str] | None = None
    for stanza in stanzas:
        if stanza.name == default and stanza.values("bridge-ports"):
            ports = [p for p in stanza.values("bridge-ports") if p != "none"]
            break
    info = host.get("interfaces", {}).get(default, {})
    if ports is None and info.get("type") == "bridge":
        ports = list(info.get("ports") or [])
    if ports is None:
        return default, None
    if len(ports) == 1:
        return _bond_member(ports[0], bridge, stanzas), None
    return None, MSG_PRIMARY_AMBIGUOUS.format(
        holder=default, ports=", ".join(ports) or "none", bridge=bridge.name
    )


def _bond_member(port: str, bridge: Bridge, stanzas: list[Stanza]) -> str:
    """A bond that is the bridge's port stands for its first member, the NIC whose MAC it
    carries: the NIC behind the default route on the run that built it."""
    members: list[str] = []
    for stanza in stanzas:
        if stanza.name == port and stanza.values("bond-slaves"):
            members = [m for m in stanza.values("bond-slaves") if m != "none"]
            break
    wanted = [m for m in members if m in bridge.nics]
    return (wanted or members or [port])[0]


def _derive(bridge: Bridge) -> None:
    """Ports the bridge gets, and the NICs whose own stanza it takes over."""
    trunk = [bridge.bond["name"]] if bridge.bond else list(bridge.nics)
    bridge.ports = [f"{t}.{bridge.vlan}" for t in trunk] if bridge.vlan else trunk
    if bridge.bond or not bridge.vlan:
        bridge.consumed = list(bridge.nics)


def _exists(name: str, interfaces: dict[str, Any]) -> bool:
    """A NIC exists, or it is a VLAN whose parent exists (ifupdown creates it)."""
    return name in interfaces or ("." in name and name.rsplit(".", 1)[0] in interfaces)


def _inherited(
    nic: str, family: str, stanzas: list[Stanza]
) -> list[tuple[str, list[tuple[str, str]]]] | None:
    """(method, options) of every stanza that addresses `nic` now, for one family.

    A bridge that already holds the NIC (from an earlier run, or the admin's),
    directly or through a bond, is followed, so a second run inherits what the
    first one wrote.
    """
    bonds = [s.name for s in stanzas if nic in s.values("bond-slaves")]
    held = {nic, *bonds}
    holders = [s for s in stanzas if held & set(s.values("bridge-ports"))]
    if holders:
        source = [s for s in stanzas if s.name == holders[0].name and s.family == family]
        return [
            (s.method, [(o.key, o.value) for o in s.options if not o.norm.startswith("bridge-")])
            for s in source
        ] or None
    source = [s for s in stanzas if s.name == nic and s.family == family]
    return [
        (
            s.method,
            [
                (o.key, o.value)
                for o in s.options
                if o.norm in _MOVED_OPTIONS or o.norm.startswith("dns-")
            ],
        )
        for s in source
    ] or None


def _explicit(ip: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    options: list[tuple[str, str]] = []
    if ip.get("address"):
        options.append(("address", ip["address"]))
    if ip.get("gateway"):
        options.append(("gateway", ip["gateway"]))
    if ip.get("dns"):
        options.append(("dns-nameservers", " ".join(ip["dns"])))
    return [(ip["method"], options)]


def render_bridge(
    bridge: Bridge,
    ipv4: list[tuple[str, list[tuple[str, str]]]],
    ipv6: list[tuple[str, list[tuple[str, str]]]],
) -> str:
    """The interfaces.d file of one bridge: its bond if any, then the bridge."""
    what = f"over {', '.join(bridge.ports)}" if bridge.ports else "host-only (no ports)"
    lines = [OWNED_MARKER, f"# Bridge {bridge.name} for Xen guests, {what}."]
    if bridge.bond:
        lines += [
            "",
            f"auto {bridge.bond['name']}",
            f"iface {bridge.bond['name']} inet manual",
            f"    bond-slaves {' '.join(bridge.nics)}",
            f"    bond-mode {bridge.bond['mode']}",
            f"    bond-miimon {bridge.bond['miimon']}",
        ]
    bridge_options = [f"    bridge_ports {' '.join(bridge.ports) or 'none'}"]
    if bridge.ports:
        # Keep the first port's MAC (a VLAN's parent's): a DHCP server then
        # gives the bridge the address the NIC had.
        bridge_options.append(f"    bridge_hw {bridge.ports[0].split('.')[0]}")
    bridge_options += [
        f"    bridge_stp {'on' if bridge.stp else 'off'}",
        f"    bridge_fd {bridge.fd}",
        "    bridge_waitport 0",
    ]
    lines += ["", f"auto {bridge.name}"]
    for index, (method, options) in enumerate(ipv4):
        if index:
            lines.append("")
        lines.append(f"iface {bridge.name} inet {method}")
        if index == 0:
            lines += bridge_options
        lines += [f"    {key} {value}".rstrip() for key, value in options]
    for method, options in ipv6:
        lines += ["", f"iface {bridge.name} inet6 {method}"]
        lines += [f"    {key} {value}".rstrip() for key, value in options]
    return "\n".join(lines) + "\n"


def render_interfaces(
    parsed: ParsedFile,
    ports: dict[str, str],
    adopted: set[str],
    source_line: str | None,
) -> str:
    """/etc/network/interfaces with the bridges' NICs set to `inet manual`.

    `ports` maps each NIC the bridges take over to its bridge; `adopted` names
    bridges and bonds whose old stanzas here move into the role's own files.
    Every other line stays as it is.
    """
    lines = parsed.lines
    drop: set[int] = set()
    insert: dict[int, list[str]] = {}
    replace: dict[int, str] = {}
    for index, line in enumerate(lines):
        if _PORT_NOTE_RE.fullmatch(line.strip()) or _PORT_IPV6_OFF_RE.fullmatch(line):
            drop.add(index)
    for mark in parsed.marks:
        kept = [name for name in mark.names if name not in adopted]
        if kept != mark.names:
            if kept:
                replace[mark.line] = " ".join([mark.kind, *kept])
            else:
                drop.add(mark.line)
    for stanza in parsed.stanzas:
        if stanza.name in adopted:
            drop.update(range(stanza.first, stanza.end))
    for nic, bridge in ports.items():
        own = [s for s in parsed.stanzas if s.name == nic]
        if not own:
            continue
        # The stanza is written anew: hooks (pre-up, our own line of an earlier
        # run among them) and addresses are moved options, which stay off it.
        kept: list[str] = []
        for stanza in own:
            drop.update(range(stanza.first, stanza.end))
            if stanza.family == "inet":
                for option in stanza.options:
                    if option.norm not in _MOVED_OPTIONS and not option.norm.startswith("dns-"):
                        kept += lines[option.first : option.end]
        insert[own[0].first] = [
            PORT_NOTE.format(bridge=bridge),
            f"iface {nic} inet manual",
            PORT_IPV6_OFF.format(nic=nic),
            *kept,
        ]
    out: list[str] = []
    for index, line in enumerate(lines):
        out += insert.get(index, [])
        if index in replace:
            out.append(replace[index])
        elif index not in drop:
            out.append(line)
    if source_line:
        while out and not out[-1].strip():
            out.pop()
        out += ["", SOURCE_COMMENT, source_line]
    return "\n".join(out) + "\n"


def _kind(name: str, stanzas: list[Stanza]) -> int:
    """Bring-up order: plain NICs, VLANs, bonds, then bridges (down is the reverse)."""
    own = [s for s in stanzas if s.name == name]
    if any(s.values("bridge-ports") for s in own):
        return 3
    if any(s.values("bond-slaves") or s.values("bond-mode") for s in own):
        return 2
    return 1 if "." in name else 0


def _all_stanzas(config: list[ParsedFile]) -> list[Stanza]:
    return [s for parsed in config for s in parsed.stanzas]


def render_manifest(result: dict[str, Any]) -> str:
    """What the apply script does, one instruction a line."""
    lines = ["# xen-network-apply manifest, written by the xen_network role"]
    for path in sorted(result["files"]):
        lines.append(f"file {posixpath.basename(path)} {path}")
    lines += [f"remove {path}" for path in result["remove"]]
    lines += [f"down {name}" for name in result["down"]]
    lines += [f"up {name}" for name in result["up"]]
    lines += [f"created {name}" for name in result["created"]]
    return "\n".join(lines) + "\n"


def _empty(errors: list[str]) -> dict[str, Any]:
    return {
        "errors": errors,
        "bridges": [],
        "default_bridge": "",
        "primary_nic": "",
        "packages": [],
        "files": {},
        "remove": [],
        "down": [],
        "up": [],
        "created": [],
        "manifest": "",
    }


def _check_settings(raw_bridges: Any) -> tuple[list[Bridge], list[str]]:
    """Each bridge on its own, then names that must be unique across them."""
    if raw_bridges is None:
        raw_bridges = []
    if not isinstance(raw_bridges, list):
        return [], [MSG_NOT_A_LIST.format(value=raw_bridges)]
    bridges: list[Bridge] = []
    errors: list[str] = []
    for index, raw in enumerate(raw_bridges):
        bridge, bridge_errors = _check_bridge(index, raw)
        errors += bridge_errors
        if bridge:
            bridges.append(bridge)
    names = [b.get("name") for b in raw_bridges if isinstance(b, dict) and b.get("name")]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            errors.append(MSG_NAME_DUPLICATE.format(name=name, count=names.count(name)))
    primaries = [b.name for b in bridges if b.primary]
    if len(primaries) > 1:
        errors.append(MSG_PRIMARY_TWICE.format(names=", ".join(primaries)))
    return bridges, errors


def _resolve_ports(
    bridges: list[Bridge], settings: dict[str, Any], host: dict[str, Any], stanzas: list[Stanza]
) -> tuple[str, list[str]]:
    """Find the primary NIC, derive every bridge's ports, and check who claims what."""
    errors: list[str] = []
    primary_nic = ""
    primaries = [b for b in bridges if b.primary]
    for bridge in bridges:
        if bridge.primary and len(primaries) == 1:
            nic, error = _primary_nic(bridge, settings, host, stanzas)
            if error:
                errors.append(error)
            elif nic:
                primary_nic = nic
                bridge.nics = list(dict.fromkeys([nic, *bridge.nics]))
        _derive(bridge)
    bridge_names = {b.name for b in bridges}
    claimed: dict[str, str] = {}
    for bridge in bridges:
        if bridge.bond and len(bridge.nics) < 2:
            errors.append(MSG_BOND_FEW.format(bridge=bridge.name, count=len(bridge.nics)))
        if bridge.vlan and not bridge.nics:
            errors.append(MSG_VLAN_NO_PARENT.format(bridge=bridge.name, vlan=bridge.vlan))
        for family, ip in (("ipv4", bridge.ipv4), ("ipv6", bridge.ipv6)):
            if ip and ip["method"] == "inherit" and not bridge.nics and not bridge.primary:
                errors.append(MSG_INHERIT_NO_PORT.format(bridge=bridge.name, family=family))
        for name in bridge.claims:
            if name in bridge_names:
                errors.append(MSG_PORT_IS_BRIDGE.format(bridge=bridge.name, port=name))
            elif name in claimed and claimed[name] != bridge.name:
                errors.append(
                    MSG_PORT_TWICE.format(port=name, first=claimed[name], second=bridge.name)
                )
            claimed.setdefault(name, bridge.name)
    return primary_nic, errors


def _check_host(bridges: list[Bridge], interfaces: dict[str, Any]) -> list[str]:
    """Ports exist on the host; the role's names do not clash with other interfaces."""
    errors: list[str] = []
    bridge_names = {b.name for b in bridges}
    existing = ", ".join(sorted(n for n in interfaces if n != "lo")) or "none"
    for bridge in bridges:
        kind = interfaces.get(bridge.name, {}).get("type")
        if kind and kind != "bridge":
            errors.append(MSG_NAME_TAKEN.format(name=bridge.name, kind=kind))
        if bridge.bond:
            kind = interfaces.get(bridge.bond["name"], {}).get("type")
            if kind and kind != "bonding":
                errors.append(
                    MSG_BOND_TAKEN.format(bridge=bridge.name, name=bridge.bond["name"], kind=kind)
                )
        for nic in bridge.nics:
            if nic in bridge_names:
                continue
            if not _exists(nic, interfaces):
                errors.append(
                    MSG_PORT_MISSING.format(bridge=bridge.name, port=nic, existing=existing)
                )
            elif interfaces.get(nic, {}).get("type") in ("loopback", "bridge"):
                kind = interfaces[nic]["type"]
                errors.append(MSG_PORT_NOT_NIC.format(bridge=bridge.name, port=nic, kind=kind))
    return errors


def _check_files(
    bridges: list[Bridge], files: dict[str, str], stanzas: list[Stanza], owned: set[str]
) -> list[str]:
    """Nothing the role takes over is defined in a file it does not edit."""
    errors: list[str] = []
    own_links = _own_links(bridges)
    foreign = [s for s in stanzas if s.path != INTERFACES and s.path not in owned]
    for bridge in bridges:
        if bridge.path in files and bridge.path not in owned:
            errors.append(MSG_FOREIGN_FILE.format(path=bridge.path))
        for name in bridge.consumed:
            hit = next((s for s in foreign if s.name == name), None)
            if hit:
                errors.append(MSG_PORT_ELSEWHERE.format(port=name, path=hit.path))
        for name in [bridge.name] + ([bridge.bond["name"]] if bridge.bond else []):
            hit = next((s for s in foreign if s.name == name), None)
            if hit:
                errors.append(MSG_LINK_ELSEWHERE.format(name=name, path=hit.path))
        for name in bridge.claims:
            hit = next(
                (
                    s
                    for s in stanzas
                    if s.name not in own_links
                    and s.path not in owned
                    and name in s.values("bridge-ports")
                ),
                None,
            )
            if hit:
                errors.append(
                    MSG_PORT_FOREIGN_BRIDGE.format(
                        port=name, holder=hit.name, path=hit.path, bridge=bridge.name
                    )
                )
    return errors


def _own_links(bridges: list[Bridge]) -> set[str]:
    """Interfaces the role's files define: the bridges and their bonds."""
    return {b.name for b in bridges} | {b.bond["name"] for b in bridges if b.bond}


Addressing = list[tuple[str, list[tuple[str, str]]]]


def _addressing(
    bridges: list[Bridge], config: list[ParsedFile]
) -> tuple[dict[str, tuple[Addressing, Addressing]], list[str]]:
    """Each bridge's inet and inet6 stanzas: explicit, or inherited from its first NIC."""
    errors: list[str] = []
    stanzas = _all_stanzas(config)
    out: dict[str, tuple[Addressing, Addressing]] = {}
    for bridge in bridges:
        families: list[Addressing] = []
        for family, ip in (("inet", bridge.ipv4), ("inet6", bridge.ipv6)):
            if ip is None:
                families.append([])
            elif ip["method"] == "inherit":
                found = _inherited(bridge.nics[0], family, stanzas)
                if found is None and family == "inet":
                    errors.append(
                        MSG_INHERIT_NONE.format(
                            bridge=bridge.name,
                            nic=bridge.nics[0],
                            files=", ".join(p.path for p in config),
                        )
                    )
                families.append(found or [])
            else:
                families.append(_explicit(ip))
        out[bridge.name] = (families[0] or [("manual", [])], families[1])
    for index, label in ((0, "IPv4"), (1, "IPv6")):
        with_gateway = [
            b.name
            for b in bridges
            if any(
                key.lower() == "gateway"
                for _method, options in out[b.name][index]
                for key, _value in options
            )
        ]
        if len(with_gateway) > 1:
            errors.append(
                MSG_TWO_GATEWAYS.format(first=with_gateway[0], second=with_gateway[1], family=label)
            )
    return out, errors


def _changes(
    old: list[ParsedFile], new: list[ParsedFile], own_links: set[str]
) -> tuple[list[str], list[str], list[str]]:
    """Interfaces to take down (old definitions), to bring up (new ones), and new links."""
    old_defs, new_defs = definitions(old), definitions(new)
    old_stanzas, new_stanzas = _all_stanzas(old), _all_stanzas(new)
    changed = {
        n for n in set(old_defs) | set(new_defs) if n != "lo" and old_defs.get(n) != new_defs.get(n)
    }
    # Taking a bridge or NIC down sets its links down (bridge-utils does so to
    # a bridge's ports), which silently breaks an unchanged bridge on the same
    # NIC, such as one over a VLAN of it: that bridge goes down and up too.
    ports: dict[str, set[str]] = {}
    for stanza in old_stanzas + new_stanzas:
        ports.setdefault(stanza.name, set()).update(
            p for p in stanza.values("bridge-ports") if p != "none"
        )
    touched: set[str] = set()
    while True:
        for name in changed:
            touched |= {name} | ports.get(name, set())
        touched |= {t.split(".")[0] for t in touched}
        more = {
            bridge
            for bridge, members in ports.items()
            if bridge not in changed
            and any(p in touched or p.split(".")[0] in touched for p in members)
        }
        if not more:
            break
        changed |= more

    def order(stanzas: list[Stanza], name: str) -> tuple[int, int]:
        first = next((i for i, s in enumerate(stanzas) if s.name == name), 0)
        return _kind(name, stanzas), first

    # ifdown needs a stanza; ifup needs one and an auto/allow-* mark, as at boot.
    down = sorted(
        (n for n in changed if old_defs.get(n, ((), ()))[1]),
        key=lambda n: (-order(old_stanzas, n)[0], order(old_stanzas, n)[1]),
    )
    up = sorted(
        (n for n in changed if all(new_defs.get(n, ((), ())))),
        key=lambda n: order(new_stanzas, n),
    )
    created = [n for n in sorted(own_links) if n in new_defs and not old_defs.get(n, ((), ()))[1]]
    return down, up, created


def plan(settings: dict[str, Any], host: dict[str, Any]) -> dict[str, Any]:
    """Validate the bridges against the host and compute the new ifupdown files.

    settings: bridges (xen_network_bridges), primary_nic, default_bridge, confirm_timeout.
    host: managers ({networkmanager, networkd, netplan, ifupdown}),
    default_interface, interfaces (from ``host_interfaces``), and files:
    {path: text} of /etc/network/interfaces and every file in interfaces.d.
    """
    errors = manager_errors(host.get("managers") or {})
    files: dict[str, str] = dict(host.get("files") or {})
    if not errors and INTERFACES not in files:
        errors.append(MSG_NO_IFUPDOWN)
    live = [] if errors else load_config(files)
    for parsed in live:
        errors += parsed.errors
    if errors:
        return _empty(errors)
    stanzas = _all_stanzas(live)
    owned = {p for p, text in files.items() if p.startswith(INTERFACES_D + "/") and _owned(text)}

    bridges, errors = _check_settings(settings.get("bridges"))
    primary_nic, port_errors = _resolve_ports(bridges, settings, host, stanzas)
    errors += port_errors
    errors += _check_host(bridges, host.get("interfaces") or {})
    errors += _check_files(bridges, files, stanzas, owned)
    timeout = _as_int(settings.get("confirm_timeout", 120))
    low, high = CONFIRM_TIMEOUT_RANGE
    if timeout is None or not low <= timeout <= high:
        errors.append(
            MSG_CONFIRM_TIMEOUT.format(value=settings.get("confirm_timeout"), low=low, high=high)
        )
    names = [b.name for b in bridges]
    default_bridge = str(settings.get("default_bridge") or "")
    if default_bridge and default_bridge not in names:
        errors.append(
            MSG_DEFAULT_BRIDGE.format(name=default_bridge, names=", ".join(names) or "none")
        )
    if errors:
        return _empty(errors)
    addressing, errors = _addressing(bridges, live)
    if errors:
        return _empty(errors)

    new_files = {b.path: render_bridge(b, *addressing[b.name]) for b in bridges}
    remove = sorted(p for p in owned if p not in new_files)
    interfaces_file = live[0]
    source_line = None
    if new_files and set(sourced_paths(interfaces_file, list(new_files))) != set(new_files):
        # Debian's own line, unless other files wait in interfaces.d: sourcing
        # them all could bring up, or define twice, what the admin left there.
        others = [p for p in files if p.startswith(INTERFACES_D + "/") and p not in owned]
        source_line = SOURCE_OURS if others else SOURCE_ALL
    ports = {nic: b.name for b in bridges for nic in b.consumed}
    own_links = _own_links(bridges)
    new_files[INTERFACES] = render_interfaces(interfaces_file, ports, own_links, source_line)
    after = {p: t for p, t in files.items() if p not in remove} | new_files
    down, up, created = _changes(live, load_config(after), own_links)

    primary = [b.name for b in bridges if b.primary]
    result = {
        "errors": [],
        "bridges": names,
        "default_bridge": default_bridge or (primary + names + [""])[0],
        "primary_nic": primary_nic,
        "packages": (["bridge-utils"] if bridges else [])
        + (["ifenslave"] if any(b.bond for b in bridges) else []),
        "files": new_files,
        "remove": remove,
        "down": down,
        "up": up,
        "created": created,
    }
    result["manifest"] = render_manifest(result)
    return result


def outcome_message(state: dict[str, Any], timeout: int, waited: int) -> str:
    """The role's verdict on the apply script's final state; empty when confirmed."""
    status = (state or {}).get("state") or ""
    reason = (state or {}).get("reason") or ""
    if status == "confirmed":
        return ""
    if status == "rollback-failed":
        return MSG_ROLLBACK_FAILED.format(reason=_why(reason, timeout), left=_left(state))
    if status == "rolled-back":
        return _why(reason, timeout, sentence=True)
    if status == "failed":
        return MSG_APPLY_FAILED.format(reason=reason or "unknown reason")
    return MSG_UNREACHABLE.format(seconds=waited, timeout=timeout)


def _why(reason: str, timeout: int, sentence: bool = False) -> str:
    """Why the apply script rolled back: a whole message, or a few words for another one."""
    kind, _sep, what = reason.partition(":")
    if kind == "ifup":
        return MSG_ROLLED_BACK_IFUP.format(iface=what) if sentence else f"`ifup {what}` failed"
    if kind == "install":
        return MSG_ROLLED_BACK_INSTALL.format(path=what) if sentence else f"{what} not installed"
    if kind in ("signal", "apply-died"):
        how = f"stopped (SIG{what})" if kind == "signal" else "killed"
        return MSG_ROLLED_BACK_INTERRUPTED.format(how=how) if sentence else f"apply script {how}"
    if sentence:
        return MSG_ROLLED_BACK_TIMEOUT.format(timeout=timeout)
    return f"no confirmation within {timeout} s"


def _left(state: dict[str, Any]) -> str:
    """The apply script's left=files:A,B or left=down:X,Y in words."""
    kind, _sep, items = str(state.get("left") or "").partition(":")
    names = ", ".join(item for item in items.split(",") if item) or "unknown"
    if kind == "down":
        return f"the files are back but these interfaces did not come up: {names}"
    return f"these files could not be put back: {names}"
