"""Whether GRUB can write its environment block while it boots.

GRUB's boot-once (``grub-reboot``) puts ``next_entry`` into
``/boot/grub/grubenv``; at the next boot GRUB boots that entry and clears
``next_entry`` by writing the file in place. GRUB cannot write through some
storage layers and filesystems. There ``next_entry`` is never cleared, so an
entry booted "once" is booted at every start. Linux writes the file fine
(``grub-reboot``, ``grub-set-default``), which hides the problem until a boot.

The rules are Debian's own (``check_writable`` in ``/etc/grub.d/00_header``,
which turns off GRUB's recordfail for the same reason), read from two
``grub-probe`` answers:

- ``grub-probe --target=abstraction /boot/grub`` prints one word per line:
  nothing on a plain partition; ``diskfilter`` and the RAID module
  (``mdraid1x``, ``mdraid09``) on md RAID; ``lvm`` on LVM; ``cryptodisk`` and
  ``luks``/``luks2`` on LUKS. GRUB has no write support for diskfilter
  devices (md RAID, LVM, LDM), while its cryptodisk layer writes.
- ``grub-probe --target=fs /boot/grub`` prints GRUB's filesystem driver
  (``ext2`` for ext2, ext3 and ext4). Debian lists btrfs and ZFS, where GRUB
  does not write the block, and the archive and read-only filesystems.

The xen_hypervisor planner refuses boot-once where the block is not writable,
and the xen_preflight role reports the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GRUB_DIR = "/boot/grub"
PROBE_ABSTRACTION = ["grub-probe", "--target=abstraction", GRUB_DIR]
PROBE_FS = ["grub-probe", "--target=fs", GRUB_DIR]

# The abstraction words GRUB cannot write through, and what they are.
# Debian's 00_header names diskfilter and lvm; ldm is a diskfilter device too.
READ_ONLY_ABSTRACTIONS: dict[str, str] = {
    "diskfilter": "md RAID",
    "lvm": "LVM",
    "ldm": "Windows dynamic disks (LDM)",
}
# The filesystems GRUB cannot write its environment block on (00_header's list).
READ_ONLY_FILESYSTEMS: dict[str, str] = {
    "btrfs": "btrfs",
    "zfs": "ZFS",
    "squash4": "squashfs",
    "romfs": "romfs",
    "cpiofs": "a cpio archive",
    "newc": "a cpio archive",
    "odc": "a cpio archive",
    "tarfs": "a tar archive",
}


def _failure(target: str, answer: Mapping[str, Any]) -> str:
    if answer.get("rc") == 127:
        return "grub-probe is not installed"
    lines = str(answer.get("stderr", "")).strip().splitlines()
    reason = lines[0] if lines else f"exit code {answer.get('rc')}"
    return f"grub-probe --target={target} {GRUB_DIR} failed: {reason}"


def grubenv_state(abstraction: Mapping[str, Any], fs: Mapping[str, Any]) -> dict[str, Any]:
    """Whether GRUB can write its environment block, from the answers
    (``rc``, ``stdout``, ``stderr``) of PROBE_ABSTRACTION and PROBE_FS.

    Returns ``writable`` (None when grub-probe failed), ``target`` and
    ``word`` (the grub-probe target and the word of its answer that stops GRUB),
    ``layer`` (what that word is, for a message), ``error`` (why grub-probe
    failed) and ``fs`` (the filesystem, "" when unknown).
    """
    state: dict[str, Any] = {
        "writable": None,
        "target": "",
        "word": "",
        "layer": "",
        "error": "",
        "fs": "",
    }
    if abstraction.get("rc") != 0:
        return {**state, "target": "abstraction", "error": _failure("abstraction", abstraction)}
    for word in str(abstraction.get("stdout", "")).split():
        if word in READ_ONLY_ABSTRACTIONS:
            return {
                **state,
                "writable": False,
                "target": "abstraction",
                "word": word,
                "layer": READ_ONLY_ABSTRACTIONS[word],
            }
    if fs.get("rc") != 0:
        return {**state, "target": "fs", "error": _failure("fs", fs)}
    name = str(fs.get("stdout", "")).strip()
    if name in READ_ONLY_FILESYSTEMS:
        return {
            **state,
            "writable": False,
            "target": "fs",
            "word": name,
            "layer": READ_ONLY_FILESYSTEMS[name],
            "fs": name,
        }
    return {**state, "writable": True, "fs": name}


def describe(state: Mapping[str, Any]) -> str:
    """One line for a report: whether GRUB can write its environment block, and why."""
    if state["writable"]:
        return f"writable by GRUB at boot ({GRUB_DIR} on {state['fs']})"
    if state["writable"] is False:
        return (
            f"not writable by GRUB at boot: {GRUB_DIR} is on {state['layer']}"
            f" (grub-probe --target={state['target']}: {state['word']})"
        )
    return f"unknown: {state['error']}"
