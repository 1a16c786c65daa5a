"""Helpers for Molecule verifiers: run playbooks against the scenario's VM."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO / "collections", REPO / "tests", REPO / "lab"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))


def playbook(
    path: str | Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook against the Molecule inventory; output is returned, not checked."""
    run_env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **(env or {})}
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(path), *args]
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, check=False)
    print(proc.stdout[-4000:])
    print(proc.stderr[-2000:], file=sys.stderr)
    return proc


def scenario_file(name: str) -> Path:
    return Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / name


def tree_digest(host: Any, *paths: str) -> str:
    """A digest of every file's content and mode under the given paths on the host."""
    listing = host.run(
        "find %s -xdev -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum; "
        "find %s -xdev -printf '%%p %%m %%s\\n' 2>/dev/null | sort",
        " ".join(paths),
        " ".join(paths),
    ).stdout
    return hashlib.sha256(listing.encode()).hexdigest()


def molecule_instance() -> dict[str, Any]:
    """How to reach the scenario's (first) VM, as create.yml wrote it."""
    return yaml.safe_load(Path(os.environ["MOLECULE_INSTANCE_CONFIG"]).read_text())[0]


def lab_link(device: str, state: str) -> None:
    """Plug (up) or unplug (down) a NIC of the scenario's VM, as pulling its cable would."""
    name = "mol-" + molecule_instance()["instance"]
    harness = REPO / "lab" / "xen-lab"
    command = [sys.executable, str(harness), "link", "--name", name, device, state]
    subprocess.run(command, check=True)


def record(name: str, line: str) -> None:
    """Print a measurement and keep it under <cache>/results/ for the README."""
    from xenlab.config import cache_root

    print(f"\n{line}")
    results = cache_root() / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.txt").write_text(line + "\n")


class SshWatch(threading.Thread):
    """Polls SSH; records when the host went away and when it answered again."""

    def __init__(self, instance: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.cmd = [
            "ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR",
            "-i", instance["identity_file"], "-p", str(instance["port"]),
            f"{instance['user']}@{instance['address']}", "true",
        ]  # fmt: skip
        self.down_at: float | None = None
        self.up_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.up_at is None:
            try:
                ok = subprocess.run(self.cmd, capture_output=True, check=False, timeout=10)
                answered = ok.returncode == 0
            except subprocess.TimeoutExpired:
                answered = False
            now = time.monotonic()
            if not answered and self.down_at is None:
                self.down_at = now
            elif answered and self.down_at is not None:
                self.up_at = now
            time.sleep(1)
