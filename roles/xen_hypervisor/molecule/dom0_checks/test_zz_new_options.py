"""A converged dom0 with guests gets a new Xen option.

Without reboot consent, GRUB's saved default and its Xen entry keep the
options Xen runs with, the new options wait in the trial entry, and the run
says a reboot is required (twice, with nothing changed the second time). With
consent, the trial entry boots once; once Xen runs with the new option, the
Xen entry gets it and the trial entry is gone, and xendomains brings the
guests back. The file runs last in its scenario: it reboots the dom0.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests" / "molecule"))
from e2e_checks import E2E, e2e, listed, on_guest, recap_changed  # noqa: F401  (e2e: a fixture)
from helpers import SshWatch, molecule_instance, playbook, record

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import parse_xl_info

PLAY = Path(__file__).with_name("new_options.yml")
TRIAL_ENTRY = "xen-hypervisor-trial"
TRIAL_SCRIPT = "/etc/grub.d/42_xen-hypervisor-trial"
NEW_OPTION = "loglvl=all"
GUESTS_BACK_WITHIN = 600


def run_role(host: Any, reboot_ok: bool) -> Any:
    """The role with one Xen option more than the scenario's (emulation.yml's)."""
    extra = {
        "xen_hypervisor_cmdline_extra": f"hap_1gb=false hap_2mb=false {NEW_OPTION}",
        "xen_hypervisor_reboot_ok": reboot_ok,
    }
    return playbook(PLAY, "-e", json.dumps(extra))


def xen_words(host: Any) -> list[str]:
    return parse_xl_info(host.check_output("xl info"))["xen_commandline"].split()


def grubenv(host: Any) -> dict[str, str]:
    lines = host.check_output("grub-editenv list").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def entry_xen_words(host: Any, entry: str = "") -> list[str] | None:
    found = hp.xen_entry_cmdlines(host.file("/boot/grub/grub.cfg").content_string, entry)
    return None if found is None else found[0]


def test_zz_a_new_xen_option_waits_for_consent_then_boots_once_and_is_committed(
    host: Any,
    e2e: E2E,  # noqa: F811
) -> None:
    grub_cfg = host.file("/boot/grub/grub.cfg").content_string
    xen_entry = hp.xen_entry_id(grub_cfg)
    assert xen_entry is not None
    assert grubenv(host).get("saved_entry") == xen_entry
    running = xen_words(host)
    assert NEW_OPTION not in running
    entry_before = entry_xen_words(host)
    guests_before = sorted(listed(host))
    assert guests_before == sorted(e2e.guests)

    # No consent: nothing Xen boots by default changes.
    proc = run_role(host, reboot_ok=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Reboot required" in proc.stdout
    assert xen_words(host) == running
    env = grubenv(host)
    assert env.get("saved_entry") == xen_entry
    assert not env.get("next_entry")
    assert entry_xen_words(host) == entry_before
    trial = entry_xen_words(host, TRIAL_ENTRY)
    assert trial is not None and NEW_OPTION in trial
    assert host.file(TRIAL_SCRIPT).exists
    assert NEW_OPTION not in host.file("/etc/default/grub.d/zz-xen-hypervisor.cfg").content_string
    # Asked again, the run still waits and changes nothing.
    proc = run_role(host, reboot_ok=False)
    assert proc.returncode == 0
    assert "Reboot required" in proc.stdout
    assert recap_changed(proc.stdout) == "0", proc.stdout[-3000:]

    # Consent: the trial boots once, then its options are the Xen entry's.
    watch = SshWatch(molecule_instance())
    watch.start()
    started = time.monotonic()
    proc = run_role(host, reboot_ok=True)
    watch.stop.set()
    watch.join(timeout=60)
    role_took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert watch.down_at is not None and watch.up_at is not None
    now = xen_words(host)
    assert NEW_OPTION in now
    assert [word for word in now if word != NEW_OPTION] == running
    env = grubenv(host)
    assert env.get("saved_entry") == xen_entry
    assert not env.get("next_entry")
    committed = entry_xen_words(host)
    assert committed is not None and NEW_OPTION in committed
    assert entry_xen_words(host, TRIAL_ENTRY) is None
    assert not host.file(TRIAL_SCRIPT).exists
    assert NEW_OPTION in host.file("/etc/default/grub.d/zz-xen-hypervisor.cfg").content_string

    # The guests come back with the dom0 and answer SSH.
    deadline = time.monotonic() + GUESTS_BACK_WITHIN
    waiting = dict(e2e.guests)
    while waiting and time.monotonic() < deadline:
        for name, (_, address) in list(waiting.items()):
            if name in listed(host) and on_guest(address, "true").returncode == 0:
                del waiting[name]
        if waiting:
            time.sleep(10)
    assert not waiting, f"guests not back after the reboot: {sorted(waiting)}"
    assert sorted(listed(host)) == guests_before
    back = time.monotonic() - (watch.up_at or started)
    record(
        "hypervisor-new-options",
        f"NEW OPTIONS: the role's run with the trial boot took {role_took:.0f} s"
        f" (SSH away {watch.up_at - watch.down_at:.0f} s); the guests answered SSH"
        f" {back:.0f} s after the dom0 did",
    )

    # A run after the commit changes nothing.
    proc = run_role(host, reboot_ok=True)
    assert proc.returncode == 0
    assert recap_changed(proc.stdout) == "0", proc.stdout[-3000:]
