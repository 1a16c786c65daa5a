"""The host really runs Xen as a dom0 within its limits, and GRUB boots Xen."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests" / "molecule"))
from helpers import playbook, tree_digest

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import (
    parse_xl_info,
    parse_xl_list,
)
from xenlab.config import cache_root

XEN_VERSIONS = {"trixie": "4.20", "bookworm": "4.17"}
DOM0_MEM = 1024
TOLERANCE = 32
WATCHED = ("/etc/default", "/boot/grub", "/etc/xen", "/var/lib/dpkg/status")
BAD_INPUT = Path(__file__).with_name("bad_input.yml")


@pytest.fixture(scope="module")
def xl_info(host, codename) -> dict[str, str]:  # noqa: ANN001
    text = host.check_output("xl info")
    # Kept for the record (README figures, parser fixtures).
    results = cache_root() / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"xl-info-{codename}.txt").write_text(text + "\n")
    (results / f"xl-list-{codename}.txt").write_text(host.check_output("xl list") + "\n")
    return parse_xl_info(text)


@pytest.fixture(scope="module")
def codename(host) -> str:  # noqa: ANN001
    return host.check_output(". /etc/os-release && echo $VERSION_CODENAME")


def test_host_is_dom0(host) -> None:  # noqa: ANN001
    caps = host.file("/proc/xen/capabilities")
    assert caps.exists
    assert "control_d" in caps.content_string


def test_xen_version_matches_the_release(xl_info, codename) -> None:  # noqa: ANN001
    assert xl_info["xen_version"].startswith(XEN_VERSIONS[codename] + ".")
    assert "pv" in xl_info["virt_caps"].split()
    assert "hvm" in xl_info["virt_caps"].split()


def test_xen_runs_with_the_planned_options(xl_info) -> None:  # noqa: ANN001
    cmdline = xl_info["xen_commandline"].split()
    assert f"dom0_mem={DOM0_MEM}M,max:{DOM0_MEM}M" in cmdline
    assert "dom0_max_vcpus=2" in cmdline
    assert "console=com1" in cmdline
    assert "com1=115200,8n1" in cmdline


def test_dom0_has_its_fixed_memory_and_vcpus(host) -> None:  # noqa: ANN001
    dom0 = parse_xl_list(host.check_output("xl list 0"))[0]
    assert dom0["name"] == "Domain-0"
    assert abs(int(dom0["mem"]) - DOM0_MEM) <= TOLERANCE
    assert dom0["vcpus"] == 2
    kib = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    assert kib // 1024 <= DOM0_MEM


def test_dom0_linux_writes_to_the_xen_console(host) -> None:  # noqa: ANN001
    cmdline = host.file("/proc/cmdline").content_string.split()
    assert "console=hvc0" in cmdline
    assert "console=ttyS0,115200n8" not in cmdline


def test_grub_saved_default_is_the_xen_entry(host) -> None:  # noqa: ANN001
    grub_cfg = host.file("/boot/grub/grub.cfg").content_string
    entry = hp.xen_entry_id(grub_cfg)
    assert entry is not None
    assert re.search(r"^\s*multiboot2\s+/boot/xen", grub_cfg, re.MULTILINE)
    env = dict(
        line.split("=", 1)
        for line in host.check_output("grub-editenv list").splitlines()
        if "=" in line
    )
    assert env.get("saved_entry") == entry
    assert "next_entry" not in env or env["next_entry"] == ""


def test_dropin_is_ours_and_the_packaged_conffile_untouched(host) -> None:  # noqa: ANN001
    dropin = host.file("/etc/default/grub.d/zz-xen-hypervisor.cfg")
    assert dropin.exists
    assert "GRUB_DEFAULT=saved" in dropin.content_string
    assert (
        f'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem={DOM0_MEM}M,max:{DOM0_MEM}M' in dropin.content_string
    )
    assert host.file("/etc/default/grub.d/xen.cfg").exists
    # dpkg --verify prints nothing for a package whose files are as shipped.
    assert host.run("dpkg --verify xen-hypervisor-common").stdout.strip() == ""


def test_xl_does_not_balloon_and_xendomains_does_not_dump_ram(host) -> None:  # noqa: ANN001
    assert re.search(r'^autoballoon="off"$', host.file("/etc/xen/xl.conf").content_string, re.M)
    xendomains = host.file("/etc/default/xendomains").content_string
    assert re.search(r"^XENDOMAINS_SAVE=$", xendomains, re.M)
    assert re.search(r"^XENDOMAINS_RESTORE=false$", xendomains, re.M)


def test_invalid_settings_are_refused_before_any_change(host, xl_info, tmp_path) -> None:  # noqa: ANN001
    ram = int(xl_info["total_memory"])
    cpus = int(xl_info["nr_cpus"])
    before = tree_digest(host, *WATCHED)
    report = tmp_path / "bad.json"
    proc = playbook(BAD_INPUT, env={"XEN_BAD_INPUT_REPORT": str(report)})
    assert proc.returncode == 0
    got = json.loads(report.read_text())
    expected = {
        "dom0_mem_above_ram": hp.MSG_MEM_ABOVE_RAM.format(mem=8192, ram=ram),
        "dom0_mem_malformed": "xen_hypervisor_dom0_mem: Invalid size '4X'",
        "dom0_mem_too_small": hp.MSG_MEM_TOO_SMALL.format(mem=256),
        "dom0_mem_starves_guests": hp.MSG_MEM_NO_GUESTS.format(
            mem=2560, ram=ram, left=ram - 2560, min=1024
        ),
        "guest_mem_min_malformed": "xen_hypervisor_guest_mem_min: Invalid size 'lots'",
        "vcpus_above_host": hp.MSG_VCPUS_ABOVE_HOST.format(vcpus=3, host=cpus),
        "vcpus_not_a_number": "xen_hypervisor_dom0_vcpus",
        "console_unknown": "value of xen_hypervisor_console must be one of: com1, com2, vga, none,"
        " got: serial",
        "baud_unknown": hp.MSG_BAUD.format(baud=12345, bauds="9600, 19200, 38400, 57600, 115200"),
        "cmdline_owned_option": hp.MSG_OWNED.format(option="dom0_mem"),
        "cmdline_shell": (
            "xen_hypervisor_cmdline_extra is 'loglvl=all; reboot': use blank-separated"
        ),
    }
    assert set(got) == set(expected)
    for case, message in expected.items():
        assert message in got[case], f"{case}: {got[case]!r}"
    assert tree_digest(host, *WATCHED) == before
