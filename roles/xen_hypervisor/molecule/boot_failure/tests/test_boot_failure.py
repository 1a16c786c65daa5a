"""A Xen that cannot boot leaves the host on plain Linux, reachable, and the
run fails with the role's message. Recovery time is measured and printed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "molecule"))
from helpers import SshWatch, molecule_instance, playbook, record, scenario_file

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp


def test_failed_xen_boot_leaves_plain_linux_up(host) -> None:  # noqa: ANN001
    watch = SshWatch(molecule_instance())
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
    record(
        "boot-failure-recovery",
        f"RECOVERY: SSH answered again {recovery:.0f} s after the host went down;"
        f" the failed run took {total:.0f} s in all",
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
