"""The trial entry's script (roles/xen_hypervisor/templates/xen-hypervisor-trial.grub.j2),
run the way update-grub runs it, against a stand-in for Debian's 20_linux_xen
that prints the lab's real Xen entries with the options it is given."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles" / "xen_hypervisor" / "templates" / "xen-hypervisor-trial.grub.j2"
DATA = Path(__file__).parent / "data"
LAB_GRUB_CFG = (DATA / "grub-trixie-xen.cfg").read_text()
LAB_XEN = "dom0_mem=1024M,max:1024M dom0_max_vcpus=2 console=com1 com1=115200,8n1"
LAB_DOM0 = "console=hvc0"
NEW_XEN = "dom0_mem=1536M,max:1536M dom0_max_vcpus=2 console=com1 com1=115200,8n1 loglvl=all"
NEW_DOM0 = "console=hvc0 quiet"
ENTRY = "xen-hypervisor-trial"

# What 20_linux_xen printed on the lab's trixie dom0 (between grub-mkconfig's
# BEGIN and END lines), with the role's options as placeholders.
SECTION = LAB_GRUB_CFG.split("### BEGIN /etc/grub.d/20_linux_xen ###\n", 1)[1].split(
    "### END /etc/grub.d/20_linux_xen ###", 1
)[0]
assert f" {LAB_XEN} " in SECTION and f"ro  {LAB_DOM0}\n" in SECTION

FAKE_20_LINUX_XEN = f"""#!{sys.executable}
import os, sys
section = {SECTION!r}
section = section.replace({LAB_XEN!r}, os.environ.get("GRUB_CMDLINE_XEN_DEFAULT", ""))
dom0 = os.environ.get("GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT", "")
section = section.replace("ro  " + {LAB_DOM0!r}, "ro  " + dom0)
print("Found linux image: /boot/vmlinuz-6.12.117+deb13-amd64", file=sys.stderr)
sys.stdout.write(section if os.environ.get("FAKE_NO_XEN") != "1" else "")
"""


def render(grub_d: Path, xen: str = NEW_XEN, dom0: str = NEW_DOM0) -> Path:
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["quote"] = shlex.quote
    text = env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="Managed by Ansible",
        __xen_hypervisor_plan={"xen_cmdline": xen, "dom0_cmdline": dom0},
        __xen_hypervisor_trial_entry=ENTRY,
        __xen_hypervisor_grub_d_dir=str(grub_d),
    )
    script = grub_d / "42_xen-hypervisor-trial"
    script.write_text(text)
    script.chmod(0o755)
    return script


@pytest.fixture
def grub_d(tmp_path: Path) -> Path:
    fake = tmp_path / "20_linux_xen"
    fake.write_text(FAKE_20_LINUX_XEN)
    fake.chmod(0o755)
    return tmp_path


def run(script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # update-grub exports the settings of /etc/default/grub and its drop-ins:
    # here the ones Xen runs with, which the trial entry must not take.
    environ = {
        **os.environ,
        "GRUB_CMDLINE_XEN_DEFAULT": LAB_XEN,
        "GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT": LAB_DOM0,
        **env,
    }
    return subprocess.run(
        ["/bin/sh", str(script)], capture_output=True, text=True, env=environ, check=False
    )


def test_the_script_is_valid_shell(grub_d: Path) -> None:
    script = render(grub_d, xen="dom0_mem=1G,max:1G it's", dom0='a "b" $c')
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0


def test_the_trial_entry_has_the_new_options_and_the_xen_entry_the_old(grub_d: Path) -> None:
    out = run(render(grub_d))
    assert out.returncode == 0, out.stderr
    # update-grub appends the script's output to the menu.
    menu = LAB_GRUB_CFG + out.stdout
    assert hp.xen_entry_has_cmdline(menu, NEW_XEN, NEW_DOM0, ENTRY)
    assert not hp.xen_entry_has_cmdline(menu, LAB_XEN, LAB_DOM0, ENTRY)
    # The Xen entry, GRUB's saved default, is untouched.
    assert hp.xen_entry_has_cmdline(menu, LAB_XEN, LAB_DOM0)
    assert hp.xen_entry_id(menu) == "xen-gnulinux-simple-fcd30ff9-c69e-453d-ab4a-40c3c0f1fe39"
    # One entry only: the first plain Xen entry, none of the advanced submenu's.
    assert out.stdout.count("menuentry ") == 1
    assert "submenu" not in out.stdout
    first = out.stdout.splitlines()[0]
    title = "Debian GNU/Linux, with Xen hypervisor (trial of new options)"
    assert first.startswith(f"menuentry '{title}' ")
    assert first.endswith(f"$menuentry_id_option '{ENTRY}' {{")
    assert out.stdout.rstrip().endswith("\n}")
    # The same kernel, initrd, root and Xen image as the Xen entry.
    kernel = "6.12.117+deb13-amd64"
    for path in (f"vmlinuz-{kernel}", f"initrd.img-{kernel}", "xen-4.20-amd64.gz"):
        assert f"/boot/{path}" in out.stdout


def test_no_xen_entry_gives_no_trial_entry(grub_d: Path) -> None:
    out = run(render(grub_d), FAKE_NO_XEN="1")
    assert (out.returncode, out.stdout) == (0, "")
    assert hp.xen_entry_cmdlines(LAB_GRUB_CFG + out.stdout, ENTRY) is None


def test_a_failing_20_linux_xen_prints_no_trial_entry(grub_d: Path) -> None:
    (grub_d / "20_linux_xen").write_text("#!/bin/sh\nexit 3\n")
    # The pipeline's status is awk's: no entry printed is what the role's
    # check of the regenerated menu then reports.
    out = run(render(grub_d))
    assert out.stdout == ""
