"""The interfaces(5) reader: stanzas, options, marks and sourced files, with line numbers."""

from __future__ import annotations

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_ifupdown as ifu

# Debian 12's installer writes this for a host with one DHCP NIC.
DEBIAN_DEFAULT = """\
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug eno1
iface eno1 inet dhcp
# This is an autoconfigured IPv6 interface
iface eno1 inet6 auto
"""


def test_stanzas_marks_and_sources_are_read_with_their_lines() -> None:
    parsed = ifu.parse(ifu.INTERFACES, DEBIAN_DEFAULT)
    assert parsed.errors == []
    assert parsed.sources == [("source", "/etc/network/interfaces.d/*")]
    assert [(s.name, s.family, s.method) for s in parsed.stanzas] == [
        ("lo", "inet", "loopback"),
        ("eno1", "inet", "dhcp"),
        ("eno1", "inet6", "auto"),
    ]
    assert parsed.marked("eno1") == ["allow-hotplug"]
    assert parsed.marked("lo") == ["auto"]
    dhcp = parsed.stanzas[1]
    assert parsed.lines[dhcp.first] == "iface eno1 inet dhcp"
    assert dhcp.end == dhcp.first + 1


def test_options_continuations_and_comments_inside_a_stanza() -> None:
    text = """\
iface eno1 inet static
    address 192.0.2.10/24
    # the router
    gateway 192.0.2.1
    up ip route add 198.51.100.0/24 \\
       via 192.0.2.254

auto eno1
"""
    parsed = ifu.parse(ifu.INTERFACES, text)
    stanza = parsed.stanzas[0]
    assert [(o.key, o.value) for o in stanza.options] == [
        ("address", "192.0.2.10/24"),
        ("gateway", "192.0.2.1"),
        ("up", "ip route add 198.51.100.0/24 via 192.0.2.254"),
    ]
    assert stanza.options[2].first == 4
    assert stanza.options[2].end == 6
    assert stanza.end == 6  # the blank line after it is not part of the stanza


def test_bridge_options_are_found_in_either_spelling() -> None:
    parsed = ifu.parse(ifu.INTERFACES, "iface br0 inet manual\n  bridge-ports eno1 eno2\n")
    assert parsed.stanzas[0].values("bridge-ports") == ["eno1", "eno2"]
    parsed = ifu.parse(ifu.INTERFACES, "iface br0 inet manual\n  bridge_ports eno1\n")
    assert parsed.stanzas[0].values("bridge-ports") == ["eno1"]


def test_an_option_outside_a_stanza_is_an_error_as_in_ifupdown() -> None:
    parsed = ifu.parse(ifu.INTERFACES, "auto eno1\n    address 192.0.2.1/24\n")
    assert parsed.errors == [ifu.MSG_MISPLACED.format(path=ifu.INTERFACES, line=2, key="address")]


def test_mapping_stanzas_keep_their_own_lines() -> None:
    parsed = ifu.parse(ifu.INTERFACES, "mapping eth0\n  script /usr/local/sbin/map\n  map a b\n")
    assert parsed.errors == []
    assert parsed.stanzas == []


def test_source_globs_and_source_directory() -> None:
    files = {
        ifu.INTERFACES: "source interfaces.d/*.cfg\nsource-directory /etc/network/more.d\n",
        "/etc/network/interfaces.d/a.cfg": "",
        "/etc/network/interfaces.d/xen-xenbr0": "",
        "/etc/network/interfaces.d/.hidden.cfg": "",
        "/etc/network/more.d/ok_name": "",
        "/etc/network/more.d/not.run-parts": "",
    }
    parsed = ifu.parse(ifu.INTERFACES, files[ifu.INTERFACES])
    assert ifu.sourced_paths(parsed, list(files)) == [
        "/etc/network/interfaces.d/a.cfg",
        "/etc/network/more.d/ok_name",
    ]
    assert [p.path for p in ifu.load_config(files)] == [
        ifu.INTERFACES,
        "/etc/network/interfaces.d/a.cfg",
        "/etc/network/more.d/ok_name",
    ]


def test_definitions_ignore_formatting_but_see_every_change() -> None:
    one = ifu.load_config({ifu.INTERFACES: "auto br0\niface br0 inet dhcp\n  bridge_ports eno1\n"})
    same = ifu.load_config(
        {ifu.INTERFACES: "# comment\nauto br0\n\niface br0 inet dhcp\n\tbridge_ports   eno1\n"}
    )
    other = ifu.load_config(
        {ifu.INTERFACES: "auto br0\niface br0 inet dhcp\n  bridge_ports eno2\n"}
    )
    assert ifu.definitions(one) == ifu.definitions(same)
    assert ifu.definitions(one) != ifu.definitions(other)
    assert ifu.definitions(one)["br0"][0] == ("auto",)
