"""The bridges of the trixie dom0 after site.yml, as the kernel reports them,
with the guests' interfaces on xenbr0. The xen_network scenario checks the
same layout in detail on a host without guests, and its reboot and rollback."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests" / "molecule"))
from e2e_checks import E2E

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import parse_xl_list

# A guest's interfaces: vif<domid>.<n> (PV and PVH), tap<domid>.<n> (HVM).
GUEST_LINK = re.compile(r"^(?:vif|tap)(\d+)\.\d+$")
GUEST_BACK = 120  # seconds a restarted guest may take to have its interface again


def links(host: Any) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in json.loads(host.check_output("ip -j -d link"))}


def addresses(host: Any, dev: str) -> list[tuple[str, int]]:
    found = json.loads(host.check_output("ip -j -4 addr show dev %s", dev))
    return [(a["local"], a["prefixlen"]) for link in found for a in link["addr_info"]]


def test_the_three_bridges_are_up_with_their_ports_and_addresses(host) -> None:  # noqa: ANN001
    now = links(host)
    for bridge in ("xenbr0", "xenbr20", "xenbr-int"):
        assert now[bridge]["linkinfo"]["info_kind"] == "bridge", bridge
        assert "UP" in now[bridge]["flags"], bridge
        assert now[bridge]["linkinfo"]["info_data"]["stp_state"] == 0, bridge
    assert ("10.0.2.15", 24) in addresses(host, "xenbr0")
    assert now["ens3"]["master"] == "xenbr0"
    vlan = now["ens4.20"]
    assert vlan["linkinfo"]["info_kind"] == "vlan"
    assert vlan["linkinfo"]["info_data"]["id"] == 20
    assert vlan["master"] == "xenbr20"
    assert addresses(host, "xenbr20") == [("198.51.100.1", 24)]
    assert addresses(host, "xenbr-int") == [("192.168.99.1", 24)]
    routes = json.loads(host.check_output("ip -j route show default"))
    assert [r["dev"] for r in routes] == ["xenbr0"]


def guest_ports(host: Any) -> dict[str, list[str]]:
    """Each guest's interfaces on xenbr0, by guest name (from xl's domain IDs)."""
    domids = {
        str(row["id"]): str(row["name"]) for row in parse_xl_list(host.check_output("xl list"))
    }
    ports: dict[str, list[str]] = {}
    for name, link in links(host).items():
        found = GUEST_LINK.match(name)
        if found and link.get("master") == "xenbr0":
            ports.setdefault(domids.get(found[1], found[1]), []).append(name)
    return ports


def test_each_guest_has_its_interface_on_xenbr0(host, e2e: E2E) -> None:  # noqa: ANN001
    # A PVH guest that triple-faults under the lab's emulation is restarted
    # (on_crash), and has no interface for a moment: look again for a while.
    deadline = time.monotonic() + GUEST_BACK
    while sorted(ports := guest_ports(host)) != sorted(e2e.guests) and time.monotonic() < deadline:
        time.sleep(5)
    assert sorted(ports) == sorted(e2e.guests), ports
