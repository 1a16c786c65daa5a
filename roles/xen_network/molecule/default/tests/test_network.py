"""xen_network in a trixie VM with two NICs: the bridges as the kernel reports
them, check mode, invalid settings and, last, a change that cuts the
management path and must be rolled back by the host itself."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "molecule"))
from helpers import (
    SshWatch,
    lab_link,
    molecule_instance,
    playbook,
    record,
    scenario_file,
    tree_digest,
)

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_network_plan as npl

MGMT_IP = "10.0.2.15"
BRIDGES = ("xenbr0", "xenbr20", "xenbr-int")
WATCHED = ("/etc/network", "/etc/xen", "/var/lib/xen-network")
FAULT_TIMEOUT = 45  # xen_network_confirm_timeout in fault.yml
ROLE_VARS = Path(__file__).resolve().parents[3] / "vars" / "main.yml"
INT_FILE = "/etc/network/interfaces.d/xen-xenbr-int"
NETWORK_FILES = "sha256sum /etc/network/interfaces /etc/network/interfaces.d/*"
RESCUE_GRACE = 30  # __xen_network_rescue_grace


def lab_bridges(int_address: str = "192.168.99.1/24", xenbr0: dict[str, Any] | None = None) -> str:
    """converge.yml's bridges as extra vars, with xenbr-int's address or xenbr0 changed."""
    bridges = [
        xenbr0 or {"name": "xenbr0", "primary": True},
        {"name": "xenbr20", "ports": ["ens4"], "vlan": 20, "ipv4": {"address": "198.51.100.1/24"}},
        {"name": "xenbr-int", "ipv4": {"address": int_address}},
    ]
    return json.dumps({"xen_network_bridges": bridges})


def ip_json(host: Any, *args: str) -> list[dict[str, Any]]:
    return json.loads(host.check_output("ip -j " + " ".join(args)))


def links(host: Any) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in ip_json(host, "-d", "link")}


def ipv4(host: Any) -> dict[str, list[tuple[str, int]]]:
    return {
        a["ifname"]: [(i["local"], i["prefixlen"]) for i in a["addr_info"] if i["family"] == "inet"]
        for a in ip_json(host, "addr")
    }


def network_state(host: Any) -> list[tuple[str, Any, Any, Any]]:
    """What must not move: each link's master, state and IPv4 addresses."""
    addresses = ipv4(host)
    return sorted(
        (name, link.get("master"), link["operstate"], addresses.get(name))
        for name, link in links(host).items()
    )


def squeeze(text: str) -> str:
    """Ansible's YAML output wraps long messages; compare them word by word."""
    return " ".join(text.split())


def test_xenbr0_holds_the_management_address_with_the_nics_mac(host) -> None:  # noqa: ANN001
    now = links(host)
    assert (MGMT_IP, 24) in ipv4(host)["xenbr0"]
    assert now["xenbr0"]["linkinfo"]["info_kind"] == "bridge"
    # bridge_hw ens3: the DHCP server saw the same MAC and gave the same address.
    assert now["xenbr0"]["address"] == now["ens3"]["address"]
    routes = ip_json(host, "route", "show", "default")
    assert [r["dev"] for r in routes] == ["xenbr0"]


def test_ens3_is_a_port_of_xenbr0_without_an_address(host) -> None:  # noqa: ANN001
    ens3 = links(host)["ens3"]
    assert ens3["master"] == "xenbr0"
    assert "UP" in ens3["flags"]
    # No IPv4 and no IPv6 either: SLAAC would give the port the bridge's addresses.
    assert ip_json(host, "addr", "show", "dev", "ens3")[0]["addr_info"] == []


def test_vlan_20_on_ens4_is_the_port_of_xenbr20(host) -> None:  # noqa: ANN001
    now = links(host)
    vlan = now["ens4.20"]
    assert vlan["link"] == "ens4"
    assert vlan["linkinfo"]["info_kind"] == "vlan"
    assert vlan["linkinfo"]["info_data"]["id"] == 20
    assert vlan["master"] == "xenbr20"
    assert "UP" in vlan["flags"]
    assert now["xenbr20"]["linkinfo"]["info_kind"] == "bridge"
    assert ipv4(host)["xenbr20"] == [("198.51.100.1", 24)]
    assert now["ens4"].get("master") is None


def test_host_only_bridge_is_up_with_its_address_and_no_ports(host) -> None:  # noqa: ANN001
    now = links(host)
    assert "UP" in now["xenbr-int"]["flags"]
    assert ipv4(host)["xenbr-int"] == [("192.168.99.1", 24)]
    assert [name for name, link in now.items() if link.get("master") == "xenbr-int"] == []


def test_bridges_forward_at_once_without_stp(host) -> None:  # noqa: ANN001
    now = links(host)
    for bridge in BRIDGES:
        data = now[bridge]["linkinfo"]["info_data"]
        assert data["stp_state"] == 0, bridge
        assert data["forward_delay"] == 0, bridge


def test_ifupdown_has_the_bridges_up(host) -> None:  # noqa: ANN001
    state = set(host.check_output("ifquery --state").split())
    assert {"xenbr0=xenbr0", "xenbr20=xenbr20", "xenbr-int=xenbr-int", "ens3=ens3"} <= state


def test_files_are_the_roles_and_the_original_is_kept(host) -> None:  # noqa: ANN001
    interfaces = host.file("/etc/network/interfaces").content_string
    assert re.search(r"^allow-hotplug ens3$", interfaces, re.M)
    assert re.search(r"^iface ens3 inet manual$", interfaces, re.M)
    assert "inet dhcp" not in interfaces
    assert re.search(r"^source /etc/network/interfaces\.d/\*$", interfaces, re.M)
    xenbr0 = host.file("/etc/network/interfaces.d/xen-xenbr0").content_string
    assert xenbr0.startswith(npl.OWNED_MARKER + "\n")
    assert "iface xenbr0 inet dhcp\n    bridge_ports ens3\n    bridge_hw ens3\n" in xenbr0
    for bridge in BRIDGES:
        part = host.file(f"/etc/network/interfaces.d/xen-{bridge}")
        assert part.mode == 0o644
        assert part.content_string.startswith(npl.OWNED_MARKER)
    orig = host.file("/etc/network/interfaces.xen-network.orig").content_string
    assert re.search(r"^iface ens3 inet dhcp$", orig, re.M)
    assert host.file("/var/lib/xen-network/last-state").content_string.strip() == "state=confirmed"


def test_new_guests_join_xenbr0(host) -> None:  # noqa: ANN001
    xl_conf = host.file("/etc/xen/xl.conf").content_string
    assert re.findall(r"^#?\s*vif\.default\.bridge.*$", xl_conf, re.M) == [
        'vif.default.bridge="xenbr0"'
    ]


def test_check_mode_shows_the_change_and_changes_nothing(host) -> None:  # noqa: ANN001
    before = tree_digest(host, *WATCHED), network_state(host)
    changed = lab_bridges("192.168.99.2/24")
    proc = playbook(scenario_file("converge.yml"), "--check", "--diff", "-e", changed)
    assert proc.returncode == 0
    assert "-    address 192.168.99.1/24" in proc.stdout
    assert "+    address 192.168.99.2/24" in proc.stdout
    assert "take down xenbr-int" in squeeze(proc.stdout)
    assert (tree_digest(host, *WATCHED), network_state(host)) == before


def test_invalid_settings_are_refused_before_any_change(host, tmp_path) -> None:  # noqa: ANN001
    before = tree_digest(host, *WATCHED), network_state(host)
    report = tmp_path / "bad.json"
    proc = playbook(scenario_file("bad_input.yml"), env={"XEN_BAD_INPUT_REPORT": str(report)})
    assert proc.returncode == 0
    got = json.loads(report.read_text())
    expected = {
        "name_too_long": npl.MSG_NAME_LONG.format(
            what="Bridge name", name="xenbr-much-too-long", length=19
        ),
        "name_bad_chars": npl.MSG_NAME_CHARS.format(
            what="Bridge name", name="xen/br30", allowed="letters, digits, '-' and '_'"
        ),
        "vlan_out_of_range": npl.MSG_VLAN_RANGE.format(bridge="xenbr30", vlan=4095),
        "ipv4_invalid": npl.MSG_ADDRESS_INVALID.format(
            bridge="xenbr30",
            family="ipv4",
            address="198.51.100.300/24",
            version="IPv4",
            example="198.51.100.1/24",
        ),
        "ipv6_prefix_invalid": npl.MSG_ADDRESS_INVALID.format(
            bridge="xenbr30",
            family="ipv6",
            address="2001:db8::1/129",
            version="IPv6",
            example="2001:db8::1/64",
        ),
        "gateway_outside_subnet": npl.MSG_GATEWAY_OUTSIDE.format(
            bridge="xenbr30",
            family="ipv4",
            gateway="198.51.100.254",
            network="192.0.2.0/24",
            address="192.0.2.1/24",
        ),
        "duplicate_bridge_name": npl.MSG_NAME_DUPLICATE.format(name="xenbr-int", count=2),
        "port_in_two_bridges": npl.MSG_PORT_TWICE.format(
            port="ens3", first="xenbr0", second="xenbr30"
        ),
        "port_missing": "Bridge xenbr30: interface ens9 does not exist on this host (it has ens3,",
        "second_primary": npl.MSG_PRIMARY_TWICE.format(names="xenbr0, xenbr30"),
        # These two are caught by meta/argument_specs.yml, before the role's own checks.
        "unknown_key": "xen_network_bridges.prots. Supported parameters include: bond, fd, ipv4,",
        "unknown_method": "value of method must be one of: inherit, dhcp, static, manual, got:"
        " bootp found in xen_network_bridges -> ipv4",
        "confirm_timeout_too_short": npl.MSG_CONFIRM_TIMEOUT.format(value=5, low=30, high=3600),
    }
    assert set(got) == set(expected)
    for case, message in expected.items():
        assert message in got[case], f"{case}: {got[case]!r}"
    assert (tree_digest(host, *WATCHED), network_state(host)) == before


def start_unconfirmed_change(host: Any, token: str, address: str, window: int) -> None:
    """Moves xenbr-int to ADDRESS the way the role does, with nobody to confirm it.

    The staged file and manifest (from the planner's own render_manifest) are
    what the role's staging step writes for this change; the apply script is
    started as the role starts it.
    """
    staged = f"/run/xen-network/staged-{token}"
    content = host.file(INT_FILE).content_string.replace("192.168.99.1/24", address)
    change = {"files": {INT_FILE: content}, "remove": [], "created": []}
    manifest = npl.render_manifest({**change, "down": ["xenbr-int"], "up": ["xenbr-int"]})
    host.check_output("mkdir -p -m 0700 %s", staged)
    host.check_output("printf '%%s' %s >%s", content, f"{staged}/xen-xenbr-int")
    host.check_output("printf '%%s' %s >%s", manifest, f"{staged}/manifest")
    host.check_output(
        "systemd-run --unit=xen-network-apply-%s --property=Type=oneshot"
        " --property=RemainAfterExit=yes --collect --no-block"
        " /usr/local/sbin/xen-network-apply %s %s",
        token,
        token,
        str(window),
    )
    wait_for_state(host, token, "state=waiting", 120)
    assert ipv4(host)["xenbr-int"] == [(address.split("/")[0], 24)]
    assert host.file("/var/lib/xen-network/pending").exists


def wait_for_state(host: Any, token: str, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = host.run("cat /run/xen-network/state-%s", token).stdout.strip()
        if state.startswith(prefix):
            return state
        time.sleep(2)
    raise AssertionError(f"state-{token} is {state!r} after {timeout} s, not {prefix}...")


def assert_previous_configuration(host: Any, sums: str, state: list[Any]) -> None:
    assert host.check_output(NETWORK_FILES) == sums
    assert not host.file("/var/lib/xen-network/pending").exists
    leftovers = host.run("find /etc/network -name '.*xen-network-*'").stdout.split()
    assert leftovers == []
    deadline = time.monotonic() + 60
    while network_state(host) != state and time.monotonic() < deadline:
        time.sleep(2)
    assert network_state(host) == state


def test_a_killed_apply_script_is_rolled_back_by_its_timer(host) -> None:  # noqa: ANN001
    sums, state = host.check_output(NETWORK_FILES), network_state(host)
    window = 30
    start_unconfirmed_change(host, "vmkill", "192.168.99.3/24", window)

    # (b) SIGKILL inside the window: the script cannot roll back; its timer does.
    pid = host.check_output("systemctl show -p MainPID --value xen-network-apply-vmkill")
    killed = time.monotonic()
    host.check_output("kill -KILL %s", pid)
    final = wait_for_state(host, "vmkill", "state=rolled-back", window + RESCUE_GRACE + 180)
    recovered = time.monotonic() - killed
    assert final == "state=rolled-back reason=apply-died"
    assert_previous_configuration(host, sums, state)
    record(
        "network-kill",
        f"KILL: apply script SIGKILLed inside a {window} s window; its rescue timer restored the"
        f" previous configuration {recovered:.0f} s after the kill",
    )


def test_a_second_run_refuses_and_a_reboot_inside_the_window_boots_the_previous_configuration(
    host,  # noqa: ANN001
) -> None:
    assert host.check_output("systemctl is-enabled xen-network-guard.service") == "enabled"
    before = host.check_output("systemctl show -p Before --value xen-network-guard.service")
    assert {"network-pre.target", "networking.service"} <= set(before.split())
    sums, state = host.check_output(NETWORK_FILES), network_state(host)
    boot_id = host.file("/proc/sys/kernel/random/boot_id").content_string
    start_unconfirmed_change(host, "vmboot", "192.168.99.4/24", 900)

    # (c) Another run while the change is in flight refuses at its staging step.
    proc = playbook(scenario_file("converge.yml"), "-e", lab_bridges("192.168.99.5/24"))
    assert proc.returncode != 0
    message = yaml.safe_load(ROLE_VARS.read_text())["__xen_network_lock_message"]
    expected = f"/run/xen-network/lock is held by another process: {message}"
    assert squeeze(expected) in squeeze(proc.stdout + proc.stderr)
    assert [n for n in host.run("ls /run/xen-network").stdout.split() if "staged-" in n] == []
    assert wait_for_state(host, "vmboot", "state=waiting", 5)
    assert ipv4(host)["xenbr-int"] == [("192.168.99.4", 24)]

    # (a) Power lost inside the window: an immediate reset, no shutdown, no sync.
    watch = SshWatch(molecule_instance())
    host.check_output(
        "systemd-run --no-block --collect sh -c 'sleep 2; echo b >/proc/sysrq-trigger'"
    )
    reset = time.monotonic()
    watch.start()
    watch.join(timeout=600)
    assert watch.up_at is not None, "SSH did not answer again after the reset"
    back = watch.up_at - reset
    assert host.file("/proc/sys/kernel/random/boot_id").content_string != boot_id
    assert host.file("/var/lib/xen-network/last-state").content_string.strip() == (
        "state=rolled-back reason=boot"
    )
    log = host.file("/var/log/xen-network-apply.log").content_string
    assert "previous files restored at boot" in log
    assert ipv4(host)["xenbr-int"] == [("192.168.99.1", 24)]
    # The confirmed bridges came back by themselves at boot, and the host
    # reaches its mirror again: default route through xenbr0, DNS.
    assert_previous_configuration(host, sums, state)
    assert [r["dev"] for r in ip_json(host, "route", "show", "default")] == ["xenbr0"]
    assert host.run("getent hosts deb.debian.org").rc == 0
    assert ip_json(host, "addr", "show", "dev", "ens3")[0]["addr_info"] == []
    record(
        "network-reboot",
        f"REBOOT: host reset inside the confirmation window; SSH answered {back:.0f} s later"
        " on the previous configuration (restored at boot by xen-network-guard.service)",
    )


def test_zz_a_change_that_cuts_the_management_path_is_rolled_back(host) -> None:  # noqa: ANN001
    """Last test: xenbr0 over ens4 instead of ens3 leaves ens3 without its address."""
    files = "sha256sum /etc/network/interfaces /etc/network/interfaces.d/*"
    sums_before = host.check_output(files)
    state_before = network_state(host)
    watch = SshWatch(molecule_instance())
    watch.start()
    started = time.monotonic()
    proc = playbook(scenario_file("fault.yml"))
    watch.stop.set()
    watch.join(timeout=60)
    total = time.monotonic() - started

    assert proc.returncode != 0
    assert squeeze(npl.MSG_ROLLED_BACK_TIMEOUT.format(timeout=FAULT_TIMEOUT)) in squeeze(
        proc.stdout + proc.stderr
    )
    assert watch.down_at is not None, "SSH never went away: the fault did not cut the path"
    assert watch.up_at is not None, "SSH did not answer again"
    outage = watch.up_at - watch.down_at
    record(
        "network-rollback",
        f"ROLLBACK: SSH answered again {outage:.0f} s after it went away"
        f" (confirmation window {FAULT_TIMEOUT} s); the failed run took {total:.0f} s in all",
    )
    assert outage < 120

    # The files are the previous ones, byte for byte, and so is the network.
    assert host.check_output(files) == sums_before
    assert host.file("/var/lib/xen-network/last-state").content_string.strip() == (
        "state=rolled-back reason=timeout"
    )
    deadline = time.monotonic() + 60
    while network_state(host) != state_before and time.monotonic() < deadline:
        time.sleep(2)  # DHCP on the restored xenbr0 may still be settling
    assert network_state(host) == state_before


def bonding(host: Any) -> tuple[str, list[str]]:
    """The bond's active member and its members, as the kernel reports them."""
    info = host.file("/proc/net/bonding/bond0").content_string
    assert "Bonding Mode: fault-tolerance (active-backup)" in info
    active = re.search(r"^Currently Active Slave: (\S+)$", info, re.M)
    members = re.findall(r"^Slave Interface: (\S+)$", info, re.M)
    return (active.group(1) if active else ""), members


def test_zzz_a_bond_under_xenbr0_keeps_the_host_reachable_without_a_member(
    host,  # noqa: ANN001
) -> None:
    """Last of all: xenbr0 moves onto bond0 (ens3 and ens7 on one hub), then a cable goes."""
    bonded = lab_bridges(
        xenbr0={
            "name": "xenbr0",
            "primary": True,
            "ports": ["ens3", "ens7"],
            "bond": {"name": "bond0", "mode": "active-backup"},
        }
    )
    proc = playbook(scenario_file("converge.yml"), "-e", bonded)
    assert proc.returncode == 0
    now = links(host)
    assert now["bond0"]["linkinfo"]["info_kind"] == "bond"
    assert now["bond0"]["master"] == "xenbr0"
    assert now["ens3"]["master"] == "bond0"
    assert now["ens7"]["master"] == "bond0"
    assert (MGMT_IP, 24) in ipv4(host)["xenbr0"]
    active, members = bonding(host)
    assert sorted(members) == ["ens3", "ens7"]
    # The same settings again change nothing.
    again = playbook(scenario_file("converge.yml"), "-e", bonded)
    assert again.returncode == 0
    assert re.search(r"net-trixie\s+:.* changed=0 ", again.stdout), again.stdout[-600:]

    device = {"ens3": "nic0", "ens7": "nic2"}[active]
    other = "ens7" if active == "ens3" else "ens3"
    unplugged = time.monotonic()
    lab_link(device, "down")
    try:
        failover = None
        gaps: list[float] = []
        last_answer = time.monotonic()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answered = host.run("cat /proc/net/bonding/bond0")
            now_t = time.monotonic()
            if answered.rc == 0:
                gaps.append(now_t - last_answer)
                last_answer = now_t
                if failover is None and f"Currently Active Slave: {other}" in answered.stdout:
                    failover = now_t - unplugged
            time.sleep(1)
        assert failover is not None, "the bond never made the other member active"
        assert bonding(host)[0] == other
        assert (MGMT_IP, 24) in ipv4(host)["xenbr0"]
        record(
            "network-bond",
            f"BOND: {active} unplugged; {other} active after {failover:.1f} s, the host answered"
            f" SSH throughout (longest gap between answers {max(gaps):.1f} s)",
        )
        assert max(gaps) < 15
    finally:
        lab_link(device, "up")
