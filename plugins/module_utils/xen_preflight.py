"""Decide whether a host can become a Xen dom0.

The xen_preflight role reads the host without changing it and hands the raw
readings to ``findings_from_raw``; ``evaluate`` then turns the findings into
errors (the host cannot become a dom0) and warnings (it can, with a
limitation). Each message is one sentence that names the fix. The messages are
format strings so tests can build the exact text.

The settings of the stages are checked by their own planners (the memory plan
by the hypervisor's, guest types against the CPU by the guests'); the role
runs those checks too, before any stage changes a host.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_grubenv import (
    describe,
    grubenv_state,
)

SUPPORTED_RELEASES: dict[str, str] = {"12": "bookworm", "13": "trixie"}
SUPPORTED_ARCH = "x86_64"
VIRT_FLAGS = ("vmx", "svm")

UNSUPPORTED_DISTRIBUTION = (
    "{distribution} {version} is not supported: xen_preflight needs Debian 12 (bookworm)"
    " or 13 (trixie); reinstall the host with Debian first."
)
UNSUPPORTED_RELEASE = (
    "Debian {release} is not supported: xen_preflight needs Debian 12 (bookworm)"
    " or 13 (trixie); upgrade the host first."
)
UNSUPPORTED_ARCH = (
    "Architecture {arch} is not supported: xen_preflight supports x86_64 (Debian amd64)"
    " hosts only; use an amd64 host."
)
MEMORY_UNKNOWN = (
    "Xen is running but 'xl info' did not report the host's RAM, so it is unknown:"
    " run xen_preflight with become: true."
)
SECURE_BOOT_ON = (
    "Secure Boot is enabled and Debian's Xen is not signed for it, so the host would not"
    " boot Xen: disable Secure Boot in the firmware setup first."
)
NO_VIRT_EXT_WARNING = (
    "The CPU shows neither vmx nor svm, so this host can run PV guests only: enable"
    " Intel VT-x or AMD-V in the firmware setup (or nested virtualization if the host is"
    " a VM) before planning PVH or HVM guests."
)
KERNEL_CONFIG_MISSING = (
    "Kernel config /boot/config-{kernel} is missing or unreadable, so dom0 support cannot"
    " be confirmed: install Debian's linux-image-amd64 or build the kernel with"
    " CONFIG_XEN_DOM0=y."
)
KERNEL_NO_XEN_DOM0 = (
    "Kernel {kernel} is built without CONFIG_XEN_DOM0=y, so it cannot run as dom0: install"
    " Debian's linux-image-amd64 or build the kernel with CONFIG_XEN_DOM0=y."
)

_XL_TOTAL_MEMORY_RE = re.compile(r"^total_memory\s*:\s*(\d+)\s*$", re.MULTILINE)


def _b64text(value: str) -> str:
    return base64.b64decode(value).decode("ascii", errors="replace") if value else ""


def secure_boot_enabled(efivar_b64: str) -> bool:
    """Read the SecureBoot EFI variable as slurped (base64).

    efivarfs prefixes the value with 4 bytes of attributes; the last byte is 1
    when Secure Boot is enforced. An absent variable means no Secure Boot.
    """
    return base64.b64decode(efivar_b64)[-1:] == b"\x01" if efivar_b64 else False


def cpu_virt_ext(flags_line: str) -> str:
    """Return "vmx", "svm" or "none" from the ``flags`` line of /proc/cpuinfo."""
    flags = set(flags_line.partition(":")[2].split())
    return next((flag for flag in VIRT_FLAGS if flag in flags), "none")


def xl_total_memory_mib(xl_info: str) -> int | None:
    """Return the host's RAM in MiB from ``xl info`` output, or None if absent."""
    match = _XL_TOTAL_MEMORY_RE.search(xl_info)
    return int(match[1]) if match else None


def findings_from_raw(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Normalize the xen_preflight role's raw readings into findings.

    ``raw`` holds the Ansible facts distribution, distribution_version,
    distribution_major_version, distribution_release, architecture, kernel and
    memtotal_mb, plus:

    - efi: whether /sys/firmware/efi exists;
    - secure_boot_var: the SecureBoot EFI variable, base64, "" when absent;
    - cpu_flags: the first ``flags`` line of /proc/cpuinfo;
    - kernel_config_rc: grep's exit code for CONFIG_XEN_DOM0=y in
      /boot/config-<kernel> (0 found, 1 not set, 2 file missing or unreadable);
    - xen_running: whether /proc/xen/capabilities says control_d (dom0);
    - hypervisor_capabilities: /sys/hypervisor/properties/capabilities,
      base64, "" when absent;
    - xl_info: ``xl info`` output, "" when not run or failed;
    - grub_probe_abstraction, grub_probe_fs: the answers (rc, stdout,
      stderr) of ``grub-probe --target=abstraction /boot/grub`` and
      ``--target=fs``, which say whether GRUB can write its environment block
      (boot-once needs it; the hypervisor's own check refuses without it).

    A running Xen hides vmx/svm from dom0's /proc/cpuinfo and gives dom0 only
    its own share of RAM, so on a dom0 HVM support comes from the hypervisor's
    capabilities and the host's RAM from ``xl info``.
    """
    xen_running = raw["xen_running"]
    virt_ext = cpu_virt_ext(raw["cpu_flags"])
    hypervisor_hvm = "hvm" in _b64text(raw["hypervisor_capabilities"])
    grubenv = grubenv_state(raw["grub_probe_abstraction"], raw["grub_probe_fs"])
    return {
        "distribution": raw["distribution"],
        "release": raw["distribution_major_version"],
        "version": raw["distribution_version"],
        "codename": raw["distribution_release"],
        "arch": raw["architecture"],
        "kernel": raw["kernel"],
        "mem_total_mib": (
            xl_total_memory_mib(raw["xl_info"]) if xen_running else int(raw["memtotal_mb"])
        ),
        "firmware": "uefi" if raw["efi"] else "bios",
        "secure_boot": secure_boot_enabled(raw["secure_boot_var"]),
        "virt_ext": virt_ext,
        "hvm_capable": virt_ext != "none" or (xen_running and hypervisor_hvm),
        "kernel_config_found": raw["kernel_config_rc"] != 2,
        "kernel_xen_dom0": raw["kernel_config_rc"] == 0,
        "xen_running": xen_running,
        "grubenv_writable": grubenv["writable"],
        "grubenv": describe(grubenv),
    }


def evaluate(findings: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Return (errors, warnings) for turning the host into a dom0.

    ``findings`` comes from ``findings_from_raw``.
    """
    errors: list[str] = []
    warnings: list[str] = []

    if findings["distribution"] != "Debian":
        errors.append(
            UNSUPPORTED_DISTRIBUTION.format(
                distribution=findings["distribution"], version=findings["version"]
            )
        )
    elif findings["release"] not in SUPPORTED_RELEASES:
        errors.append(UNSUPPORTED_RELEASE.format(release=findings["release"]))

    if findings["arch"] != SUPPORTED_ARCH:
        errors.append(UNSUPPORTED_ARCH.format(arch=findings["arch"]))

    if findings["mem_total_mib"] is None:
        warnings.append(MEMORY_UNKNOWN)

    if findings["secure_boot"]:
        errors.append(SECURE_BOOT_ON)

    if not findings["hvm_capable"]:
        warnings.append(NO_VIRT_EXT_WARNING)

    if not findings["kernel_config_found"]:
        errors.append(KERNEL_CONFIG_MISSING.format(kernel=findings["kernel"]))
    elif not findings["kernel_xen_dom0"]:
        errors.append(KERNEL_NO_XEN_DOM0.format(kernel=findings["kernel"]))

    return errors, warnings
