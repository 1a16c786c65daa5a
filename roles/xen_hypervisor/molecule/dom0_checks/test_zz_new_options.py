"""A converged dom0 with guests gets a new Xen option, without reboot consent.

GRUB's saved default and its Xen entry keep the options Xen runs with, the
new option waits in the trial entry, the run says a reboot is required, and a
second run changes nothing. The half with consent (the trial entry booted
once, committed, the guests back) costs a dom0 reboot that the time budget of
make test has no room for yet; its runs are in docs/MEASUREMENTS.md. The file
runs last in its scenario (test_zz_): it leaves the trial entry in place.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests" / "molecule"))
from e2e_checks import E2E, e2e, listed, recap_changed  # noqa: F401  (e2e: a fixture)
from helpers import playbook

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import parse_xl_info

PLAY = Path(__file__).with_name("new_options.yml")
TRIAL_ENTRY = "xen-hypervisor-trial"
TRIAL_SCRIPT = "/etc/grub.d/42_xen-hypervisor-trial"
NEW_OPTION = "loglvl=all"


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


def test_zz_a_new_xen_option_without_consent_changes_nothing_xen_boots_by_default(
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
    assert xen_words(host) == running
    assert sorted(listed(host)) == guests_before
