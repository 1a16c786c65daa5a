"""The xen_network role's plan: validation (one message per problem), the files it
renders, and which interfaces a change takes down and up."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_network_plan as np

ROLE_DIR = Path(__file__).resolve().parents[2] / "roles" / "xen_network"

IFACES = "/etc/network/interfaces"
D = "/etc/network/interfaces.d"

# ansible.builtin.setup (gather_subset network) in a network namespace shaped
# like the lab VM, trimmed to the keys the role reads: before the role ran
# (ens3 holds 10.0.2.15 and the default route) and after it.
FACTS_FRESH: dict[str, Any] = {
    "interfaces": ["ens3", "ens4", "lo"],
    "default_ipv4": {"address": "10.0.2.15", "gateway": "10.0.2.2", "interface": "ens3"},
    "ens3": {"device": "ens3", "type": "ether", "macaddress": "12:c6:c3:14:b6:90"},
    "ens4": {"device": "ens4", "type": "ether", "macaddress": "d2:95:76:8f:91:c4"},
    "lo": {"device": "lo", "type": "loopback"},
}
FACTS_BRIDGED: dict[str, Any] = {
    "interfaces": ["ens3", "ens4", "lo", "xenbr-int", "xenbr0"],
    "default_ipv4": {"address": "10.0.2.15", "gateway": "10.0.2.2", "interface": "xenbr0"},
    "ens3": {"device": "ens3", "type": "ether", "macaddress": "2e:2e:bf:cb:ac:fe"},
    "ens4": {"device": "ens4", "type": "ether", "macaddress": "da:12:cf:aa:65:65"},
    "lo": {"device": "lo", "type": "loopback"},
    "xenbr_int": {"device": "xenbr-int", "type": "bridge", "interfaces": []},
    "xenbr0": {"device": "xenbr0", "type": "bridge", "interfaces": ["ens3"]},
}

# What the lab harness writes into its images (lab/xenlab/config.py): no
# `source` line, one DHCP NIC.
LAB_INTERFACES = """\
# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug ens3
iface ens3 inet dhcp
"""

# The Molecule scenario's bridges.
LAB_BRIDGES: list[dict[str, Any]] = [
    {"name": "xenbr0", "primary": True},
    {"name": "xenbr20", "ports": ["ens4"], "vlan": 20, "ipv4": {"address": "198.51.100.1/24"}},
    {"name": "xenbr-int", "ipv4": {"method": "static", "address": "203.0.113.1/24"}},
]

EXPECTED_LAB_INTERFACES = """\
# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug ens3
# xen_network: port of xenbr0; its addresses are on the bridge.
iface ens3 inet manual
    pre-up ip link set dev ens3 addrgenmode none && echo 0 > /proc/sys/net/ipv6/conf/ens3/accept_ra

# Bridges for Xen guests (xen_network role):
source /etc/network/interfaces.d/*
"""

EXPECTED_XENBR0 = """\
# Managed by the xen_network role (Ansible); edits here are overwritten.
# Bridge xenbr0 for Xen guests, over ens3.

auto xenbr0
iface xenbr0 inet dhcp
    bridge_ports ens3
    bridge_hw ens3
    bridge_stp off
    bridge_fd 0
    bridge_waitport 0
"""

EXPECTED_XENBR20 = """\
# Managed by the xen_network role (Ansible); edits here are overwritten.
# Bridge xenbr20 for Xen guests, over ens4.20.

auto xenbr20
iface xenbr20 inet static
    bridge_ports ens4.20
    bridge_hw ens4
    bridge_stp off
    bridge_fd 0
    bridge_waitport 0
    address 198.51.100.1/24
"""

EXPECTED_XENBR_INT = """\
# Managed by the xen_network role (Ansible); edits here are overwritten.
# Bridge xenbr-int for Xen guests, host-only (no ports).

auto xenbr-int
iface xenbr-int inet static
    bridge_ports none
    bridge_stp off
    bridge_fd 0
    bridge_waitport 0
    address 203.0.113.1/24
"""


def host(
    files: dict[str, str] | None = None, facts: dict[str, Any] | None = None, **managers: Any
) -> dict[str, Any]:
    facts = facts or FACTS_FRESH
    return {
        "managers": {"ifupdown": True, **managers},
        "default_interface": facts["default_ipv4"]["interface"],
        "interfaces": np.host_interfaces(facts),
        "files": files if files is not None else {IFACES: LAB_INTERFACES},
    }


def run(bridges: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    settings = {"bridges": bridges, "primary_nic": kw.pop("primary_nic", "")}
    settings["default_bridge"] = kw.pop("default_bridge", "")
    settings["confirm_timeout"] = kw.pop("confirm_timeout", 120)
    return np.plan(settings, host(**kw))


def test_facts_give_each_interface_its_type_and_a_bridge_its_ports() -> None:
    assert np.host_interfaces(FACTS_BRIDGED) == {
        "ens3": {"type": "ether", "ports": []},
        "ens4": {"type": "ether", "ports": []},
        "lo": {"type": "loopback", "ports": []},
        "xenbr-int": {"type": "bridge", "ports": []},
        "xenbr0": {"type": "bridge", "ports": ["ens3"]},
    }


def test_lab_bridges_render_as_expected() -> None:
    out = run(LAB_BRIDGES)
    assert out["errors"] == []
    assert out["primary_nic"] == "ens3"
    assert out["default_bridge"] == "xenbr0"
    assert out["files"] == {
        IFACES: EXPECTED_LAB_INTERFACES,
        f"{D}/xen-xenbr0": EXPECTED_XENBR0,
        f"{D}/xen-xenbr20": EXPECTED_XENBR20,
        f"{D}/xen-xenbr-int": EXPECTED_XENBR_INT,
    }
    assert out["packages"] == ["bridge-utils"]
    # ens3 goes down with its DHCP stanza; it comes back as a bare port first.
    assert out["down"] == ["ens3"]
    assert out["up"] == ["ens3", "xenbr-int", "xenbr0", "xenbr20"]
    assert out["created"] == ["xenbr-int", "xenbr0", "xenbr20"]
    assert out["remove"] == []


def test_dhcp_takeover_keeps_the_nics_mac() -> None:
    xenbr0 = run(LAB_BRIDGES)["files"][f"{D}/xen-xenbr0"]
    assert "iface xenbr0 inet dhcp" in xenbr0
    assert "    bridge_hw ens3\n" in xenbr0


def test_second_run_changes_nothing() -> None:
    first = run(LAB_BRIDGES)
    again = run(LAB_BRIDGES, files=first["files"], facts=FACTS_BRIDGED)
    assert again["errors"] == []
    assert again["primary_nic"] == "ens3"  # found through xenbr0
    assert again["files"] == first["files"]
    assert (again["down"], again["up"], again["remove"], again["created"]) == ([], [], [], [])


def test_a_port_configured_by_an_earlier_version_gets_the_new_line_once() -> None:
    # Earlier versions switched off only address generation on a port; SLAAC
    # still gave it an address when a router advertised before the bridge took
    # it at boot. The old line is replaced, not kept next to the new one.
    first = run(LAB_BRIDGES)
    new_line = np.PORT_IPV6_OFF.format(nic="ens3")
    old_line = "    pre-up ip link set dev ens3 addrgenmode none"
    files = dict(first["files"])
    files[IFACES] = files[IFACES].replace(new_line, old_line)
    assert new_line not in files[IFACES]
    again = run(LAB_BRIDGES, files=files, facts=FACTS_BRIDGED)
    assert again["errors"] == []
    assert again["files"] == first["files"]
    assert again["files"][IFACES].count("addrgenmode") == 1
    # The port's stanza changed: it is bounced, and the bridge on it with it.
    assert "ens3" in again["down"]
    assert "ens3" in again["up"]
    # A NIC that stops being a port loses the old line as well as the new one.
    moved = copy.deepcopy(LAB_BRIDGES)
    moved[0] = {"name": "xenbr0", "ports": ["ens4"], "ipv4": {"method": "dhcp"}}
    out = run(moved, files=files, facts=FACTS_BRIDGED)
    assert out["errors"] == []
    assert "iface ens3 inet manual\n" in out["files"][IFACES]
    assert "addrgenmode" not in out["files"][IFACES]


def test_manifest_lists_every_step_for_the_apply_script() -> None:
    assert run(LAB_BRIDGES)["manifest"] == (
        "# xen-network-apply manifest, written by the xen_network role\n"
        "file interfaces /etc/network/interfaces\n"
        "file xen-xenbr-int /etc/network/interfaces.d/xen-xenbr-int\n"
        "file xen-xenbr0 /etc/network/interfaces.d/xen-xenbr0\n"
        "file xen-xenbr20 /etc/network/interfaces.d/xen-xenbr20\n"
        "down ens3\n"
        "up ens3\n"
        "up xenbr-int\n"
        "up xenbr0\n"
        "up xenbr20\n"
        "created xenbr-int\n"
        "created xenbr0\n"
        "created xenbr20\n"
    )


STATIC_HOST = """\
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

# Uplink to the rack switch
auto eno1
iface eno1 inet static
    address 192.0.2.10/24
    gateway 192.0.2.1
    dns-nameservers 192.0.2.53
    mtu 9000
    up ip route add 198.51.100.0/24 via 192.0.2.254
iface eno1 inet6 static
    address 2001:db8::10/64
    gateway fe80::1
"""

STATIC_FACTS: dict[str, Any] = {
    "interfaces": ["eno1", "eno2", "lo"],
    "default_ipv4": {"interface": "eno1"},
    "eno1": {"type": "ether"},
    "eno2": {"type": "ether"},
    "lo": {"type": "loopback"},
}


def test_static_addresses_hooks_and_ipv6_move_to_the_bridge_and_mtu_stays() -> None:
    bridges = [{"name": "xenbr0", "primary": True}]
    out = run(bridges, files={IFACES: STATIC_HOST}, facts=STATIC_FACTS)
    assert out["errors"] == []
    assert out["files"][IFACES] == STATIC_HOST.split("# Uplink")[0] + (
        "# Uplink to the rack switch\n"
        "auto eno1\n"
        "# xen_network: port of xenbr0; its addresses are on the bridge.\n"
        "iface eno1 inet manual\n"
        "    pre-up ip link set dev eno1 addrgenmode none"
        " && echo 0 > /proc/sys/net/ipv6/conf/eno1/accept_ra\n"
        "    mtu 9000\n"
    )
    assert out["files"][f"{D}/xen-xenbr0"] == (
        "# Managed by the xen_network role (Ansible); edits here are overwritten.\n"
        "# Bridge xenbr0 for Xen guests, over eno1.\n"
        "\n"
        "auto xenbr0\n"
        "iface xenbr0 inet static\n"
        "    bridge_ports eno1\n"
        "    bridge_hw eno1\n"
        "    bridge_stp off\n"
        "    bridge_fd 0\n"
        "    bridge_waitport 0\n"
        "    address 192.0.2.10/24\n"
        "    gateway 192.0.2.1\n"
        "    dns-nameservers 192.0.2.53\n"
        "    up ip route add 198.51.100.0/24 via 192.0.2.254\n"
        "\n"
        "iface xenbr0 inet6 static\n"
        "    address 2001:db8::10/64\n"
        "    gateway fe80::1\n"
    )
    # Debian's `source` line is there already.
    assert out["files"][IFACES].count("source ") == 1
    bridged = copy.deepcopy(STATIC_FACTS)
    bridged["default_ipv4"]["interface"] = "xenbr0"
    bridged["interfaces"].append("xenbr0")
    bridged["xenbr0"] = {"type": "bridge", "interfaces": ["eno1"]}
    again = run(bridges, files=out["files"], facts=bridged)
    assert again["files"] == out["files"]
    assert again["up"] == again["down"] == []


def test_explicit_addressing_replaces_what_the_nic_had() -> None:
    bridges = [
        {
            "name": "xenbr0",
            "ports": ["eno1"],
            "ipv4": {"address": "192.0.2.11/24", "gateway": "192.0.2.1", "dns": ["192.0.2.53"]},
            "ipv6": {"method": "auto"},
        }
    ]
    out = run(bridges, files={IFACES: STATIC_HOST}, facts=STATIC_FACTS)
    xenbr0 = out["files"][f"{D}/xen-xenbr0"]
    assert "    address 192.0.2.11/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53\n" in (
        xenbr0
    )
    assert "iface xenbr0 inet6 auto\n" in xenbr0
    assert "198.51.100.0" not in xenbr0 + out["files"][IFACES]
    assert out["down"] == ["eno1"]
    assert out["up"] == ["eno1", "xenbr0"]


def test_a_bond_of_two_nics_becomes_the_bridge_port() -> None:
    text = STATIC_HOST + "\nallow-hotplug eno2\niface eno2 inet dhcp\n"
    bridges = [
        {"name": "xenbr0", "primary": True},
        {
            "name": "xenbr1",
            "ports": ["eno2", "ens9"],
            "bond": {"name": "bond0", "mode": "802.3ad"},
            "vlan": 30,
        },
    ]
    facts = copy.deepcopy(STATIC_FACTS)
    facts["interfaces"].append("ens9")
    facts["ens9"] = {"type": "ether"}
    out = run(bridges, files={IFACES: text}, facts=facts)
    assert out["errors"] == []
    assert out["packages"] == ["bridge-utils", "ifenslave"]
    xenbr1 = out["files"][f"{D}/xen-xenbr1"]
    assert (
        "auto bond0\n"
        "iface bond0 inet manual\n"
        "    bond-slaves eno2 ens9\n"
        "    bond-mode 802.3ad\n"
        "    bond-miimon 100\n"
    ) in xenbr1
    assert "    bridge_ports bond0.30\n    bridge_hw bond0\n" in xenbr1
    assert "iface xenbr1 inet manual\n" in xenbr1
    assert "iface eno2 inet manual\n" in out["files"][IFACES]
    assert out["up"].index("bond0") < out["up"].index("xenbr1")


def test_an_admins_own_xenbr0_is_taken_over_with_its_addresses() -> None:
    text = (
        "auto lo\niface lo inet loopback\n\n"
        "iface eno1 inet manual\n\n"
        "auto xenbr0 lo\n"
        "iface xenbr0 inet static\n"
        "    bridge_ports eno1\n"
        "    address 192.0.2.10/24\n"
        "    gateway 192.0.2.1\n"
    )
    facts = copy.deepcopy(STATIC_FACTS)
    facts["default_ipv4"]["interface"] = "xenbr0"
    facts["interfaces"].append("xenbr0")
    facts["xenbr0"] = {"type": "bridge", "interfaces": ["eno1"]}
    out = run([{"name": "xenbr0", "primary": True}], files={IFACES: text}, facts=facts)
    assert out["errors"] == []
    assert out["files"][IFACES] == (
        "auto lo\niface lo inet loopback\n\n"
        "# xen_network: port of xenbr0; its addresses are on the bridge.\n"
        "iface eno1 inet manual\n"
        "    pre-up ip link set dev eno1 addrgenmode none"
        " && echo 0 > /proc/sys/net/ipv6/conf/eno1/accept_ra\n\n"
        "auto lo\n"
        "\n"
        "# Bridges for Xen guests (xen_network role):\n"
        "source /etc/network/interfaces.d/*\n"
    )
    assert "    address 192.0.2.10/24\n    gateway 192.0.2.1\n" in out["files"][f"{D}/xen-xenbr0"]


def test_a_bridge_dropped_from_the_settings_is_removed() -> None:
    first = run(LAB_BRIDGES)
    out = run(LAB_BRIDGES[:2], files=first["files"], facts=FACTS_BRIDGED)
    assert out["remove"] == [f"{D}/xen-xenbr-int"]
    assert out["down"] == ["xenbr-int"]
    assert out["up"] == []


def test_other_files_in_interfaces_d_are_not_sourced_by_surprise() -> None:
    files = {IFACES: LAB_INTERFACES, f"{D}/old-eth1": "auto eth1\niface eth1 inet dhcp\n"}
    out = run(LAB_BRIDGES, files=files)
    assert out["files"][IFACES].endswith("\nsource /etc/network/interfaces.d/xen-*\n")
    assert "eth1" not in out["up"]


def test_default_bridge_can_be_chosen() -> None:
    assert run(LAB_BRIDGES, default_bridge="xenbr-int")["default_bridge"] == "xenbr-int"
    assert run(LAB_BRIDGES[1:])["default_bridge"] == "xenbr20"
    assert run([])["default_bridge"] == ""


def test_primary_nic_setting_wins_over_the_default_route() -> None:
    files = {IFACES: LAB_INTERFACES + "\nallow-hotplug ens4\niface ens4 inet dhcp\n"}
    out = run([{"name": "xenbr1", "primary": True}], primary_nic="ens4", files=files)
    assert out["primary_nic"] == "ens4"
    assert "iface xenbr1 inet dhcp\n    bridge_ports ens4\n" in out["files"][f"{D}/xen-xenbr1"]
    assert "iface ens3 inet dhcp\n" in out["files"][IFACES]


def test_change_of_addressing_bounces_only_that_bridge() -> None:
    first = run(LAB_BRIDGES)
    changed = copy.deepcopy(LAB_BRIDGES)
    changed[2]["ipv4"]["address"] = "203.0.113.2/24"
    out = run(changed, files=first["files"], facts=FACTS_BRIDGED)
    assert out["down"] == ["xenbr-int"]
    assert out["up"] == ["xenbr-int"]
    assert out["created"] == []


OWNED = np.OWNED_MARKER + "\n"

BAD: list[tuple[str, list[dict[str, Any]], dict[str, Any], str]] = [
    (
        "name_too_long",
        [{"name": "xenbr-much-too-long"}],
        {},
        "Bridge name 'xenbr-much-too-long' is 19 characters long; interface names have at most 15.",
    ),
    (
        "name_bad_chars",
        [{"name": "xen br0"}],
        {},
        "Bridge name 'xen br0' is not a usable interface name: use letters, digits, '-' and '_'"
        " only.",
    ),
    (
        "port_name_bad",
        [{"name": "xenbr1", "ports": ["ens4/1"]}],
        {},
        "Bridge xenbr1: port 'ens4/1' is not a usable interface name: use letters, digits, '.', '-'"
        " and '_' only.",
    ),
    (
        "vlan_range",
        [{"name": "xenbr1", "ports": ["ens4"], "vlan": 4095}],
        {},
        "Bridge xenbr1: VLAN 4095 is outside 1-4094.",
    ),
    (
        "vlan_port_suffix",
        [{"name": "xenbr1", "ports": ["ens4.0"]}],
        {},
        "Bridge xenbr1: VLAN 0 is outside 1-4094.",
    ),
    (
        "vlan_not_a_number",
        [{"name": "xenbr1", "ports": ["ens4"], "vlan": "twenty"}],
        {},
        "Bridge xenbr1: vlan must be a number from 1 to 4094, not 'twenty'.",
    ),
    (
        "vlan_without_parent",
        [{"name": "xenbr1", "vlan": 20}],
        {},
        "Bridge xenbr1: vlan 20 needs its parent NIC (or a bond) in ports.",
    ),
    (
        "ipv4_invalid",
        [{"name": "xenbr1", "ipv4": {"address": "198.51.100.300/24"}}],
        {},
        "Bridge xenbr1: ipv4.address '198.51.100.300/24' is not an IPv4 address with a prefix,"
        " such as 198.51.100.1/24.",
    ),
    (
        "ipv4_without_prefix",
        [{"name": "xenbr1", "ipv4": {"address": "198.51.100.1"}}],
        {},
        "Bridge xenbr1: ipv4.address '198.51.100.1' is not an IPv4 address with a prefix",
    ),
    (
        "ipv4_network_address",
        [{"name": "xenbr1", "ipv4": {"address": "198.51.100.0/24"}}],
        {},
        "Bridge xenbr1: ipv4.address 198.51.100.0/24 is the network address of 198.51.100.0/24;"
        " use a host address.",
    ),
    (
        "ipv6_prefix",
        [{"name": "xenbr1", "ipv6": {"method": "static", "address": "2001:db8::1/129"}}],
        {},
        "Bridge xenbr1: ipv6.address '2001:db8::1/129' is not an IPv6 address with a prefix,"
        " such as 2001:db8::1/64.",
    ),
    (
        "gateway_outside",
        [{"name": "xenbr1", "ipv4": {"address": "198.51.100.1/24", "gateway": "192.0.2.1"}}],
        {},
        "Bridge xenbr1: ipv4.gateway 192.0.2.1 is outside 198.51.100.0/24, the subnet of"
        " 198.51.100.1/24.",
    ),
    (
        "gateway_is_self",
        [{"name": "xenbr1", "ipv4": {"address": "198.51.100.1/24", "gateway": "198.51.100.1"}}],
        {},
        "Bridge xenbr1: ipv4.gateway 198.51.100.1 is the bridge's own address.",
    ),
    (
        "gateway_wrong_family",
        [{"name": "xenbr1", "ipv6": {"address": "2001:db8::1/64", "gateway": "192.0.2.1"}}],
        {},
        "Bridge xenbr1: ipv6.gateway '192.0.2.1' is not an IPv6 address.",
    ),
    (
        "dns_invalid",
        [{"name": "xenbr1", "ipv4": {"address": "198.51.100.1/24", "dns": ["dns.example"]}}],
        {},
        "Bridge xenbr1: ipv4.dns must be a list of IP addresses; 'dns.example' is not one.",
    ),
    (
        "static_without_address",
        [{"name": "xenbr1", "ipv4": {"method": "static"}}],
        {},
        "Bridge xenbr1: ipv4.method static needs ipv4.address, such as 198.51.100.1/24.",
    ),
    (
        "address_with_dhcp",
        [{"name": "xenbr1", "ports": ["ens4"], "ipv4": {"method": "dhcp", "gateway": "10.0.3.2"}}],
        {},
        "Bridge xenbr1: ipv4.gateway is used with method static only (the method is dhcp).",
    ),
    (
        "method_unknown",
        [{"name": "xenbr1", "ipv4": {"method": "bootp"}}],
        {},
        "Bridge xenbr1: ipv4.method 'bootp' is unknown; use one of inherit, dhcp, static, manual.",
    ),
    (
        "key_unknown",
        [{"name": "xenbr1", "prots": ["ens4"]}],
        {},
        "Bridge xenbr1: unknown key 'prots'; the known keys are name, ports, primary, vlan, bond,"
        " ipv4, ipv6, stp, fd.",
    ),
    (
        "ip_key_unknown",
        [{"name": "xenbr1", "ipv4": {"address": "198.51.100.1/24", "netmask": "255.255.255.0"}}],
        {},
        "Bridge xenbr1 ipv4: unknown key 'netmask'; the known keys are method, address, gateway,"
        " dns.",
    ),
    (
        "duplicate_names",
        [{"name": "xenbr1"}, {"name": "xenbr1"}],
        {},
        "Bridge xenbr1 is defined 2 times in xen_network_bridges; names must be unique.",
    ),
    (
        "port_in_two_bridges",
        [{"name": "xenbr1", "ports": ["ens4"]}, {"name": "xenbr2", "ports": ["ens4"]}],
        {},
        "Interface ens4 is claimed by both bridge xenbr1 and bridge xenbr2; an interface can serve"
        " one bridge only.",
    ),
    (
        "primary_nic_in_two_bridges",
        [{"name": "xenbr0", "primary": True}, {"name": "xenbr1", "ports": ["ens3"]}],
        {},
        "Interface ens3 is claimed by both bridge xenbr0 and bridge xenbr1",
    ),
    (
        "port_missing",
        [{"name": "xenbr1", "ports": ["ens9"]}],
        {},
        "Bridge xenbr1: interface ens9 does not exist on this host (it has ens3, ens4).",
    ),
    (
        "vlan_parent_missing",
        [{"name": "xenbr1", "ports": ["ens9"], "vlan": 20}],
        {},
        "Bridge xenbr1: interface ens9 does not exist on this host (it has ens3, ens4).",
    ),
    (
        "port_is_loopback",
        [{"name": "xenbr1", "ports": ["lo"]}],
        {},
        "Bridge xenbr1: lo is a loopback interface and cannot be a bridge port.",
    ),
    (
        "port_is_a_bridge",
        [{"name": "xenbr0", "primary": True}, {"name": "xenbr1", "ports": ["xenbr0"]}],
        {},
        "Bridge xenbr1: port xenbr0 is a bridge of xen_network_bridges itself; bridges cannot be"
        " nested.",
    ),
    (
        "name_is_a_nic",
        [{"name": "ens4"}],
        {},
        "Bridge ens4: ens4 is already a ether interface on this host; choose another name.",
    ),
    (
        "primary_twice",
        [{"name": "xenbr0", "primary": True}, {"name": "xenbr1", "primary": True}],
        {},
        "Bridges xenbr0, xenbr1 all set primary: true; only one bridge can take over the primary"
        " NIC.",
    ),
    (
        "bond_one_nic",
        [{"name": "xenbr1", "ports": ["ens4"], "bond": {"name": "bond0"}}],
        {},
        "Bridge xenbr1: a bond needs at least two NICs in ports; it has 1.",
    ),
    (
        "bond_mode_unknown",
        [{"name": "xenbr1", "ports": ["ens3", "ens4"], "bond": {"name": "bond0", "mode": "lacp"}}],
        {},
        "Bridge xenbr1: bond mode 'lacp' is unknown; use one of balance-rr, active-backup,",
    ),
    (
        "two_gateways",
        [
            {"name": "xenbr0", "primary": True},
            {"name": "xenbr1", "ipv4": {"address": "198.51.100.1/24", "gateway": "198.51.100.254"}},
        ],
        {"files": {IFACES: STATIC_HOST}, "facts": STATIC_FACTS},
        "Bridges xenbr0 and xenbr1 both have an IPv4 gateway, but a host has one default route;"
        " keep the gateway on one bridge.",
    ),
    (
        "default_bridge_unknown",
        [{"name": "xenbr1"}],
        {"default_bridge": "xenbr9"},
        "xen_network_default_bridge is 'xenbr9', which is not in xen_network_bridges (xenbr1).",
    ),
    (
        "vlan_twice",
        [{"name": "xenbr1", "ports": ["ens4.20"], "vlan": 30}],
        {},
        "Bridge xenbr1: port ens4.20 already names a VLAN; drop the vlan key or the .N suffix.",
    ),
    (
        "primary_with_vlan",
        [{"name": "xenbr0", "primary": True, "vlan": 20}],
        {},
        "Bridge xenbr0: primary: true takes over the NIC itself and cannot be combined with vlan.",
    ),
    (
        "fd_out_of_range",
        [{"name": "xenbr1", "fd": 45}],
        {},
        "Bridge xenbr1: fd (forward delay) must be a whole number of seconds from 0 to 30, not 45.",
    ),
    (
        "stp_not_a_bool",
        [{"name": "xenbr1", "stp": "maybe"}],
        {},
        "Bridge xenbr1: stp must be true or false, not 'maybe'.",
    ),
    (
        "ports_not_a_list",
        [{"name": "xenbr1", "ports": "ens4"}],
        {},
        "Bridge xenbr1: ports must be a list of interface names, not 'ens4'.",
    ),
    (
        "bond_without_name",
        [{"name": "xenbr1", "ports": ["ens3", "ens4"], "bond": {"mode": "802.3ad"}}],
        {},
        "Bridge xenbr1: bond needs a name, such as bond0.",
    ),
    (
        "bond_name_taken",
        [{"name": "xenbr1", "ports": ["ens3", "ens4"], "bond": {"name": "lo"}}],
        {},
        "Bridge xenbr1: bond name lo is already a loopback interface on this host.",
    ),
    ("bridge_not_a_dict", ["xenbr1"], {}, "xen_network_bridges item 1 is 'xenbr1': each bridge"),
    ("bridge_without_name", [{"ports": ["ens4"]}], {}, "xen_network_bridges item 1 has no name."),
    (
        "ipv6_inherit_without_port",
        [{"name": "xenbr1", "ipv6": {"method": "inherit"}}],
        {},
        "Bridge xenbr1: ipv6.method inherit needs a port (or primary: true) to inherit from.",
    ),
    (
        "default_route_through_a_bridge_with_two_ports",
        [{"name": "xenbr0", "primary": True}],
        {
            "facts": {
                **FACTS_BRIDGED,
                "xenbr0": {"type": "bridge", "interfaces": ["ens3", "ens4"]},
            },
            "files": {IFACES: "iface ens3 inet manual\n"},
        },
        "The default route goes through bridge xenbr0, which has the ports ens3, ens4; set"
        " xen_network_primary_nic to the NIC bridge xenbr0 should take over.",
    ),
    (
        "bridge_in_another_file",
        [{"name": "xenbr1"}],
        {
            "files": {
                IFACES: LAB_INTERFACES + "source /etc/network/interfaces.d/*\n",
                f"{D}/bridges": "auto xenbr1\niface xenbr1 inet manual\n  bridge_ports none\n",
            }
        },
        "xenbr1 is already configured in /etc/network/interfaces.d/bridges, which the xen_network"
        " role does not edit; remove that stanza or choose another name.",
    ),
    (
        "confirm_timeout_too_short",
        [{"name": "xenbr1"}],
        {"confirm_timeout": 5},
        "xen_network_confirm_timeout is 5: give the controller 30 to 3600 seconds to reach the"
        " host again",
    ),
    (
        "port_in_other_file",
        [{"name": "xenbr1", "ports": ["ens4"]}],
        {
            "files": {
                IFACES: LAB_INTERFACES + "source /etc/network/interfaces.d/*\n",
                f"{D}/ens4": "allow-hotplug ens4\niface ens4 inet dhcp\n",
            }
        },
        "Interface ens4 is configured in /etc/network/interfaces.d/ens4, which the xen_network role"
        " does not edit; move its stanza into /etc/network/interfaces or remove it.",
    ),
    (
        "port_of_admins_bridge",
        [{"name": "xenbr1", "ports": ["ens4"]}],
        {
            "files": {
                IFACES: LAB_INTERFACES + "auto br0\niface br0 inet manual\n  bridge_ports ens4\n"
            }
        },
        "Interface ens4 is a port of bridge br0 in /etc/network/interfaces; remove that bridge's"
        " stanza first (bridge xenbr1 can carry its addresses).",
    ),
    (
        "file_not_ours",
        [{"name": "xenbr1"}],
        {"files": {IFACES: LAB_INTERFACES, f"{D}/xen-xenbr1": "auto xenbr1\n"}},
        "/etc/network/interfaces.d/xen-xenbr1 exists but was not written by the xen_network role;",
    ),
    (
        "inherit_from_nothing",
        [{"name": "xenbr1", "ports": ["ens4"], "ipv4": {"method": "inherit"}}],
        {},
        "Bridge xenbr1: ipv4.method inherit found no addressing for ens4: no 'iface ens4 inet'"
        " stanza and no bridge holding ens4 in /etc/network/interfaces; set ipv4 explicitly.",
    ),
    (
        "no_default_route",
        [{"name": "xenbr0", "primary": True}],
        {"facts": {**FACTS_FRESH, "default_ipv4": {"interface": ""}}},
        "Bridge xenbr0 takes over the primary NIC, but the host has no default route to find it"
        " by; set xen_network_primary_nic.",
    ),
    (
        "broken_interfaces_file",
        [{"name": "xenbr1"}],
        {"files": {IFACES: "auto eth0\n  address 192.0.2.1/24\n"}},
        "/etc/network/interfaces line 2: option 'address' is outside any iface stanza;",
    ),
]


@pytest.mark.parametrize(
    ("bridges", "kw", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_settings_give_one_clear_error(
    bridges: list[dict[str, Any]], kw: dict[str, Any], message: str
) -> None:
    out = run(bridges, **kw)
    assert len(out["errors"]) == 1, out["errors"]
    assert out["errors"][0].startswith(message), out["errors"][0]
    assert out["files"] == {}
    assert out["manifest"] == ""


def test_bridges_must_be_a_list() -> None:
    out = np.plan({"bridges": {"name": "xenbr0"}}, host())
    assert out["errors"] == [np.MSG_NOT_A_LIST.format(value={"name": "xenbr0"})]


def test_every_problem_is_reported_at_once() -> None:
    bridges = [
        {"name": "xenbr-much-too-long"},
        {"name": "xenbr1", "ports": ["ens4"], "vlan": 0},
        {"name": "xenbr2", "ipv4": {"address": "bad"}},
    ]
    assert len(run(bridges)["errors"]) == 3


@pytest.mark.parametrize(
    ("managers", "manager"),
    [
        ({"networkmanager": True}, "NetworkManager"),
        ({"networkd": True}, "systemd-networkd"),
        ({"netplan": ["/etc/netplan/50-cloud-init.yaml"]}, "netplan"),
    ],
)
def test_hosts_run_by_another_network_manager_are_refused(
    managers: dict[str, Any], manager: str
) -> None:
    out = np.plan({"bridges": LAB_BRIDGES}, host(**managers))
    assert len(out["errors"]) == 1
    assert out["errors"][0].startswith(f"This host's network is managed by {manager} (")
    assert "has changed nothing" in out["errors"][0]


def test_a_host_without_ifupdown_is_refused() -> None:
    assert np.plan({"bridges": []}, host(ifupdown=False))["errors"] == [np.MSG_NO_IFUPDOWN]
    assert np.plan({"bridges": []}, host(files={}))["errors"] == [np.MSG_NO_IFUPDOWN]


def test_outcome_messages() -> None:
    assert np.outcome_message({"state": "confirmed"}, 120, 30) == ""
    assert np.outcome_message({"state": "rolled-back", "reason": "timeout"}, 120, 200) == (
        "The new network configuration was rolled back because the controller could not reach"
        " the host within 120 s; previous configuration restored. The host log is"
        " /var/log/xen-network-apply.log."
    )
    assert np.outcome_message(
        {"state": "rolled-back", "reason": "ifup:xenbr20"}, 120, 5
    ).startswith(
        "The new network configuration was rolled back because `ifup xenbr20` failed on the host;"
    )
    assert np.outcome_message({"state": "failed", "reason": "busy"}, 120, 1).startswith(
        "The network change was not applied (busy)"
    )
    assert np.outcome_message({}, 120, 420).startswith(
        "The host did not answer within 420 s after the network change."
    )


def test_outcome_of_an_interrupted_change_or_a_failed_rollback() -> None:
    def outcome(**state: str) -> str:
        return np.outcome_message(state, 120, 5)

    assert outcome(state="rolled-back", reason="install:/etc/network/interfaces") == (
        np.MSG_ROLLED_BACK_INSTALL.format(path="/etc/network/interfaces")
    )
    assert outcome(state="rolled-back", reason="signal:TERM") == (
        "The new network configuration was rolled back because its apply script on the host was"
        " stopped (SIGTERM) before the change was confirmed; previous configuration restored."
        " The host log is /var/log/xen-network-apply.log."
    )
    assert "script on the host was killed before" in outcome(
        state="rolled-back", reason="apply-died"
    )
    assert outcome(
        state="rollback-failed",
        reason="timeout",
        left="files:/etc/network/interfaces,/etc/network/interfaces.d/xen-xenbr0",
    ) == (
        "The new network configuration was NOT confirmed (no confirmation within 120 s) and the"
        " host could NOT fully restore the previous one: these files could not be put back:"
        " /etc/network/interfaces, /etc/network/interfaces.d/xen-xenbr0. The change stays"
        " recorded in /var/lib/xen-network/pending, and xen-network-guard.service restores the"
        " remaining files at the next boot; check the host's console and"
        " /var/log/xen-network-apply.log."
    )
    assert "these interfaces did not come up: ens3" in outcome(
        state="rollback-failed", reason="ifup:xenbr0", left="down:ens3"
    )
    assert "NOT confirmed (`ifup xenbr0` failed)" in outcome(
        state="rollback-failed", reason="ifup:xenbr0", left="down:ens3"
    )
    # A rollback is never reported as a restored configuration unless it is one.
    assert "previous configuration restored" not in outcome(state="rollback-failed", left="")


def test_the_roles_state_regex_reads_every_final_state() -> None:
    variables = yaml.safe_load((ROLE_DIR / "vars" / "main.yml").read_text())
    pattern = variables["__xen_network_state_regex"].replace(
        "{{ __xen_network_await | join('|') }}", "confirmed|rolled-back|rollback-failed|failed"
    )
    cases = {
        "state=confirmed": {"state": "confirmed"},
        "state=rolled-back reason=timeout": {"state": "rolled-back", "reason": "timeout"},
        "state=failed reason=another xen-network-apply is running": {
            "state": "failed",
            "reason": "another xen-network-apply is running",
        },
        "state=rollback-failed reason=timeout left=files:/etc/network/interfaces": {
            "state": "rollback-failed",
            "reason": "timeout",
            "left": "files:/etc/network/interfaces",
        },
    }
    for line, expected in cases.items():
        match = re.search(pattern, line, re.M)
        assert match, line
        assert {k: v for k, v in match.groupdict().items() if v is not None} == expected


def test_a_bridge_on_a_vlan_of_a_nic_another_bridge_lets_go_is_bounced_too() -> None:
    # The rollback test: xenbr0 moves from ens3 to ens4, where xenbr20 has
    # VLAN 20. Taking xenbr0 down sets ens4 down, so xenbr20 must come up again.
    first = run(LAB_BRIDGES)
    wrong = copy.deepcopy(LAB_BRIDGES)
    wrong[0] = {"name": "xenbr0", "ports": ["ens4"], "ipv4": {"method": "dhcp"}}
    out = run(wrong, files=first["files"], facts=FACTS_BRIDGED)
    assert out["errors"] == []
    # ens3's stanza changes too (it is no longer a port), so it is bounced last.
    assert out["down"] == ["xenbr0", "xenbr20", "ens3"]
    assert out["up"] == ["ens3", "xenbr0", "xenbr20"]
    assert "    bridge_ports ens4\n    bridge_hw ens4\n" in out["files"][f"{D}/xen-xenbr0"]
    # ens3 keeps its manual stanza; only the note that it is a port goes, and
    # so does the line that kept IPv6 addresses off it.
    assert "iface ens3 inet manual\n" in out["files"][IFACES]
    assert "port of xenbr0" not in out["files"][IFACES]
    assert "addrgenmode" not in out["files"][IFACES]


def test_the_filter_reads_slurped_files_and_the_default_route() -> None:
    from ansible_collections.xen_lab.dom0.plugins.filter.xen_network import (
        xen_network_files,
        xen_network_plan,
    )

    read = {  # as xen_read answers
        "files": {
            IFACES: {"readable": True, "content": "auto lo\niface lo inet loopback\n"},
            "/etc/xen/xl.conf": {"readable": True, "content": '#vif.default.bridge="xenbr0"\n'},
        },
        "dirs": {
            D: {
                "exists": True,
                "files": {
                    f"{D}/xen-xenbr0": {"readable": True, "content": "auto xenbr0\n"},
                    f"{D}/unreadable": {"readable": False, "error": "Permission denied"},
                },
            }
        },
    }
    assert xen_network_files(read) == {
        IFACES: "auto lo\niface lo inet loopback\n",
        f"{D}/xen-xenbr0": "auto xenbr0\n",
    }
    facts = {**FACTS_FRESH, "default_ipv4": {}, "default_ipv6": {"interface": "ens3"}}
    settings = {"bridges": [{"name": "xenbr0", "primary": True}], "confirm_timeout": 120}
    out = xen_network_plan(settings, facts, {IFACES: LAB_INTERFACES}, {"ifupdown": True})
    assert out["errors"] == []
    assert out["primary_nic"] == "ens3"


def test_the_staged_files_are_the_plans_files_and_the_manifest() -> None:
    from ansible_collections.xen_lab.dom0.plugins.filter.xen_network import xen_network_staged

    out = np.plan({"bridges": LAB_BRIDGES}, host())
    assert out["errors"] == []
    staged = xen_network_staged(out, "/var/lib/xen-network/staged")
    by_path = {item["path"]: item for item in staged}
    # Every planned file under its base name, as the manifest names it.
    for path, content in out["files"].items():
        item = by_path[f"/var/lib/xen-network/staged/{path.rsplit('/', 1)[1]}"]
        assert item["content"] == content
        assert item["mode"] == "0644"
        assert item["validate"] == "ifquery --interfaces=%s --list --all"
        assert f"file {path.rsplit('/', 1)[1]} {path}" in out["manifest"]
    manifest = by_path["/var/lib/xen-network/staged/manifest"]
    assert manifest == {
        "path": "/var/lib/xen-network/staged/manifest",
        "content": out["manifest"],
        "mode": "0600",
    }
    assert len(staged) == len(out["files"]) + 1


def test_the_primary_bridge_moved_onto_a_bond_is_planned_the_same_on_the_next_run() -> None:
    """xenbr0 over ens3 (the lab's converged host) moves onto bond0 of ens3 and ens7;
    the next run, reading what the first one wrote, plans no change."""
    converged = run(LAB_BRIDGES)["files"]
    facts = copy.deepcopy(FACTS_BRIDGED)
    facts["interfaces"].append("ens7")
    facts["ens7"] = {"device": "ens7", "type": "ether"}
    bonded = [
        {
            "name": "xenbr0",
            "primary": True,
            "ports": ["ens3", "ens7"],
            "bond": {"name": "bond0", "mode": "active-backup"},
        },
        *LAB_BRIDGES[1:],
    ]
    first = run(bonded, files=converged, facts=facts)
    assert first["errors"] == []
    assert first["primary_nic"] == "ens3"
    xenbr0 = first["files"][f"{D}/xen-xenbr0"]
    assert "    bond-slaves ens3 ens7\n    bond-mode active-backup\n" in xenbr0
    assert "iface xenbr0 inet dhcp\n    bridge_ports bond0\n    bridge_hw bond0\n" in xenbr0
    assert (first["down"], first["up"], first["created"]) == (
        ["xenbr0"],
        ["bond0", "xenbr0"],
        ["bond0"],
    )

    after = {**converged, **first["files"]}
    facts["interfaces"].append("bond0")
    facts["bond0"] = {"device": "bond0", "type": "bonding", "slaves": ["ens3", "ens7"]}
    facts["xenbr0"] = {"device": "xenbr0", "type": "bridge", "interfaces": ["bond0"]}
    second = run(bonded, files=after, facts=facts)
    assert second["errors"] == []
    assert second["primary_nic"] == "ens3"
    assert second["files"] == first["files"]
    assert (second["down"], second["up"], second["remove"]) == ([], [], [])
