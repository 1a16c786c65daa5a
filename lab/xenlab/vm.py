"""Boot, reach and stop lab VMs; each VM's state lives in <cache>/vms/<name>/."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from xenlab import config, procs


class LabError(RuntimeError):
    """A harness failure with a message meant for a person."""


def log(msg: str) -> None:
    print(f"xen-lab: {msg}", file=sys.stderr, flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, chosen by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serial_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no serial output)"
    tail = [line.rstrip("\r") for line in text.splitlines()[-lines:]]
    return "\n".join(tail)


def report_failure(serial_log: Path, why: str) -> None:
    log(why)
    log(f"last lines of the serial console ({serial_log}):")
    print(serial_tail(serial_log), file=sys.stderr, flush=True)
    log(f"full serial log: {serial_log}")


def ssh_key(cache: Path) -> Path:
    """The harness's own SSH key pair, made once per cache."""
    key = cache / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "xen-lab", "-f", str(key)],
            check=True,
        )
    return key


def ssh_command(port: int, key: Path, *remote: str) -> list[str]:
    opts: list[str] = []
    for opt in config.SSH_OPTIONS:
        opts += opt.split(" ", 1)
    return [
        "ssh", *opts, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        "-i", str(key), "-p", str(port), "root@127.0.0.1", *remote,
    ]  # fmt: skip


def wait_for_ssh(port: int, key: Path, pid: int, serial_log: Path, timeout: float) -> float:
    """Wait until `ssh true` works; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if procs.gone(pid):
            raise LabError("QEMU exited before SSH answered")
        probe = subprocess.run(
            ssh_command(port, key, "true"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if probe.returncode == 0:
            return time.monotonic() - start
        time.sleep(3)
    raise LabError(f"SSH on 127.0.0.1:{port} did not answer within {timeout:.0f} s")


@dataclass
class VmState:
    name: str
    release: str
    pid: int
    qemu_ident: str
    ssh_port: int
    disk: str
    serial_log: str
    key: str
    owner: str | None
    accel: str
    cpu: str
    boot_seconds: float = 0.0

    def host_vars(self) -> dict[str, object]:
        return config.host_vars(self.ssh_port, Path(self.key))


def vms_dir(cache: Path) -> Path:
    return cache / "vms"


def state_path(cache: Path, name: str) -> Path:
    return vms_dir(cache) / name / "state.json"


def load_state(cache: Path, name: str) -> VmState | None:
    path = state_path(cache, name)
    try:
        return VmState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save_state(cache: Path, state: VmState) -> None:
    path = state_path(cache, state.name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def running(state: VmState) -> bool:
    return procs.alive(state.qemu_ident) and procs.is_our_qemu(state.pid, Path(state.disk))


def qmp_path(cache: Path, name: str) -> Path:
    return vms_dir(cache) / name / "qmp.sock"


def qmp(cache: Path, name: str, command: str, arguments: dict[str, object]) -> object:
    """Runs one QMP command on a running VM; returns its answer or raises LabError."""
    path = qmp_path(cache, name)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(30)
            sock.connect(str(path))
        except OSError as exc:
            raise LabError(f"VM {name} has no QMP socket at {path}: {exc}") from exc
        lines = sock.makefile("rwb")

        def call(execute: str, args: dict[str, object] | None = None) -> object:
            lines.write(json.dumps({"execute": execute, "arguments": args or {}}).encode() + b"\n")
            lines.flush()
            while True:
                answer = json.loads(lines.readline())
                if "return" in answer:
                    return answer["return"]
                if "error" in answer:
                    raise LabError(f"QMP {execute} on VM {name}: {answer['error']}")
                # events ({"event": ...}) and the greeting are skipped

        call("qmp_capabilities")
        return call(command, arguments)


def stop(cache: Path, name: str) -> bool:
    """Stop a VM by its own PID and remove its overlay; True if one was there."""
    vm_dir = vms_dir(cache) / name
    if not vm_dir.exists():
        return False
    state = load_state(cache, name)
    if state is not None and running(state):
        procs.terminate(state.pid)
    if state is None:
        # A VM that died before its state was written: its QEMU may still run.
        pidfile = vm_dir / "qemu.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and procs.is_our_qemu(pid, vm_dir / "disk.qcow2"):
            procs.terminate(pid)
    # The console outlives the VM: a test that failed in a boot is read from it.
    serial_log = vm_dir / "serial.log"
    if serial_log.exists():
        kept = last_serial_log(cache, name)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(serial_log, kept)
    shutil.rmtree(vm_dir, ignore_errors=True)
    return True


def sweep(cache: Path) -> list[str]:
    """Remove VMs whose QEMU is gone or whose owner process has died.

    Only directories under the harness's own cache are looked at, and only
    processes that run a disk from there are signalled.
    """
    removed = []
    root = vms_dir(cache)
    if not root.exists():
        return removed
    for vm_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        state = load_state(cache, vm_dir.name)
        orphan = state is not None and state.owner is not None and not procs.alive(state.owner)
        dead = state is None or not running(state)
        if state is None and time.time() - vm_dir.stat().st_mtime < 600:
            continue  # still being started by another harness process
        if orphan or dead:
            stop(cache, vm_dir.name)
            removed.append(vm_dir.name)
    return removed


def spawn_watchdog(cache: Path, name: str) -> None:
    """A detached process that stops the VM as soon as its owner is gone."""
    subprocess.Popen(
        [sys.executable, "-m", "xenlab", "watchdog", name],
        cwd=str(Path(__file__).resolve().parent.parent),
        env={
            **os.environ,
            "XEN_LAB_CACHE": str(cache),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def watchdog(cache: Path, name: str, interval: float = 1.0) -> None:
    while True:
        state = load_state(cache, name)
        if state is None or not running(state):
            return
        if state.owner is None:
            return  # released: the VM now lives until `down`
        if not procs.alive(state.owner):
            stop(cache, name)
            return
        time.sleep(interval)


class BootTimeout(LabError):
    """A booted VM whose SSH never answered; booting it again may work."""


BOOT_ATTEMPTS = 3
BOOT_TIMEOUT = 300.0  # a plain boot takes 30-90 s under TCG


def failed_boot_log(cache: Path, name: str, attempt: int) -> Path:
    return cache / "logs" / f"{name}.boot{attempt}.serial.log"


def last_serial_log(cache: Path, name: str) -> Path:
    """Where a stopped VM's whole serial console is kept, until that name stops again."""
    return cache / "logs" / f"{name}.last.serial.log"


def start(
    cache: Path,
    name: str,
    release: str,
    base: Path,
    key: Path,
    accel: str,
    cpu: str,
    owner: str | None,
    memory_mib: int = 3072,
    second_nic: bool = False,
    data_disk_gib: int = 0,
    bond_nic: bool = False,
    data_disks: int = 1,
    ssh_timeout: float = BOOT_TIMEOUT,
    attempts: int = BOOT_ATTEMPTS,
) -> VmState:
    """Boot a copy-on-write overlay of `base` and wait until SSH answers.

    With data_disk_gib, `data_disks` blank sparse qcow2 disks of that size in
    the VM's folder are its /dev/vdb (and /dev/vdc); like the overlay, they go
    with `stop`.
    An emulated boot now and then never gets as far as SSH; a VM that does not
    answer within ssh_timeout is stopped and booted again from a fresh
    overlay, up to `attempts` times. Each failed boot's serial log is kept
    in <cache>/logs/.
    """
    existing = load_state(cache, name)
    if existing is not None and running(existing):
        log(f"VM {name} is already running on port {existing.ssh_port}")
        return existing
    for attempt in range(1, attempts + 1):
        try:
            return _boot_once(
                cache, name, release, base, key, accel, cpu, owner,
                memory_mib, second_nic, data_disk_gib, ssh_timeout, attempt,
                bond_nic=bond_nic,
                data_disks=data_disks,
            )  # fmt: skip
        except BootTimeout as exc:
            if attempt == attempts:
                raise LabError(f"VM {name} failed to come up in {attempts} boots: {exc}") from exc
            log(f"VM {name}: boot {attempt} of {attempts} failed ({exc}); booting it again")
    raise AssertionError("unreachable")


def _boot_once(
    cache: Path,
    name: str,
    release: str,
    base: Path,
    key: Path,
    accel: str,
    cpu: str,
    owner: str | None,
    memory_mib: int,
    second_nic: bool,
    data_disk_gib: int,
    ssh_timeout: float,
    attempt: int,
    bond_nic: bool = False,
    data_disks: int = 1,
) -> VmState:
    stop(cache, name)
    vm_dir = vms_dir(cache) / name
    vm_dir.mkdir(parents=True)
    disk = vm_dir / "disk.qcow2"
    serial_log = vm_dir / "serial.log"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(disk)],
        check=True,
    )
    count = min(data_disks, len(config.DATA_DISK_SLOTS)) if data_disk_gib > 0 else 0
    disks = tuple(vm_dir / f"data{n if n > 1 else ''}.qcow2" for n in range(1, count + 1))
    for data_disk in disks:
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(data_disk), f"{data_disk_gib}G"],
            check=True,
        )
    last_error = ""
    for _attempt in range(5):
        port = free_port()
        spec = config.VmSpec(
            name=name,
            disk=disk,
            serial_log=serial_log,
            pidfile=vm_dir / "qemu.pid",
            ssh_port=port,
            accel=accel,
            cpu=cpu,
            memory_mib=memory_mib,
            second_nic=second_nic,
            bond_nic=bond_nic,
            data_disks=disks,
            qmp=qmp_path(cache, name),
        )
        proc = subprocess.run(
            config.qemu_command(spec), capture_output=True, text=True, check=False
        )
        if proc.returncode == 0:
            break
        last_error = proc.stderr.strip()
        if "hostfwd" not in last_error and "forwarding" not in last_error:
            break
    else:
        proc = None
    if proc is None or proc.returncode != 0:
        shutil.rmtree(vm_dir, ignore_errors=True)
        raise LabError(f"QEMU did not start: {last_error}")
    pid = int((vm_dir / "qemu.pid").read_text().strip())
    state = VmState(
        name=name,
        release=release,
        pid=pid,
        qemu_ident=procs.identity(pid) or f"{pid}:0",
        ssh_port=port,
        disk=str(disk),
        serial_log=str(serial_log),
        key=str(key),
        owner=owner,
        accel=accel,
        cpu=cpu,
    )
    save_state(cache, state)
    if owner is not None:
        spawn_watchdog(cache, name)
    log(f"VM {name} booting ({release}, {accel} {cpu}), SSH on 127.0.0.1:{port}")
    try:
        state.boot_seconds = round(wait_for_ssh(port, key, pid, serial_log, ssh_timeout), 1)
    except (LabError, subprocess.TimeoutExpired) as exc:
        report_failure(serial_log, f"VM {name} failed to come up: {exc}")
        kept = failed_boot_log(cache, name, attempt)
        kept.parent.mkdir(parents=True, exist_ok=True)
        if serial_log.exists():
            shutil.copyfile(serial_log, kept)
        log(f"this boot's serial log is kept as {kept}")
        stop(cache, name)
        raise BootTimeout(str(exc)) from exc
    save_state(cache, state)
    log(f"VM {name} answers SSH after {state.boot_seconds} s")
    return state
