"""Process helpers: who owns a VM, and stopping only the harness's own QEMU."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def start_time(pid: int) -> str | None:
    """The kernel's start time of a process, or None when it is gone.

    A PID plus its start time names one process for good, even after the
    PID is reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; it ends at the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]


def identity(pid: int) -> str | None:
    """ "PID:STARTTIME" for a live process, None when it is gone."""
    started = start_time(pid)
    return None if started is None else f"{pid}:{started}"


def alive(ident: str | None) -> bool:
    """Is the process named by identity() still the same process and running?"""
    if not ident:
        return False
    pid_s, _, started = ident.partition(":")
    try:
        pid = int(pid_s)
    except ValueError:
        return False
    now = start_time(pid)
    if now is None or now != started:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def gone(pid: int) -> bool:
    """True when the process has exited (a zombie waiting to be reaped counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] == "Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_our_qemu(pid: int, disk: Path) -> bool:
    """True only for a QEMU process that runs this exact overlay file."""
    args = cmdline(pid)
    return bool(args) and "qemu-system" in args[0] and any(str(disk) in a for a in args)


def terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if gone(pid):
                return
            time.sleep(0.2)
