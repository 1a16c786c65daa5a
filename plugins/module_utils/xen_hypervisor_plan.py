"""The xen_hypervisor role's plan: validated dom0 limits and command lines.

One function, ``plan``, turns the role's settings and the host's size and
GRUB storage into the values the role writes, or into a list of errors, one
sentence each, that the role shows before it changes anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_grubenv import grubenv_state
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_sizes import parse_size_mib

# Xen's and Linux's options are words separated by blanks; quotes or shell
# metacharacters would break the GRUB drop-in, which is a shell fragment.
_CMDLINE_RE = re.compile(r"[A-Za-z0-9_.,:=/+@-]+(?: [A-Za-z0-9_.,:=/+@-]+)*")
# Options the role owns; setting them again through the *_extra settings
# would make the role's checks lie.
_XEN_OWNED = ("dom0_mem", "dom0_max_vcpus", "dom0_vcpus_pin", "console", "com1", "com2")
_BAUDS = (9600, 19200, 38400, 57600, 115200)

MSG_DOM0_MEM = "xen_hypervisor_dom0_mem: {error}"
MSG_GUEST_MIN = "xen_hypervisor_guest_mem_min: {error}"
MSG_MEM_TOO_SMALL = "xen_hypervisor_dom0_mem is {mem} MiB: a dom0 needs at least 512 MiB; raise it."
MSG_MEM_ABOVE_RAM = (
    "xen_hypervisor_dom0_mem is {mem} MiB but the host has only {ram} MiB of RAM; lower it."
)
MSG_MEM_NO_GUESTS = (
    "xen_hypervisor_dom0_mem is {mem} MiB: with {ram} MiB of RAM that leaves {left} MiB for "
    "guests, less than xen_hypervisor_guest_mem_min ({min} MiB); lower dom0_mem or the minimum."
)
MSG_VCPUS_ABOVE_HOST = (
    "xen_hypervisor_dom0_vcpus is {vcpus} but the host has only {host} CPUs; use at most {host}."
)
MSG_VCPUS_NEGATIVE = (
    "xen_hypervisor_dom0_vcpus is {vcpus}: use 0 for automatic or a positive count."
)
MSG_BAUD = "xen_hypervisor_serial_baud is {baud}: use one of {bauds}."
MSG_CMDLINE = (
    "{name} is {value!r}: use blank-separated options made of letters, digits and . , : = / + @ - _"
    " only (no quotes or shell characters)."
)
MSG_OWNED = (
    "xen_hypervisor_cmdline_extra sets {option}=, which the role manages: use the matching "
    "xen_hypervisor_* setting instead."
)
MSG_GRUBENV_READ_ONLY = (
    "GRUB cannot write its environment block on {layer} (grub-probe --target={target}"
    " /boot/grub: {word}), so it would never clear the boot-once entry (grub-reboot's"
    " next_entry) and a Xen that fails would boot again and again: set"
    " xen_hypervisor_boot_once: false to make the Xen entry GRUB's default directly,"
    " without a trial boot."
)
MSG_GRUBENV_UNKNOWN = (
    "Whether GRUB can write its environment block is unknown ({error}); if it cannot, it"
    " never clears the boot-once entry (grub-reboot's next_entry) and a Xen that fails boots"
    " again and again: run the role as root on a host that boots with GRUB, or set"
    " xen_hypervisor_boot_once: false to make the Xen entry GRUB's default directly, without"
    " a trial boot."
)


def auto_dom0_mem_mib(ram_mib: int) -> int:
    """Default dom0 memory: 1 GiB plus 64 MiB per GiB of RAM, at most 8 GiB."""
    return min(8192, 1024 + 64 * (ram_mib // 1024))


def auto_dom0_vcpus(host_vcpus: int) -> int:
    """Default dom0 vCPUs: all host CPUs up to 4; guests get the rest of the time."""
    return max(1, min(4, host_vcpus))


def _cmdline_errors(name: str, value: str) -> list[str]:
    if value and not _CMDLINE_RE.fullmatch(value):
        return [MSG_CMDLINE.format(name=name, value=value)]
    return []


def _grubenv_errors(grubenv: dict[str, Any]) -> list[str]:
    if grubenv["writable"] is False:
        return [MSG_GRUBENV_READ_ONLY.format(**grubenv)]
    if grubenv["writable"] is None:
        return [MSG_GRUBENV_UNKNOWN.format(**grubenv)]
    return []


def plan(
    settings: dict[str, Any],
    ram_mib: int,
    host_vcpus: int,
    grub_probe: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Validate settings against the host and compute what the role writes.

    ``grub_probe`` holds the answers (``rc``, ``stdout``, ``stderr``) of
    ``grub-probe --target=abstraction /boot/grub`` and ``--target=fs`` under
    ``abstraction`` and ``fs``: boot-once needs GRUB to write its environment block.
    """
    errors: list[str] = []

    mem_setting = settings.get("dom0_mem", "auto")
    mem = 0
    if str(mem_setting).strip().lower() == "auto":
        mem = auto_dom0_mem_mib(ram_mib)
    else:
        try:
            mem = parse_size_mib(mem_setting)
        except ValueError as exc:
            errors.append(MSG_DOM0_MEM.format(error=exc))
    guest_min = 0
    try:
        guest_min = parse_size_mib(settings.get("guest_mem_min", "512M"))
    except ValueError as exc:
        errors.append(MSG_GUEST_MIN.format(error=exc))
    if mem:
        if mem < 512:
            errors.append(MSG_MEM_TOO_SMALL.format(mem=mem))
        elif mem >= ram_mib:
            errors.append(MSG_MEM_ABOVE_RAM.format(mem=mem, ram=ram_mib))
        elif guest_min and ram_mib - mem < guest_min:
            errors.append(
                MSG_MEM_NO_GUESTS.format(mem=mem, ram=ram_mib, left=ram_mib - mem, min=guest_min)
            )

    vcpus_setting = int(settings.get("dom0_vcpus", 0))
    vcpus = auto_dom0_vcpus(host_vcpus) if vcpus_setting == 0 else vcpus_setting
    if vcpus_setting < 0:
        errors.append(MSG_VCPUS_NEGATIVE.format(vcpus=vcpus_setting))
    elif vcpus > host_vcpus:
        errors.append(MSG_VCPUS_ABOVE_HOST.format(vcpus=vcpus, host=host_vcpus))

    console = settings.get("console", "com1")
    baud = int(settings.get("serial_baud", 115200))
    if console in ("com1", "com2") and baud not in _BAUDS:
        errors.append(MSG_BAUD.format(baud=baud, bauds=", ".join(map(str, _BAUDS))))

    xen_extra = str(settings.get("cmdline_extra", "")).strip()
    dom0_extra = str(settings.get("dom0_cmdline_extra", "")).strip()
    errors += _cmdline_errors("xen_hypervisor_cmdline_extra", xen_extra)
    errors += _cmdline_errors("xen_hypervisor_dom0_cmdline_extra", dom0_extra)
    for word in xen_extra.split():
        option = word.split("=", 1)[0]
        if option in _XEN_OWNED:
            errors.append(MSG_OWNED.format(option=option))

    xen_words = [f"dom0_mem={mem}M,max:{mem}M", f"dom0_max_vcpus={vcpus}"]
    if settings.get("dom0_vcpus_pin", False):
        xen_words.append("dom0_vcpus_pin")
    if console in ("com1", "com2"):
        xen_words += [f"console={console}", f"{console}={baud},8n1"]
        dom0_words = ["console=hvc0"]
    elif console == "vga":
        xen_words.append("console=vga")
        dom0_words = ["console=tty0"]
    else:
        xen_words.append("console=none")
        dom0_words = []
    if xen_extra:
        xen_words.append(xen_extra)
    if dom0_extra:
        dom0_words.append(dom0_extra)

    grubenv = grubenv_state(grub_probe["abstraction"], grub_probe["fs"])
    if settings.get("boot_once", True):
        errors += _grubenv_errors(grubenv)

    return {
        "errors": errors,
        "dom0_mem_mib": mem,
        "dom0_vcpus": vcpus,
        "xen_cmdline": " ".join(xen_words),
        "dom0_cmdline": " ".join(dom0_words),
        "grubenv": grubenv,
    }


def xen_entry_id(grub_cfg: str) -> str | None:
    """The menu entry id of the newest plain "with Xen hypervisor" entry."""
    match = re.search(r"\$menuentry_id_option '(xen-gnulinux-simple-[^']+)'", grub_cfg)
    return match.group(1) if match else None


def linux_entry_id(grub_cfg: str) -> str | None:
    """The menu entry id of the plain Linux entry, the safe default."""
    match = re.search(r"\$menuentry_id_option '(gnulinux-simple-[^']+)'", grub_cfg)
    return match.group(1) if match else None


# Command lines are compared as lists of words, in order: Xen and Linux read
# their options left to right, a repeated option's last value wins, and the
# order of Linux's console= options picks /dev/console. The same words in the
# same order are no change; a word of the role's removed, added, changed or
# moved is one.
#
# Debian's GRUB (/etc/grub.d/20_linux_xen) writes the Xen entry's two lines as
#   multiboot2 <xen> placeholder <GRUB_CMDLINE_XEN> <GRUB_CMDLINE_XEN_DEFAULT> ${xen_rm_opts}
#   module2 <linux> placeholder root=<device> ro <GRUB_CMDLINE_LINUX> <GRUB_CMDLINE_LINUX_DEFAULT>
# The role's drop-in sets GRUB_CMDLINE_XEN_DEFAULT, and GRUB_CMDLINE_LINUX_DEFAULT
# through GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT, so the role's words end each
# line. The words before them are GRUB's (placeholder, root=, ro) and the
# host's own GRUB_CMDLINE_XEN and GRUB_CMDLINE_LINUX (or ..._XEN_REPLACE, and
# rootflags= on btrfs), which apply to every entry and which the role leaves
# alone. Xen keeps "placeholder" when GRUB 2 loads it, so it shows in `xl
# info` and in dom0's /proc/cmdline too. After the role's words come:
# - in grub.cfg, ${xen_rm_opts}, which GRUB expands at boot: to nothing on a
#   BIOS PC, to "no-real-mode edd=off" elsewhere (UEFI);
# - on dom0's running line, " noapic" and then " acpi=<value>", which Xen
#   appends when it was itself given noapic or acpi=<value> and dom0's line
#   lacks them.
# The role's Xen words start with dom0_mem=, which only the role may set, so
# "ends with the role's words" finds exactly the role's part of Xen's line.
# With no dom0 words (console none, no extra), GRUB writes the host's
# GRUB_CMDLINE_LINUX_DEFAULT instead, and there is nothing of the role's to see.
XEN_RM_OPTS_GRUB = ["${xen_rm_opts}"]
XEN_RM_OPTS_EFI = ["no-real-mode", "edd=off"]


def _ends_with(words: list[str], ours: list[str], tails: list[list[str]]) -> bool:
    """Whether ``words`` end with ``ours`` followed by one of ``tails``."""
    for tail in tails:
        end = len(words) - len(tail)
        start = end - len(ours)
        if start >= 0 and words[end:] == tail and words[start:end] == ours:
            return True
    return False


def xen_entry_cmdlines(grub_cfg: str, entry: str = "") -> tuple[list[str], list[str]] | None:
    """The words after the image on the multiboot2 (Xen) and first module2 (dom0
    Linux) lines of the menu entry whose id is ``entry``, by default the newest
    plain "with Xen hypervisor" entry, the one the role boots; None when
    grub.cfg has no such entry."""
    marker = "$menuentry_id_option '" + (f"{entry}'" if entry else "xen-gnulinux-simple-")
    lines = grub_cfg.splitlines()
    start = next((i for i, line in enumerate(lines) if marker in line), None)
    if start is None:
        return None
    xen: list[str] = []
    dom0: list[str] | None = None
    for line in lines[start + 1 :]:
        words = line.split()
        if words == ["}"]:
            break
        if words[:1] == ["multiboot2"]:
            xen = words[2:]
        elif words[:1] == ["module2"] and dom0 is None:
            # The kernel's line; the initrd's (module2 --nounzip) comes after it.
            dom0 = words[2:]
    return xen, dom0 or []


def xen_entry_has_cmdline(
    grub_cfg: str, xen_cmdline: str, dom0_cmdline: str, entry: str = ""
) -> bool:
    """Does the Xen entry of grub.cfg (or the entry whose id is ``entry``) load
    Xen and dom0 with exactly our options?"""
    found = xen_entry_cmdlines(grub_cfg, entry)
    if found is None:
        return False
    xen, dom0 = found
    return _ends_with(xen, xen_cmdline.split(), [XEN_RM_OPTS_GRUB, []]) and _ends_with(
        dom0, dom0_cmdline.split(), [[]]
    )


def xen_runs_cmdline(xen_commandline: str, xen_cmdline: str) -> bool:
    """Does Xen run (``xen_commandline`` of `xl info`) with exactly our options?"""
    return _ends_with(xen_commandline.split(), xen_cmdline.split(), [[], XEN_RM_OPTS_EFI])


def dom0_runs_cmdline(proc_cmdline: str, dom0_cmdline: str, xen_commandline: str) -> bool:
    """Does dom0 Linux run (its /proc/cmdline) with exactly our options? Xen's
    own running options (``xen_commandline``) say what Xen may have appended."""
    xen_words = xen_commandline.split()
    noapic = ["noapic"] if "noapic" in xen_words else []
    acpi = [word for word in xen_words if word.startswith("acpi=")][-1:]
    tails = [[], noapic, acpi, noapic + acpi]
    return _ends_with(proc_cmdline.split(), dom0_cmdline.split(), tails)
