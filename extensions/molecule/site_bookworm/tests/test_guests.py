"""site.yml end to end on a bookworm VM (the checks both releases share are in
tests/molecule/e2e_checks.py), then what the guests role does to guests once
they run: invalid guest lists change nothing; an interrupted run converges
without duplicates or orphans; then a guest is stopped, removed with its disk
kept, and purged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests" / "molecule"))
from e2e_checks import *  # noqa: F403  (the shared end-to-end tests)
from e2e_checks import DISK_DIR, E2E, guest_list, listed, on_guest
from helpers import playbook, record, scenario_file

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp

WATCHED = ("/etc/xen", "/var/lib/xen", "/usr/local/sbin")


def converge(guests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return playbook(scenario_file("guests_only.yml"), "-e", json.dumps({"xen_guests_list": guests}))


def host_state(host: Any) -> str:
    """Files (path, mode, size, mtime) under the watched folders, and the domains."""
    files = host.check_output(
        "find %s -xdev -printf '%%p %%m %%s %%T@\\n' 2>/dev/null | sort", " ".join(WATCHED)
    )
    return files + "\n" + "\n".join(sorted(listed(host)))


# One invalid guest per case, all in one list: the role names every problem at
# once. Each case is (guest settings, the message it must give).
def bad_cases() -> dict[str, tuple[dict[str, Any], str]]:
    rel = {"release": "trixie"}

    def guest(name: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "type": "pv", "disks": [{"size": "3G"}], "os": rel, **kw}

    def iface(name: str, **kw: Any) -> dict[str, Any]:
        return guest(name, interfaces=[kw])

    return {
        "duplicate_name": (guest("pv1"), gp.MSG_DUPLICATE_NAME.format(name="pv1")),
        "name_with_path": (guest("../etc"), gp.MSG_NAME.format(name="../etc")),
        "name_uppercase": (guest("Web1"), gp.MSG_NAME.format(name="Web1")),
        "unknown_type": (
            guest("b-type", type="kvm"),
            "Guest b-type: type 'kvm' is not one of pv, pvh, hvm.",
        ),
        "unknown_key": (
            guest("b-key", memroy="1G"),
            "Guest b-key: unknown key 'memroy' in the guest (did you mean 'memory'?).",
        ),
        "vcpus_too_many": (
            guest("b-cpus", vcpus=64),
            "Guest b-cpus: vcpus 64 is more than the host's 2 CPUs.",
        ),
        "vcpus_zero": (guest("b-cpu0", vcpus=0), "Guest b-cpu0: vcpus 0 is below 1."),
        "memory_below_minimum": (
            guest("b-mem", memory="64M"),
            "Guest b-mem: memory 64 MiB is below the minimum of 128 MiB.",
        ),
        "bridge_missing": (
            iface("b-bridge", bridge="xenbr9"),
            "Guest b-bridge: interfaces[0].bridge 'xenbr9' does not exist on the host"
            " (found: xenbr0).",
        ),
        "mac_invalid": (
            iface("b-mac", mac="00:16:3e:zz:00:01"),
            gp.MSG_MAC.format(name="b-mac", field="interfaces[0]", value="00:16:3e:zz:00:01"),
        ),
        "mac_multicast": (
            iface("b-mcast", mac="01:16:3e:00:00:01"),
            gp.MSG_MAC_MULTICAST.format(
                name="b-mcast", field="interfaces[0]", value="01:16:3e:00:00:01"
            ),
        ),
        "ip_duplicate": (
            iface("b-ipdup", ipv4={"address": "10.0.2.51/24"}),
            "Guest b-ipdup: ipv4 address 10.0.2.51 is also used by guest pv1.",
        ),
        "ip_invalid": (
            iface("b-ip", ipv4={"address": "10.0.2.300/24"}),
            gp.MSG_IP_ADDRESS.format(
                name="b-ip",
                field="interfaces[0].ipv4",
                value="10.0.2.300/24",
                family="IPv4",
                example="192.0.2.10/24",
            ),
        ),
        "gateway_outside": (
            iface("b-gw", ipv4={"address": "10.0.2.60/24", "gateway": "10.0.3.1"}),
            "Guest b-gw: interfaces[0].ipv4.gateway 10.0.3.1 is outside the subnet 10.0.2.0/24.",
        ),
        "os_missing": (
            {"name": "b-noos", "type": "pv"},
            gp.MSG_OS_MISSING.format(name="b-noos"),
        ),
        "os_release_unknown": (
            guest("b-rel", os={"release": "buster"}),
            "Guest b-rel: os.release 'buster' is not one of trixie, bookworm.",
        ),
        "iso_on_pv": (
            guest("b-iso", os={"iso": "/srv/iso/debian.iso"}),
            gp.MSG_OS_ISO_TYPE.format(name="b-iso", type="pv"),
        ),
        "image_url_without_checksum": (
            guest("b-url", type="hvm", os={"image": "http://example.org/disk.qcow2"}),
            gp.MSG_OS_CHECKSUM_MISSING.format(name="b-url"),
        ),
        "root_disk_too_small": (
            guest("b-small", disks=[{"size": "1G"}]),
            "Guest b-small: disks[0].size is 1024 MiB, smaller than the 2048 MiB image of"
            " os.release trixie it is copied from.",
        ),
        "disk_backend_unknown": (
            guest("b-zfs", disks=[{"size": "3G", "backend": "zfs"}]),
            "Guest b-zfs: disks[0].backend 'zfs' is not one of file, lvm.",
        ),
        "lvm_volume_group_missing": (
            guest("b-vg", disks=[{"size": "3G", "backend": "lvm", "vg": "vg0"}]),
            "Guest b-vg: disks[0].vg 'vg0' is not a volume group on the host (found: none).",
        ),
        "purge_while_running": (
            guest("b-purge", purge=True),
            gp.MSG_PURGE.format(name="b-purge", state="running"),
        ),
        "state_unknown": (
            guest("b-state", state="paused"),
            "Guest b-state: state 'paused' is not one of running, stopped, absent.",
        ),
        "template_path": (
            guest("b-tpl", template="../../etc/passwd"),
            gp.MSG_TEMPLATE.format(name="b-tpl", value="../../etc/passwd"),
        ),
        "memory_more_than_free": (
            guest("b-big", memory="16G"),
            "xen_guests_list: the guests with state running need",
        ),
    }


def test_invalid_guests_are_refused_and_nothing_changes(host, e2e: E2E, tmp_path: Path) -> None:  # noqa: ANN001
    cases = bad_cases()
    assert len(cases) >= 20
    before = host_state(host)
    report = tmp_path / "bad-input.txt"
    bad = [*guest_list(e2e.inventory), *(settings for settings, _ in cases.values())]
    proc = playbook(
        scenario_file("bad_input.yml"),
        "-e",
        json.dumps({"__bad_guests": bad}),
        env={"XEN_BAD_INPUT_REPORT": str(report)},
    )
    assert proc.returncode == 0
    found = [" ".join(line.split()) for line in report.read_text().splitlines()]
    for case, (_, message) in cases.items():
        wanted = " ".join(message.split())
        assert any(line.startswith(wanted) for line in found), f"{case}: {wanted}"
    assert host_state(host) == before


# The guest the interrupt test adds.
PV2: dict[str, Any] = {
    "name": "pv2",
    "type": "pv",
    "memory": "256M",
    "disks": [{"size": "3G"}],
    "interfaces": [{"ipv4": {"address": "10.0.2.53/24", "gateway": "10.0.2.2"}}],
    "os": {"release": "trixie"},
}


def test_an_interrupted_run_converges_without_duplicates_or_orphans(host, e2e: E2E) -> None:  # noqa: ANN001
    guests = [*guest_list(e2e.inventory), PV2]
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    cmd = [
        "ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
        str(scenario_file("guests_only.yml")), "-e", json.dumps({"xen_guests_list": guests}),
    ]  # fmt: skip
    started = time.monotonic()
    run = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    seen = ""
    try:
        deadline = started + 600
        while time.monotonic() < deadline and run.poll() is None:
            if host.run("pgrep -f '[x]en-guests-disk clone .*pv2-root'").rc == 0:
                seen = "the root disk copy"
                break
            time.sleep(0.5)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert seen, "the run ended before it copied pv2's disk"
    killed_at = time.monotonic() - started

    again = converge(guests)
    assert again.returncode == 0
    assert listed(host).count("pv2") == 1
    images = sorted(host.check_output("ls -1 %s", DISK_DIR).split())
    assert images == ["pv1-root.img", "pv2-root.img", "pvh1-root.img"]
    assert host.file(f"{DISK_DIR}/pv2-root.img").size == 3 * 1024**3
    assert on_guest("10.0.2.53", "hostname").stdout.strip() == "pv2"
    record(
        "guests-interrupt",
        f"INTERRUPT: killed the run {killed_at:.0f} s in, during {seen}; the next run converged",
    )

    # the next test removes pv2 with purge


def test_stopped_then_absent_keeps_the_disk_then_purge_deletes_it(host, e2e: E2E) -> None:  # noqa: ANN001
    pv1, pvh1 = guest_list(e2e.inventory)
    disk = f"{DISK_DIR}/pvh1-root.img"
    pv2 = {"name": "pv2", "type": "pv", "os": {"release": "trixie"}}

    # pvh1 stops; pv2 from the interrupt test is removed with its disk
    stopped = converge(
        [pv1, {**pvh1, "state": "stopped"}, {**pv2, "state": "absent", "purge": True}]
    )
    assert stopped.returncode == 0
    assert "pvh1" not in listed(host)
    assert "pv2" not in listed(host)
    assert "pv1" in listed(host)
    assert host.file("/etc/xen/pvh1.cfg").exists
    assert not host.file("/etc/xen/auto/pvh1.cfg").exists
    assert host.file(disk).exists
    assert not host.file(f"{DISK_DIR}/pv2-root.img").exists
    assert not host.file("/etc/xen/pv2.cfg").exists

    absent = converge([pv1, {**pvh1, "state": "absent"}])
    assert absent.returncode == 0
    assert "pvh1" not in listed(host)
    assert not host.file("/etc/xen/pvh1.cfg").exists
    assert not host.file("/var/lib/xen/seeds/pvh1").exists
    assert host.file(disk).exists
    assert f"its disks are kept: {disk}" in " ".join(absent.stdout.split())

    purged = converge([pv1, {**pvh1, "state": "absent", "purge": True}])
    assert purged.returncode == 0
    assert not host.file(disk).exists
    assert f"Deleted: {disk}" in " ".join(purged.stdout.split())
    assert "pv1" in listed(host)
    assert sorted(host.check_output("ls -1 %s", DISK_DIR).split()) == ["pv1-root.img"]
