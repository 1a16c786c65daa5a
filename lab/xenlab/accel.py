"""Does KVM really work here? Only a real 64-bit boot can tell.

A /dev/kvm that opens proves nothing: some paravirtual KVM back ends hang as
soon as the guest enters 64-bit mode. The probe boots the image's kernel
without a root disk; reaching the "unable to mount root" panic proves that
the kernel ran in long mode. The verdict is cached per host kernel and QEMU.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xenlab import config

PROBE_TIMEOUT = 60.0
# Printed by the kernel once it runs, long after the switch to 64-bit mode.
PROBE_SUCCESS = ("Kernel panic", "VFS: Unable to mount root")


def qemu_version() -> str:
    out = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
    )
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def probe_key() -> str:
    return f"{platform.release()}|{qemu_version()}"


def kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def verdict_from_console(text: str) -> bool:
    return any(marker in text for marker in PROBE_SUCCESS)


def probe(kernel: Path, timeout: float = PROBE_TIMEOUT) -> bool:
    with tempfile.TemporaryDirectory(prefix="xen-lab-probe-") as tmp:
        console = Path(tmp) / "console.log"
        cmd = [
            "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "512",
            "-display", "none", "-vga", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{console}", "-kernel", str(kernel),
            "-append", "console=ttyS0 panic=-1",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        ok = False
        while time.monotonic() < deadline:
            text = console.read_text(errors="replace") if console.exists() else ""
            if verdict_from_console(text):
                ok = True
                break
            if proc.poll() is not None:
                break
            time.sleep(1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return ok


def kvm_boots(cache: Path, kernel: Path) -> bool:
    """Cached answer to "does a 64-bit kernel boot under KVM here?"."""
    if os.environ.get("XEN_LAB_ACCEL"):
        return os.environ["XEN_LAB_ACCEL"] == "kvm"
    if not kvm_usable():
        return False
    record = cache / "accel.json"
    key = probe_key()
    try:
        saved = json.loads(record.read_text())
        if saved.get("key") == key:
            return bool(saved["kvm_boots"])
    except (OSError, ValueError, KeyError):
        pass
    started = time.monotonic()
    ok = probe(kernel)
    print(
        f"xen-lab: KVM probe: a 64-bit kernel {'boots' if ok else 'does not boot'} under KVM "
        f"({time.monotonic() - started:.0f} s); using {'kvm' if ok else 'tcg'}",
        file=sys.stderr,
        flush=True,
    )
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"key": key, "kvm_boots": ok}))
    return ok


def choose(cache: Path, kernel: Path, hap: bool = False) -> tuple[str, str]:
    return config.choose_accel(dict(os.environ), kvm_boots(cache, kernel), hap)
