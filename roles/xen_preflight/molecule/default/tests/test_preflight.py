"""xen_preflight in a real trixie VM: its report matches the host, and an
unsupported plan or release fails with the exact message and changes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "molecule"))
from helpers import playbook, scenario_file, tree_digest
from module_utils import xen_preflight

WATCHED = ("/etc", "/boot", "/var/lib/dpkg/status")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("preflight") / "report.json"
    proc = playbook(scenario_file("report.yml"), env={"XEN_PREFLIGHT_REPORT": str(out)})
    assert proc.returncode == 0
    return json.loads(out.read_text())


def test_release_and_arch_match_the_host(host, report) -> None:  # noqa: ANN001
    os_release = host.file("/etc/os-release").content_string
    assert "VERSION_CODENAME=trixie" in os_release
    assert report["codename"] == "trixie"
    assert report["release"] == "13"
    assert report["arch"] == host.check_output("uname -m") == "x86_64"


def test_memory_matches_proc_meminfo(host, report) -> None:  # noqa: ANN001
    kib = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    assert abs(report["mem_total_mib"] - kib // 1024) <= 1
    assert report["dom0_mem_mib"] == 1024


def test_firmware_and_secure_boot_match_the_host(host, report) -> None:  # noqa: ANN001
    assert not host.file("/sys/firmware/efi").exists
    assert report["firmware"] == "bios"
    assert report["secure_boot"] is False


def test_cpu_virtualization_matches_cpuinfo(host, report) -> None:  # noqa: ANN001
    flags = host.check_output("grep -m1 '^flags' /proc/cpuinfo").split()
    expected = "vmx" if "vmx" in flags else "svm" if "svm" in flags else "none"
    assert report["virt_ext"] == expected
    assert report["hvm_capable"] is (expected != "none")


def test_kernel_dom0_support_matches_kernel_config(host, report) -> None:  # noqa: ANN001
    config = host.file(f"/boot/config-{host.check_output('uname -r')}").content_string
    assert ("CONFIG_XEN_DOM0=y" in config.splitlines()) is report["kernel_xen_dom0"] is True
    assert report["xen_running"] is False
    assert report["errors"] == []


def test_too_large_memory_plan_fails_with_the_exact_message(host, report) -> None:  # noqa: ANN001
    before = tree_digest(host, *WATCHED)
    proc = playbook(scenario_file("converge.yml"), "-e", "xen_preflight_dom0_mem=64G")
    assert proc.returncode != 0
    expected = xen_preflight.MEMORY_TOO_SMALL.format(
        dom0_mem_mib=65536, guest_mem_min_mib=1024, mem_total_mib=report["mem_total_mib"]
    )
    assert expected in proc.stdout + proc.stderr
    assert tree_digest(host, *WATCHED) == before


def test_unsupported_release_fails_with_the_exact_message(host) -> None:  # noqa: ANN001
    original = host.file("/etc/debian_version").content_string
    faked = ("/etc/debian_version", "/usr/lib/os-release")
    for path in faked:
        host.run_expect([0], f"cp -a {path} {path}.preflight-test")
    try:
        # Make the VM look like Debian 11 to Ansible's fact gathering.
        host.run_expect([0], "echo 11.11 > /etc/debian_version")
        host.run_expect(
            [0],
            "sed -i -e 's/^VERSION_ID=.*/VERSION_ID=\"11\"/'"
            " -e 's/^VERSION=.*/VERSION=\"11 (bullseye)\"/'"
            " -e 's/^VERSION_CODENAME=.*/VERSION_CODENAME=bullseye/' /usr/lib/os-release",
        )
        before = tree_digest(host, *WATCHED)
        proc = playbook(scenario_file("converge.yml"))
        after = tree_digest(host, *WATCHED)
    finally:
        for path in faked:
            host.run(f"mv {path}.preflight-test {path}")
    assert proc.returncode != 0
    assert xen_preflight.UNSUPPORTED_RELEASE.format(release="11") in proc.stdout + proc.stderr
    assert after == before
    assert host.file("/etc/debian_version").content_string == original
