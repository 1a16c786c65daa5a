"""The apply script (roles/xen_network/templates/xen-network-apply.sh.j2) with
ifupdown and systemd replaced by stubs that record their calls: the order of
ifdown/ifup, the confirmation, the rollback that restores files byte for byte,
the lock, and the safety net for a script that dies (the rescue) or a host
that reboots (the boot guard) inside the confirmation window.

Every path the script touches is a folder of the test's own (/etc/network,
/var/lib, /run, /sys/class/net and the DHCP clients' pid files): nothing runs
against the real host. The Molecule scenario runs the script with the real
ifupdown and systemd in a VM.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_files

ROLE = Path(__file__).resolve().parents[2] / "roles" / "xen_network"

OLD_INTERFACES = b"auto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n"
NEW_INTERFACES = b"auto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet manual\n"
XENBR0 = b"auto xenbr0\niface xenbr0 inet dhcp\n    bridge_ports ens3\n"
OLD_PART = b"# something the role owned before\n"

# `ip -d -o link show` as trixie prints it, shortened.
ENS3_EUI64 = (
    "2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP"
    " mode DEFAULT group default qlen 1000\\    link/ether 52:54:00:12:34:56 brd"
    " ff:ff:ff:ff:ff:ff promiscuity 0 addrgenmode eui64 numtxqueues 1"
)
ENS3_NONE = ENS3_EUI64.replace("addrgenmode eui64", "addrgenmode none")
LINKS = (
    "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT"
    " group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00"
    " promiscuity 0 addrgenmode eui64 numtxqueues 1\n" + ENS3_EUI64 + "\n"
)
# /proc/sys/net/ipv6/conf/*/accept_ra before the change.
ACCEPT_RA = {"all": 0, "default": 1, "lo": 1, "ens3": 1}

# ifquery --state lists what is up; ifup/ifdown record their call and keep
# that list. FAIL_IFUP names an interface whose ifup fails.
STUBS = {
    "ifquery": 'cat "$STUB_DIR/state"\n',
    "ifup": (
        'echo "ifup $*" >>"$STUB_DIR/calls"\n'
        "for i; do iface=$i; done\n"
        '[ "$iface" = "${FAIL_IFUP:-}" ] && exit 1\n'
        'echo "$iface=$iface" >>"$STUB_DIR/state"\n'
        # bridge-utils switches IPv6 address generation off on a bridge's port,
        # and the port's pre-up line router advertisements too.
        'if [ "$iface" = xenbr0 ]; then\n'
        '  sed -i "s/^2: ens3: .*/$ENS3_NONE/" "$STUB_DIR/links"\n'
        '  echo 0 >"$STUB_DIR/ipv6/ens3/accept_ra"\n'
        "fi\n"
    ),
    # `ip -d -o link show` prints the links file; `ip link set dev L
    # addrgenmode M` is recorded and changes it.
    "ip": (
        'case "$*" in\n'
        '  "-d -o link show") cat "$STUB_DIR/links" ;;\n'
        '  "link set dev ens3 addrgenmode eui64")\n'
        '    echo "ip $*" >>"$STUB_DIR/calls"\n'
        '    sed -i "s/^2: ens3: .*/$ENS3_EUI64/" "$STUB_DIR/links" ;;\n'
        '  *) echo "ip $*" >>"$STUB_DIR/calls" ;;\n'
        "esac\n"
    ),
    "ifdown": (
        'echo "ifdown $*" >>"$STUB_DIR/calls"\n'
        '[ -n "${SLOW_IFDOWN:-}" ] && sleep "$SLOW_IFDOWN"\n'
        "for i; do iface=$i; done\n"
        'grep -vx "$iface=$iface" "$STUB_DIR/state" >"$STUB_DIR/state.new"\n'
        'mv "$STUB_DIR/state.new" "$STUB_DIR/state"\n'
    ),
    # systemd: recorded, never run; a test plays the timer or the unit.
    "systemd-run": 'echo "systemd-run $*" >>"$STUB_DIR/systemd"\n',
    "systemctl": 'echo "systemctl $*" >>"$STUB_DIR/systemd"\n',
    # A full disk, or a file system that refuses a rename, for paths that
    # contain $FAIL_CP or $FAIL_MV.
    "cp": (
        'case "$*" in *"${FAIL_CP:-//}"*) echo "cp: No space left on device" >&2; exit 1 ;; esac\n'
        'exec /bin/cp "$@"\n'
    ),
    "mv": (
        'case "$*" in *"${FAIL_MV:-//}"*) echo "mv: Read-only file system" >&2; exit 1 ;; esac\n'
        'exec /bin/mv "$@"\n'
    ),
}


class Host:
    """A directory tree standing in for /etc/network, /var/lib, /run and /sys."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc" / "network"
        self.base = root / "var" / "lib" / "xen-network"
        self.run = root / "run" / "xen-network"
        self.staged = self.run / "staged-t0ken"
        self.sys_net = root / "sys" / "class" / "net"
        self.pids = root / "run"
        self.log = root / "apply.log"
        self.stubs = root / "stubs"
        for path in (self.etc / "interfaces.d", self.staged, self.stubs, self.sys_net):
            path.mkdir(parents=True)
        (self.etc / "interfaces").write_bytes(OLD_INTERFACES)
        (self.etc / "interfaces").chmod(0o644)
        (self.etc / "interfaces.d" / "xen-old").write_bytes(OLD_PART)
        (self.staged / "interfaces").write_bytes(NEW_INTERFACES)
        (self.staged / "xen-xenbr0").write_bytes(XENBR0)
        (self.stubs / "state").write_text("lo=lo\nens3=ens3\n")
        (self.stubs / "calls").write_text("")
        (self.stubs / "links").write_text(LINKS)
        for link, accept_ra in ACCEPT_RA.items():
            (self.stubs / "ipv6" / link).mkdir(parents=True)
            (self.stubs / "ipv6" / link / "accept_ra").write_text(f"{accept_ra}\n")
        for name, body in STUBS.items():
            stub = self.stubs / name
            stub.write_text("#!/bin/sh\n" + body)
            stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
        self.script = root / "xen-network-apply"
        self.script.write_text(self.render())
        self.script.chmod(0o755)

    def render(self) -> str:
        variables: dict[str, Any] = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
        variables.update(
            ansible_managed="Ansible managed",
            __xen_network_etc_dir=str(self.etc),
            __xen_network_state_dir=str(self.base),
            __xen_network_run_dir=str(self.run),
            __xen_network_sys_net_dir=str(self.sys_net),
            __xen_network_pid_dir=str(self.pids),
            __xen_network_log=str(self.log),
            __xen_network_ipv6_conf_dir=str(self.stubs / "ipv6"),
        )
        template = (ROLE / "templates" / "xen-network-apply.sh.j2").read_text()
        env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True)
        return env.from_string(template).render(**variables)

    def stage(self, token: str) -> None:
        """The staged files and manifest of another run."""
        staged = self.run / f"staged-{token}"
        staged.mkdir(parents=True, exist_ok=True)
        for path in self.staged.iterdir():
            (staged / path.name).write_bytes(path.read_bytes())

    def manifest(self, *lines: str) -> None:
        etc = self.etc
        default = (
            f"file interfaces {etc}/interfaces",
            f"file xen-xenbr0 {etc}/interfaces.d/xen-xenbr0",
            f"remove {etc}/interfaces.d/xen-old",
            "down ens3",
            "up ens3",
            "up xenbr0",
            "created xenbr0",
        )
        text = "# manifest\n" + "\n".join(lines or default) + "\n"
        (self.staged / "manifest").write_text(text)

    def apply(
        self, timeout: int, token: str = "t0ken", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self.start([token, str(timeout)], env)

    def start(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        run_env = {
            **os.environ,
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "STUB_DIR": str(self.stubs),
            "ENS3_EUI64": ENS3_EUI64.replace("\\", "\\\\").replace("/", "\\/"),
            "ENS3_NONE": ENS3_NONE.replace("\\", "\\\\").replace("/", "\\/"),
            **(env or {}),
        }
        return subprocess.Popen([str(self.script), *args], env=run_env)

    def wait_for(self, prefix: str, token: str = "t0ken") -> None:
        for _ in range(400):
            if self.state(token).startswith(prefix):
                return
            time.sleep(0.05)
        raise AssertionError(f"state never became {prefix!r}: {self.state(token)!r}")

    def systemd(self) -> list[str]:
        path = self.stubs / "systemd"
        return path.read_text().splitlines() if path.exists() else []

    def leftovers(self) -> list[str]:
        """The script's own files beside the targets, which must never stay."""
        return sorted(p.name for p in self.etc.rglob(".*xen-network-*"))

    def state(self, token: str = "t0ken") -> str:
        path = self.run / f"state-{token}"
        return path.read_text().strip() if path.exists() else ""

    def calls(self) -> list[str]:
        return (self.stubs / "calls").read_text().splitlines()

    def files(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.etc)): p.read_bytes() for p in self.etc.rglob("*") if p.is_file()
        }

    def last_state(self) -> str:
        return (self.base / "last-state").read_text().strip()


@pytest.fixture
def host(tmp_path: Path) -> Host:
    host = Host(tmp_path)
    host.manifest()
    return host


def confirm_when_waiting(host: Host, token: str = "t0ken") -> threading.Thread:
    """The controller's part: read the nonce, write it back."""

    def confirm() -> None:
        for _ in range(200):
            state = host.state(token)
            if state.startswith("state=waiting nonce="):
                nonce = state.split("nonce=", 1)[1]
                (host.run / f"confirm-{token}").write_text(nonce)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=confirm, daemon=True)
    thread.start()
    return thread


def test_confirmed_change_keeps_the_new_files(host: Host) -> None:
    before = host.files()
    confirm_when_waiting(host)
    assert host.apply(timeout=20).wait(timeout=30) == 0
    assert host.state() == "state=confirmed"
    files = host.files()
    assert files["interfaces"] == NEW_INTERFACES
    assert files["interfaces.d/xen-xenbr0"] == XENBR0
    assert "interfaces.d/xen-old" not in files
    # The original is kept once, next to the live file.
    assert files["interfaces.xen-network.orig"] == before["interfaces"]
    # Old configuration down first, then the port, then the bridge.
    assert host.calls() == ["ifdown ens3", "ifup ens3", "ifup xenbr0"]
    assert stat.S_IMODE((host.etc / "interfaces.d" / "xen-xenbr0").stat().st_mode) == 0o644
    assert (host.base / "rollback" / "accept_ra").read_text().split("\n") == [
        "ens3 1",
        "lo 1",
        "",
    ]
    # A confirmed change keeps the port's setting.
    assert (host.stubs / "ipv6" / "ens3" / "accept_ra").read_text() == "0\n"
    assert (host.base / "last-state").read_text().strip() == "state=confirmed"


def test_no_confirmation_restores_the_files_byte_for_byte(host: Host) -> None:
    os.utime(host.etc / "interfaces", (1_000_000_000, 1_000_000_000))
    before = host.files()
    mtime = (host.etc / "interfaces").stat().st_mtime
    assert host.apply(timeout=1).wait(timeout=30) == 0
    assert host.state() == "state=rolled-back reason=timeout"
    after = host.files()
    after.pop("interfaces.xen-network.orig")
    assert after == before
    assert (host.etc / "interfaces").stat().st_mtime == mtime
    assert host.calls() == [
        "ifdown ens3",
        "ifup ens3",
        "ifup xenbr0",
        # The new configuration down, newest first, then the old one up.
        "ifdown --force xenbr0",
        "ifdown --force ens3",
        # ens3 gets its IPv6 addresses back when it is up with the old files.
        "ip link set dev ens3 addrgenmode eui64",
        "ifup ens3",
    ]
    assert "no confirmation within 1 s" in host.log.read_text()
    assert (host.stubs / "links").read_text() == LINKS
    # ... and takes router advertisements again, as before the change.
    assert {
        path.parent.name: int(path.read_text())
        for path in (host.stubs / "ipv6").glob("*/accept_ra")
    } == ACCEPT_RA
    assert "accept_ra of ens3 back to 1" in host.log.read_text()


def test_a_wrong_nonce_does_not_confirm(host: Host) -> None:
    (host.run / "confirm-t0ken").write_text("written before the change")
    assert host.apply(timeout=1).wait(timeout=30) == 0
    assert host.state() == "state=rolled-back reason=timeout"


def test_a_failed_ifup_rolls_back_at_once(host: Host) -> None:
    before = host.files()
    started = time.monotonic()
    assert host.apply(timeout=60, env={"FAIL_IFUP": "xenbr0"}).wait(timeout=30) == 0
    assert time.monotonic() - started < 30
    assert host.state() == "state=rolled-back reason=ifup:xenbr0"
    after = host.files()
    after.pop("interfaces.xen-network.orig")
    assert after == before
    assert host.calls()[-3:] == ["ifdown --force xenbr0", "ifdown --force ens3", "ifup ens3"]


def test_interfaces_that_were_down_are_not_taken_down(host: Host) -> None:
    (host.stubs / "state").write_text("lo=lo\n")
    confirm_when_waiting(host)
    assert host.apply(timeout=20).wait(timeout=30) == 0
    assert host.calls() == ["ifup ens3", "ifup xenbr0"]
    assert "ens3 is not up; nothing to take down" in host.log.read_text()


def test_one_lock_covers_staging_and_applying(host: Host) -> None:
    host.stage("first")
    first = host.apply(timeout=3, token="first")
    host.wait_for("state=waiting", "first")
    # The role's staging step (xen_files with lock=) refuses while a change is in flight ...
    with (
        pytest.raises(ValueError, match="is held by another process: in flight"),
        xen_files.hold(str(host.run / "lock"), "in flight"),
    ):
        pass
    # ... and so does a second apply script.
    host.stage("second")
    second = host.apply(timeout=3, token="second")
    assert second.wait(timeout=30) == 1
    assert host.state("second") == "state=failed reason=another xen-network-apply is running"
    assert first.wait(timeout=30) == 0
    # Once the first change is over, staging takes the lock again.
    with xen_files.hold(str(host.run / "lock"), "in flight"):
        pass


def test_the_change_is_pending_on_disk_before_anything_goes_down(host: Host) -> None:
    before = host.files()
    proc = host.apply(timeout=60, env={"SLOW_IFDOWN": "30"})
    for _ in range(400):
        if host.calls():
            break
        time.sleep(0.05)
    assert host.calls() == ["ifdown ens3"]
    pending = (host.base / "pending").read_text()
    assert "P_TOKEN='t0ken'\n" in pending
    assert f" {host.etc}/interfaces.d/xen-xenbr0" in pending
    # New files and links to the old ones wait beside their targets.
    assert host.leftovers() == [
        ".interfaces.xen-network-new",
        ".interfaces.xen-network-prev",
        ".xen-old.xen-network-prev",
        ".xen-xenbr0.xen-network-new",
    ]
    # The timer that rolls back if this script dies: window + grace.
    assert any(
        "--unit=xen-network-rescue-t0ken" in line and "--on-active=90" in line
        for line in host.systemd()
    ), host.systemd()
    # Power lost here: the boot guard finds links to the very same files.
    proc.kill()
    proc.wait(timeout=30)
    assert host.start(["guard"]).wait(timeout=30) == 0
    after = host.files()
    after.pop("interfaces.xen-network.orig")
    assert after == before
    assert host.leftovers() == []
    assert not (host.base / "pending").exists()
    assert host.last_state() == "state=rolled-back reason=boot"


def test_a_reboot_inside_the_window_boots_with_the_old_files(host: Host) -> None:
    os.utime(host.etc / "interfaces", (1_000_000_000, 1_000_000_000))
    before = host.files()
    proc = host.apply(timeout=600)
    host.wait_for("state=waiting")
    assert host.files()["interfaces"] == NEW_INTERFACES
    proc.kill()  # the host went down: nothing of the script runs any more
    proc.wait(timeout=30)
    assert host.start(["guard"]).wait(timeout=30) == 0
    after = host.files()
    after.pop("interfaces.xen-network.orig")
    assert after == before
    assert (host.etc / "interfaces").stat().st_mtime == 1_000_000_000
    assert host.leftovers() == []
    assert not (host.base / "pending").exists()
    assert host.last_state() == "state=rolled-back reason=boot"
    assert "previous files restored at boot" in host.log.read_text()
    # A second boot has nothing to do.
    assert host.start(["guard"]).wait(timeout=30) == 0
    assert host.files() == {**after, "interfaces.xen-network.orig": OLD_INTERFACES}


def test_a_killed_script_is_rolled_back_by_its_timer(host: Host) -> None:
    before = host.files()
    (host.sys_net / "xenbr0").mkdir()
    (host.pids / "dhclient.xenbr0.pid").write_text("999999999\n")
    proc = host.apply(timeout=600)
    host.wait_for("state=waiting")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # What systemd runs when the timer fires.
    assert host.start(["rescue", "t0ken", "apply-died"]).wait(timeout=30) == 0
    assert host.state() == "state=rolled-back reason=apply-died"
    after = host.files()
    after.pop("interfaces.xen-network.orig")
    assert after == before
    assert host.leftovers() == []
    assert not (host.base / "pending").exists()
    assert host.calls()[3:] == [
        "ifdown --force xenbr0",
        "ifdown --force ens3",
        "ip link set dev xenbr0 down",
        "ip link delete dev xenbr0",
        "ip link set dev ens3 addrgenmode eui64",
        "ifup ens3",
    ]
    # The DHCP client of the test's own pid file, never a real one.
    assert not (host.pids / "dhclient.xenbr0.pid").exists()
    assert "stopping 999999999" in host.log.read_text()


def test_a_rescue_after_a_confirmed_change_does_nothing(host: Host) -> None:
    confirm_when_waiting(host)
    assert host.apply(timeout=20).wait(timeout=30) == 0
    assert "systemctl stop xen-network-rescue-t0ken.timer" in host.systemd()
    files = host.files()
    assert host.start(["rescue", "t0ken", "apply-died"]).wait(timeout=30) == 0
    assert host.files() == files
    assert host.state() == "state=confirmed"
    assert host.leftovers() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_term_or_hup_hands_the_rollback_to_a_unit_of_its_own(
    host: Host, signum: signal.Signals
) -> None:
    name = signum.name[3:]
    before = host.files()
    proc = host.apply(timeout=600)
    host.wait_for("state=waiting")
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 0
    assert host.state() == f"state=rolling-back reason=signal:{name}"
    assert any(
        "--unit=xen-network-rescue-t0ken-now" in line
        and line.endswith(f"rescue t0ken signal:{name}")
        for line in host.systemd()
    ), host.systemd()
    assert "systemctl stop xen-network-rescue-t0ken.timer" in host.systemd()
    assert host.start(["rescue", "t0ken", f"signal:{name}"]).wait(timeout=30) == 0
    assert host.state() == f"state=rolled-back reason=signal:{name}"
    after = host.files()
    after.pop("interfaces.xen-network.orig")
    assert after == before


def test_a_full_disk_before_the_change_changes_nothing(host: Host) -> None:
    before = host.files()
    assert host.apply(timeout=5, env={"FAIL_CP": ".xen-xenbr0.xen-network-new"}).wait(30) == 1
    new = host.etc / "interfaces.d" / ".xen-xenbr0.xen-network-new"
    assert host.state() == f"state=failed reason=cannot write {new}"
    assert host.files() == before
    assert host.leftovers() == []
    assert not (host.base / "pending").exists()
    assert host.calls() == []


def test_a_rollback_that_cannot_restore_a_file_says_so_and_stays_pending(host: Host) -> None:
    before = host.files()
    prev = ".xen-old.xen-network-prev"
    assert host.apply(timeout=1, env={"FAIL_MV": prev}).wait(timeout=30) == 0
    old = f"{host.etc}/interfaces.d/xen-old"
    assert host.state() == f"state=rollback-failed reason=timeout left=files:{old}"
    assert host.last_state() == host.state()
    assert "could not restore: " + old in host.log.read_text()
    assert (host.base / "pending").exists()
    # The boot guard finishes the job.
    assert host.start(["guard"]).wait(timeout=30) == 0
    after = host.files()
    after.pop("interfaces.xen-network.orig")
    assert after == before
    assert host.leftovers() == []


def test_an_earlier_change_left_pending_is_rolled_back_first(host: Host) -> None:
    before = host.files()
    host.stage("next")
    proc = host.apply(timeout=600)
    host.wait_for("state=waiting")
    proc.kill()
    proc.wait(timeout=30)  # and its timer lost too
    assert host.apply(timeout=5, token="next").wait(timeout=30) == 1
    assert host.state("next") == (
        "state=failed reason=an earlier change (t0ken) was never confirmed and has been"
        " rolled back; run again"
    )
    after = host.files()
    after.pop("interfaces.xen-network.orig")
    assert after == before


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("file interfaces /etc/passwd", "state=failed reason=bad target /etc/passwd"),
        ("remove /etc/passwd", "state=failed reason=bad target /etc/passwd"),
        ("up xenbr0;reboot", "state=failed reason=bad manifest line: up xenbr0;reboot"),
        (
            "file missing-file {etc}/interfaces",
            "state=failed reason={staged}/missing-file is missing",
        ),
        ("restart everything", "state=failed reason=bad manifest line: restart"),
    ],
)
def test_a_bad_manifest_changes_nothing(host: Host, line: str, reason: str) -> None:
    before = host.files()
    host.manifest(line.format(etc=host.etc))
    assert host.apply(timeout=1).wait(timeout=30) == 1
    assert host.state() == reason.format(staged=host.staged)
    assert host.files() == before
    assert host.calls() == []


def test_arguments_are_checked(host: Host) -> None:
    proc = subprocess.run(
        [str(host.script), "Bad-Token", "5"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    proc = subprocess.run(
        [str(host.script), "token", "soon"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2


def test_the_script_is_valid_posix_sh(host: Host) -> None:
    assert subprocess.run(["sh", "-n", str(host.script)], check=False).returncode == 0
