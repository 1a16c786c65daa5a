"""Killing a run midway leaves no QEMU of the harness running.

These tests boot real (TCG) VMs from the cached base image and interrupt the
harness while the VM is still booting, the way a person presses Ctrl-C in
`make lab` or CI kills a Molecule run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xenlab import config, procs, vm

HARNESS = Path(__file__).resolve().parents[2] / "lab" / "xen-lab"
CACHE = config.cache_root()


def qemu_pids_for(name: str) -> list[int]:
    disk = str(vm.vms_dir(CACHE) / name / "disk.qcow2")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = procs.cmdline(int(entry.name))
            if args and "qemu-system" in args[0] and any(disk in a for a in args):
                pids.append(int(entry.name))
    return pids


def wait_until(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module", autouse=True)
def base_image() -> None:
    subprocess.run([sys.executable, str(HARNESS), "build"], check=True)


COMMANDS = {
    "run": lambda name: ["run", "--", sys.executable, str(HARNESS), "up", "--name", name],
    "lab": lambda name: [
        "lab",
        "--name",
        name,
        "--inventory",
        f"/tmp/{name}.yml",
        "--",
        "sleep",
        "600",
    ],
}


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
@pytest.mark.parametrize("mode", sorted(COMMANDS))
def test_interrupted_run_leaves_no_qemu(mode: str, sig: signal.Signals) -> None:
    name = f"itest-{mode}-{sig.name.lower()}"
    subprocess.run([sys.executable, str(HARNESS), "down", "--name", name], check=True)
    runner = subprocess.Popen(
        [sys.executable, str(HARNESS), *COMMANDS[mode](name)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_until(lambda: qemu_pids_for(name), 120, f"QEMU of {name} to start")
        qemu = qemu_pids_for(name)
        runner.send_signal(sig)
        runner.wait(timeout=60)
        wait_until(lambda: not qemu_pids_for(name), 30, f"QEMU of {name} to stop")
        for pid in qemu:
            assert procs.gone(pid), f"QEMU {pid} still runs"
        wait_until(
            lambda: not (vm.vms_dir(CACHE) / name).exists(), 30, f"{name}'s overlay to be removed"
        )
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        subprocess.run([sys.executable, str(HARNESS), "down", "--name", name], check=False)
