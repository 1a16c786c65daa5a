"""What the end-to-end scenarios of both releases check after site.yml ran.

A scenario's test module imports the ``test_*`` functions below (pytest
collects them there) and the ``e2e`` fixture. The facts that differ between
releases (Xen version, paging mode) are read from the host.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO, molecule_instance, playbook, scenario_file

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_guests_inventory import link_local
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import (
    parse_xl_info,
    parse_xl_list,
)

DISK_DIR = "/var/lib/xen/images"
ICMP_ECHO = Path(__file__).with_name("icmp_echo.py")
DOM0_MEM = 1024
# Xen of each release, and the paging mode the lab's CPU model gives it for
# PVH guests (bookworm: shadow on qemu64,+svm; trixie: HAP on +npt).
XEN = {"trixie": ("4.20", "hap"), "bookworm": ("4.17", "shadow")}


@dataclass(frozen=True)
class E2E:
    """The scenario as the tests see it."""

    release: str
    dom0: str  # the VM's inventory name
    inventory: Path  # tests/e2e/<release>: its group_vars and the plugin's file
    guests: dict[str, tuple[str, str]]  # name -> (type, address the dom0 reaches)


def guest_list(inventory: Path) -> list[dict[str, Any]]:
    """The scenario's xen_guests_list, as its group_vars give it."""
    path = inventory / "group_vars" / "xen_dom0s" / "guests.yml"
    return yaml.safe_load(path.read_text())["xen_guests_list"]


def guest_address(guest: dict[str, Any]) -> str:
    """Where the dom0 reaches a guest: its static address, or its link-local one."""
    ipv4 = guest["interfaces"][0].get("ipv4", {}).get("address")
    return ipv4.split("/")[0] if ipv4 else link_local(gp.stable_mac(guest["name"], 0), "xenbr0")


@pytest.fixture(scope="module")
def e2e(host) -> E2E:  # noqa: ANN001
    release = host.check_output(". /etc/os-release && echo $VERSION_CODENAME")
    inventory = REPO / "tests" / "e2e" / release
    guests = {g["name"]: (g["type"], guest_address(g)) for g in guest_list(inventory)}
    return E2E(release, molecule_instance()["instance"], inventory, guests)


def domains(host: Any) -> dict[str, dict[str, Any]]:
    """Guests as `xl list -l` reports them, by name."""
    entries = json.loads(host.check_output("xl list -l") or "[]")
    return {
        e["config"]["c_info"]["name"]: e["config"]
        for e in entries
        if e["config"]["c_info"]["name"] != "Domain-0"
    }


def listed(host: Any) -> list[str]:
    """Names in `xl list`, duplicates kept."""
    rows = parse_xl_list(host.check_output("xl list"))
    return [str(row["name"]) for row in rows if row["name"] != "Domain-0"]


def on_guest(address: str, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command on a guest over SSH, jumping through the dom0 like a user would."""
    vm = molecule_instance()
    base = [
        "ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
        "-i", vm["identity_file"],
    ]  # fmt: skip
    jump = " ".join([*base, "-p", str(vm["port"]), "-W", "'[%h]:%p'", f"root@{vm['address']}"])
    cmd = [*base, "-o", f"ProxyCommand={jump}", f"root@{address}", *command]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)


def recap_changed(stdout: str) -> str | None:
    """The changed= counts of every host in the last PLAY RECAP, summed; None
    when there is no recap or a host failed or was unreachable."""
    parts = stdout.rsplit("PLAY RECAP", 1)
    if len(parts) < 2:
        return None
    hosts = re.findall(
        r"^\S+\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", parts[1], re.M
    )
    if not hosts or any(unreachable != "0" or failed != "0" for _, unreachable, failed in hosts):
        return None
    return str(sum(int(changed) for changed, _, _ in hosts))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests named test_zz_* change the host (a trial entry for new options):
    they run after every other test, wherever their file is (a plugin hook:
    this module is loaded with -p e2e_checks)."""
    items.sort(key=lambda item: item.name.startswith("test_zz_"))


def test_the_vm_is_a_dom0_with_its_limits_and_xenbr0(host, e2e: E2E) -> None:  # noqa: ANN001
    assert "control_d" in host.file("/proc/xen/capabilities").content_string
    info = parse_xl_info(host.check_output("xl info"))
    version, paging = XEN[e2e.release]
    assert f"{info['xen_major']}.{info['xen_minor']}" == version
    assert paging in info["virt_caps"].split()
    dom0 = parse_xl_list(host.check_output("xl list 0"))[0]
    assert abs(int(dom0["mem"]) - DOM0_MEM) <= 32
    links = {link["ifname"]: link for link in json.loads(host.check_output("ip -j link"))}
    assert links["ens3"]["master"] == "xenbr0"
    assert links["xenbr0"]["address"] == links["ens3"]["address"]


def test_check_mode_on_the_converged_host_reports_no_changes(host) -> None:  # noqa: ANN001
    del host
    proc = playbook(scenario_file("converge.yml"), "--check", "--diff")
    assert proc.returncode == 0
    assert recap_changed(proc.stdout) == "0", proc.stdout[-3000:]


def test_guests_run_with_their_planned_type_size_and_mac(host, e2e: E2E) -> None:  # noqa: ANN001
    found = domains(host)
    for name, (gtype, _) in e2e.guests.items():
        config = found[name]
        assert config["c_info"]["type"] == gtype
        assert config["b_info"]["target_memkb"] == 384 * 1024
        assert config["b_info"]["max_vcpus"] == 1
        assert config["nics"][0]["mac"] == gp.stable_mac(name, 0)
        assert config["nics"][0]["bridge"] == "xenbr0"
        assert config["disks"][0]["pdev_path"] == f"{DISK_DIR}/{name}-root.img"
        b_info = config["b_info"]
        kernel = b_info.get("kernel") or b_info.get(f"type.{gtype}", {}).get("kernel")
        assert kernel == f"/var/lib/xen/boot/{name}/vmlinuz"
    states = {row["name"]: str(row["state"]) for row in parse_xl_list(host.check_output("xl list"))}
    for name in e2e.guests:
        assert not set(states[name]) & set("pscd"), f"{name} is {states[name]}"


def test_guests_answer_ping_from_the_dom0(host, e2e: E2E) -> None:  # noqa: ANN001
    # ICMP echo from the dom0, without ping(8)'s kernel timestamps (icmp_echo.py).
    script = ICMP_ECHO.read_text()
    for _, address in e2e.guests.values():
        assert host.run("python3 -c %s %s 3", script, address).rc == 0, address


def test_guests_accept_ssh_with_the_injected_key_and_have_their_identity(e2e: E2E) -> None:
    identities = {}
    for name, (_, address) in e2e.guests.items():
        result = on_guest(
            address,
            "hostname; cat /etc/machine-id; cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub;"
            " df -m --output=size / | tail -n 1",
        )
        assert result.returncode == 0, result.stderr
        hostname, machine_id, host_key, root_mib = result.stdout.split()
        assert hostname == name
        # the 3 GiB disk was grown from the 2 GiB image by cloud-init
        assert int(root_mib) > 2600
        identities[name] = (machine_id, host_key)
    # one image, yet every guest has its own machine-id and SSH host key
    assert len({i[0] for i in identities.values()}) == len(identities)
    assert len({i[1] for i in identities.values()}) == len(identities)


def test_the_dhcp_guest_took_its_address_from_the_dhcp_server(e2e: E2E) -> None:
    static = [a for _, a in e2e.guests.values() if not a.startswith("fe80:")]
    dynamic = [a for _, a in e2e.guests.values() if a.startswith("fe80:")]
    assert dynamic, "the scenario has no DHCP guest"
    for address in dynamic:
        result = on_guest(address, "ip -j -4 addr show dev eth0")
        assert result.returncode == 0, result.stderr
        addresses = [a for link in json.loads(result.stdout) for a in link["addr_info"]]
        assert [a["local"].rsplit(".", 1)[0] for a in addresses] == ["10.0.2"]
        # not the dom0's lease, nor a static guest's address
        assert addresses[0]["local"] not in ("10.0.2.15", *static)


def test_a_play_reaches_the_guests_through_the_inventory_plugin(e2e: E2E) -> None:
    # converge ran the play once on the guests add_host gave it; this separate
    # run gets them from the inventory files alone, and changes nothing.
    proc = playbook(
        REPO / "examples" / "iac-repo" / "guests.yml",
        "-i",
        str(e2e.inventory / "zz-guests.xen_guests.yml"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    for name in e2e.guests:
        line = rf"^{name}\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0"
        recap = re.search(line, proc.stdout, re.MULTILINE)
        assert recap and int(recap[1]) >= 1 and recap[2] == "0", proc.stdout[-3000:]
    # The play reached each guest as the inventory names it: the mark on the
    # guest at that guest's address names it, and so does its host name.
    for name, (gtype, address) in e2e.guests.items():
        result = on_guest(address, "hostname; cat /etc/xen-guest-followup")
        assert result.returncode == 0, result.stderr
        hostname, mark = result.stdout.strip().split("\n", 1)
        assert hostname == name
        assert mark == f"configured as {name}, a {gtype} guest of {e2e.dom0}"


def test_running_guests_start_with_the_dom0(host, e2e: E2E) -> None:  # noqa: ANN001
    for name in e2e.guests:
        link = host.file(f"/etc/xen/auto/{name}.cfg")
        assert link.is_symlink
        assert link.linked_to == f"/etc/xen/{name}.cfg"


# In the order the tests run (a star import binds them in this order).
__all__ = [  # noqa: RUF022  (run order, not alphabetical)
    "E2E",
    "domains",
    "e2e",
    "guest_list",
    "listed",
    "on_guest",
    "test_the_vm_is_a_dom0_with_its_limits_and_xenbr0",
    "test_check_mode_on_the_converged_host_reports_no_changes",
    "test_guests_run_with_their_planned_type_size_and_mac",
    "test_guests_answer_ping_from_the_dom0",
    "test_guests_accept_ssh_with_the_injected_key_and_have_their_identity",
    "test_the_dhcp_guest_took_its_address_from_the_dhcp_server",
    "test_a_play_reaches_the_guests_through_the_inventory_plugin",
    "test_running_guests_start_with_the_dom0",
]
