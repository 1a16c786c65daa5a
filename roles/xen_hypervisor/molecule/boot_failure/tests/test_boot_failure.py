"""A Xen that cannot boot leaves the host on plain Linux, reachable, and the
run fails with the role's message. Recovery time is measured and printed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "molecule"))
from helpers import playbook, scenario_file

from module_utils import xen_hypervisor_plan as hp


class SshWatch(threading.Thread):
    """Polls SSH; records when the host went away and when it answered again."""

    def __init__(self, instance: dict) -> None:
        super().__init__(daemon=True)
        self.cmd = [
            "ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
            "-i", instance["identity_file"], "-p", str(instance["port"]),
            f"{instance['user']}@{instance['address']}", "true",
        ]  # fmt: skip
        self.down_at: float | None = None
        self.up_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.up_at is None:
            ok = (
                subprocess.run(self.cmd, capture_output=True, check=False, timeout=30).returncode
                == 0
            )
            now = time.monotonic()
            if not ok and self.down_at is None:
                self.down_at = now
            elif ok and self.down_at is not None:
                self.up_at = now
            time.sleep(2)


def test_failed_xen_boot_leaves_plain_linux_up(host) -> None:  # noqa: ANN001
    instance = yaml.safe_load(Path(os.environ["MOLECULE_INSTANCE_CONFIG"]).read_text())[0]
    watch = SshWatch(instance)
    watch.start()
    started = time.monotonic()
    proc = playbook(scenario_file("converge.yml"))
    watch.stop.set()
    watch.join(timeout=60)
    total = time.monotonic() - started

    assert proc.returncode != 0
    assert "Xen did not come up on hv-fail" in proc.stdout + proc.stderr
    assert watch.down_at is not None and watch.up_at is not None
    recovery = watch.up_at - watch.down_at
    print(
        f"\nRECOVERY: SSH answered again {recovery:.0f} s after the host went down;"
        f" the failed run took {total:.0f} s in all"
    )

    # The host is on plain Linux, and GRUB still boots plain Linux by default.
    assert not host.file("/proc/xen/capabilities").exists or (
        "control_d" not in host.file("/proc/xen/capabilities").content_string
    )
    grub_cfg = host.file("/boot/grub/grub.cfg").content_string
    env = host.check_output("grub-editenv list")
    assert f"saved_entry={hp.xen_entry_id(grub_cfg)}" not in env
    assert "next_entry=xen" not in env
    # The boot that failed was the Xen one: the previous boot's kernel log
    # is gone with the panic, but this boot is the plain Linux entry.
    assert "console=ttyS0,115200n8" in host.file("/proc/cmdline").content_string
