"""Tests for the xen_preflight decision logic and its filters."""

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.xen_lab.dom0.plugins.filter.xen_preflight import FilterModule
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_preflight import (
    KERNEL_CONFIG_MISSING,
    KERNEL_NO_XEN_DOM0,
    MEMORY_UNKNOWN,
    NO_VIRT_EXT_WARNING,
    SECURE_BOOT_ON,
    UNSUPPORTED_ARCH,
    UNSUPPORTED_DISTRIBUTION,
    UNSUPPORTED_RELEASE,
    cpu_virt_ext,
    evaluate,
    findings_from_raw,
    secure_boot_enabled,
    xl_total_memory_mib,
)

KERNEL = "6.1.0-28-amd64"
# grub-probe's answers for /boot/grub (see test_xen_grubenv.py).
GRUB_PROBE: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "grub-probe.json").read_text()
)

# Representative `xl info` output in the format of Xen 4.17 (Debian 12) under
# QEMU TCG `-cpu qemu64,+svm` with 3 GiB; replace with a capture from the lab VM.
XL_INFO = """\
host                   : dom0
release                : 6.1.0-28-amd64
machine                : x86_64
nr_cpus                : 2
max_cpu_id             : 1
nr_nodes               : 1
cores_per_socket       : 1
threads_per_core       : 1
virt_caps              : pv hvm shadow
total_memory           : 3071
free_memory            : 1983
sharing_freed_memory   : 0
sharing_used_memory    : 0
outstanding_claims     : 0
free_cpus              : 0
xen_major              : 4
xen_minor              : 17
xen_version            : 4.17.5
xen_caps               : xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64
xen_scheduler          : credit2
xen_pagesize           : 4096
xen_commandline        : placeholder dom0_mem=1024M,max:1024M
xend_config_format     : 4
"""
HYPERVISOR_CAPS_HVM = "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64\n"
AMD_FLAGS = "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep syscall nx lm svm svm_lock"
INTEL_FLAGS = "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep vmx est tm2 ssse3"
NO_VIRT_FLAGS = "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep syscall nx lm"


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def healthy_findings(**changes: Any) -> dict[str, Any]:
    """Findings of a host that can become a dom0, with ``changes`` applied."""
    findings: dict[str, Any] = {
        "distribution": "Debian",
        "release": "12",
        "version": "12.11",
        "codename": "bookworm",
        "arch": "x86_64",
        "kernel": KERNEL,
        "mem_total_mib": 8000,
        "firmware": "bios",
        "secure_boot": False,
        "virt_ext": "svm",
        "hvm_capable": True,
        "kernel_config_found": True,
        "kernel_xen_dom0": True,
        "xen_running": False,
    }
    findings.update(changes)
    return findings


def raw_readings(**changes: Any) -> dict[str, Any]:
    """What the role reads on a plain Debian 12 host, with ``changes`` applied."""
    raw: dict[str, Any] = {
        "distribution": "Debian",
        "distribution_version": "12.11",
        "distribution_major_version": "12",
        "distribution_release": "bookworm",
        "architecture": "x86_64",
        "kernel": KERNEL,
        "memtotal_mb": 2979,
        "efi": False,
        "secure_boot_var": "",
        "cpu_flags": AMD_FLAGS,
        "kernel_config_rc": 0,
        "xen_running": False,
        "hypervisor_capabilities": "",
        "xl_info": "",
        "grub_probe_abstraction": GRUB_PROBE["plain-ext4"]["abstraction"],
        "grub_probe_fs": GRUB_PROBE["plain-ext4"]["fs"],
    }
    raw.update(changes)
    return raw


# evaluate: the host can become a dom0


@pytest.mark.parametrize("release", ["12", "13"])
def test_supported_release_passes(release: str) -> None:
    assert evaluate(healthy_findings(release=release)) == ([], [])


def test_uefi_without_secure_boot_passes() -> None:
    assert evaluate(healthy_findings(firmware="uefi", secure_boot=False)) == ([], [])


def test_hvm_capable_dom0_passes_without_cpu_flags() -> None:
    findings = healthy_findings(virt_ext="none", hvm_capable=True, xen_running=True)
    assert evaluate(findings) == ([], [])


# evaluate: errors and warnings, with their exact text


def test_debian_11_is_an_error() -> None:
    errors, warnings = evaluate(
        healthy_findings(release="11", version="11.11", codename="bullseye")
    )
    assert errors == [
        "Debian 11 is not supported: xen_preflight needs Debian 12 (bookworm) or 13 (trixie);"
        " upgrade the host first."
    ]
    assert errors == [UNSUPPORTED_RELEASE.format(release="11")]
    assert warnings == []


def test_ubuntu_is_an_error() -> None:
    findings = healthy_findings(
        distribution="Ubuntu", release="24", version="24.04", codename="noble"
    )
    errors, _ = evaluate(findings)
    assert errors == [
        "Ubuntu 24.04 is not supported: xen_preflight needs Debian 12 (bookworm) or 13 (trixie);"
        " reinstall the host with Debian first."
    ]
    assert errors == [UNSUPPORTED_DISTRIBUTION.format(distribution="Ubuntu", version="24.04")]


def test_aarch64_is_an_error() -> None:
    errors, _ = evaluate(healthy_findings(arch="aarch64"))
    assert errors == [UNSUPPORTED_ARCH.format(arch="aarch64")]
    assert errors[0].startswith("Architecture aarch64 is not supported: ")


def test_unknown_memory_on_a_dom0_is_a_warning() -> None:
    findings = healthy_findings(mem_total_mib=None, xen_running=True)
    assert evaluate(findings) == ([], [MEMORY_UNKNOWN])


def test_secure_boot_is_an_error() -> None:
    errors, _ = evaluate(healthy_findings(firmware="uefi", secure_boot=True))
    assert errors == [SECURE_BOOT_ON]
    assert errors == [
        "Secure Boot is enabled and Debian's Xen is not signed for it, so the host would not"
        " boot Xen: disable Secure Boot in the firmware setup first."
    ]


def test_missing_virt_ext_is_a_warning_and_guest_types_are_the_guests_check() -> None:
    # Whether a PVH or HVM guest needs VT-x/AMD-V is checked per guest by the
    # guests' planner (Guest <name>: ...), which the role runs before any stage.
    findings = healthy_findings(virt_ext="none", hvm_capable=False)
    assert evaluate(findings) == ([], [NO_VIRT_EXT_WARNING])
    assert NO_VIRT_EXT_WARNING == (
        "The CPU shows neither vmx nor svm, so this host can run PV guests only: enable"
        " Intel VT-x or AMD-V in the firmware setup (or nested virtualization if the host is"
        " a VM) before planning PVH or HVM guests."
    )


def test_kernel_without_xen_dom0_is_an_error() -> None:
    errors, _ = evaluate(healthy_findings(kernel_xen_dom0=False))
    assert errors == [
        f"Kernel {KERNEL} is built without CONFIG_XEN_DOM0=y, so it cannot run as dom0:"
        " install Debian's linux-image-amd64 or build the kernel with CONFIG_XEN_DOM0=y."
    ]
    assert errors == [KERNEL_NO_XEN_DOM0.format(kernel=KERNEL)]


def test_missing_kernel_config_is_an_error() -> None:
    findings = healthy_findings(kernel_config_found=False, kernel_xen_dom0=False)
    errors, _ = evaluate(findings)
    assert errors == [KERNEL_CONFIG_MISSING.format(kernel=KERNEL)]


def test_every_problem_is_reported_in_order() -> None:
    findings = healthy_findings(
        release="11",
        arch="i686",
        mem_total_mib=1000,
        firmware="uefi",
        secure_boot=True,
        virt_ext="none",
        hvm_capable=False,
        kernel_xen_dom0=False,
    )
    errors, warnings = evaluate(findings)
    assert errors == [
        UNSUPPORTED_RELEASE.format(release="11"),
        UNSUPPORTED_ARCH.format(arch="i686"),
        SECURE_BOOT_ON,
        KERNEL_NO_XEN_DOM0.format(kernel=KERNEL),
    ]
    assert warnings == [NO_VIRT_EXT_WARNING]


# parsing of raw readings


@pytest.mark.parametrize(
    ("efivar", "enabled"),
    [
        (b"\x06\x00\x00\x00\x01", True),
        (b"\x06\x00\x00\x00\x00", False),
        (b"", False),
    ],
)
def test_secure_boot_is_the_last_byte_of_the_efi_variable(efivar: bytes, enabled: bool) -> None:
    assert secure_boot_enabled(b64(efivar)) is enabled


@pytest.mark.parametrize(
    ("flags", "virt_ext"),
    [
        (AMD_FLAGS, "svm"),
        (INTEL_FLAGS, "vmx"),
        (NO_VIRT_FLAGS, "none"),
        ("flags\t\t: fpu svm_lock", "none"),
        ("", "none"),
    ],
)
def test_cpu_virt_ext_reads_whole_flags(flags: str, virt_ext: str) -> None:
    assert cpu_virt_ext(flags) == virt_ext


def test_xl_total_memory() -> None:
    assert xl_total_memory_mib(XL_INFO) == 3071
    assert xl_total_memory_mib("") is None


def test_findings_of_a_plain_uefi_host() -> None:
    raw = raw_readings(efi=True, secure_boot_var=b64(b"\x06\x00\x00\x00\x00"))
    assert findings_from_raw(raw) == {
        "distribution": "Debian",
        "release": "12",
        "version": "12.11",
        "codename": "bookworm",
        "arch": "x86_64",
        "kernel": KERNEL,
        "mem_total_mib": 2979,
        "firmware": "uefi",
        "secure_boot": False,
        "virt_ext": "svm",
        "hvm_capable": True,
        "kernel_config_found": True,
        "kernel_xen_dom0": True,
        "xen_running": False,
        "grubenv_writable": True,
        "grubenv": "writable by GRUB at boot (/boot/grub on ext2)",
    }


@pytest.mark.parametrize(
    ("host", "writable", "report"),
    [
        ("plain-ext4", True, "writable by GRUB at boot (/boot/grub on ext2)"),
        (
            "md-raid1",
            False,
            "not writable by GRUB at boot: /boot/grub is on md RAID"
            " (grub-probe --target=abstraction: diskfilter)",
        ),
        (
            "lvm",
            False,
            "not writable by GRUB at boot: /boot/grub is on LVM"
            " (grub-probe --target=abstraction: lvm)",
        ),
        (
            "no-boot-grub",
            None,
            "unknown: grub-probe --target=abstraction /boot/grub failed:"
            " grub-probe: error: failed to get canonical path of `/boot/grub'.",
        ),
    ],
)
def test_grub_environment_block_is_reported(host: str, writable: bool | None, report: str) -> None:
    raw = raw_readings(
        grub_probe_abstraction=GRUB_PROBE[host]["abstraction"],
        grub_probe_fs=GRUB_PROBE[host]["fs"],
    )
    findings = findings_from_raw(raw)
    assert (findings["grubenv_writable"], findings["grubenv"]) == (writable, report)
    # The refusal is the hypervisor's own check, which names its setting.
    assert evaluate(findings) == ([], [])


@pytest.mark.parametrize(
    ("rc", "found", "xen_dom0"),
    [(0, True, True), (1, True, False), (2, False, False)],
)
def test_kernel_config_grep_status(rc: int, found: bool, xen_dom0: bool) -> None:
    findings = findings_from_raw(raw_readings(kernel_config_rc=rc))
    assert (findings["kernel_config_found"], findings["kernel_xen_dom0"]) == (found, xen_dom0)


def test_running_dom0_reads_ram_and_hvm_from_xen() -> None:
    raw = raw_readings(
        memtotal_mb=987,  # dom0's own share, not the host's RAM
        cpu_flags=NO_VIRT_FLAGS,  # Xen hides vmx/svm from dom0
        xen_running=True,
        hypervisor_capabilities=b64(HYPERVISOR_CAPS_HVM),
        xl_info=XL_INFO,
    )
    findings = findings_from_raw(raw)
    assert findings["mem_total_mib"] == 3071
    assert findings["virt_ext"] == "none"
    assert findings["hvm_capable"] is True
    assert findings["xen_running"] is True
    assert evaluate(findings) == ([], [])


def test_running_dom0_without_xl_info_has_unknown_ram() -> None:
    raw = raw_readings(xen_running=True, cpu_flags=NO_VIRT_FLAGS, xl_info="")
    findings = findings_from_raw(raw)
    assert findings["mem_total_mib"] is None
    assert findings["hvm_capable"] is False


def test_plain_host_without_cpu_flags_is_not_hvm_capable() -> None:
    findings = findings_from_raw(raw_readings(cpu_flags=NO_VIRT_FLAGS))
    assert (findings["virt_ext"], findings["hvm_capable"]) == ("none", False)


# filters


def test_filters_chain_as_the_role_uses_them() -> None:
    filters = FilterModule().filters()
    findings = filters["xen_preflight_findings"](raw_readings(kernel_config_rc=1))
    result = filters["xen_preflight_evaluate"](findings)
    assert result == {"errors": [KERNEL_NO_XEN_DOM0.format(kernel=KERNEL)], "warnings": []}
