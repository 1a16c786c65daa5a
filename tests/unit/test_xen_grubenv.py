"""Whether GRUB can write its environment block, from grub-probe's answers."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_grubenv import (
    PROBE_ABSTRACTION,
    PROBE_FS,
    describe,
    grubenv_state,
)


def answer(stdout: str = "", rc: int = 0, stderr: str = "") -> dict[str, Any]:
    """One command's answer as xen_read returns it."""
    return {"rc": rc, "stdout": stdout, "stderr": stderr}


# grub-probe 2.06 (Debian 12) on /boot/grub of a plain ext4 filesystem: no
# abstraction at all, and GRUB's ext2 driver (it reads ext2, ext3 and ext4).
PLAIN_EXT4 = (answer(""), answer("ext2\n"))
# md RAID1 (metadata 1.2) and LVM, as util/grub-probe.c prints them, one word a
# line: "diskfilter" then the RAID module for md RAID; "lvm" for a logical
# volume; the members' layers first for a logical volume on md RAID.
MD_RAID1 = (answer("diskfilter\nmdraid1x\n"), answer("ext2\n"))
LVM = (answer("lvm\n"), answer("ext2\n"))
LVM_ON_MD_RAID1 = (answer("diskfilter\nmdraid1x\nlvm\n"), answer("ext2\n"))
# LUKS: GRUB's cryptodisk layer writes (grub_cryptodisk_write), so Debian's
# list leaves it out.
LUKS2 = (answer("cryptodisk\nluks2\ngcry_rijndael\ngcry_sha256\n"), answer("ext2\n"))
ZFS = (answer(""), answer("zfs\n"))
BTRFS = (answer(""), answer("btrfs\n"))


def test_the_role_probes_boot_grub() -> None:
    assert PROBE_ABSTRACTION == ["grub-probe", "--target=abstraction", "/boot/grub"]
    assert PROBE_FS == ["grub-probe", "--target=fs", "/boot/grub"]


def test_plain_ext4_is_writable() -> None:
    state = grubenv_state(*PLAIN_EXT4)
    assert state == {
        "writable": True,
        "target": "",
        "word": "",
        "layer": "",
        "error": "",
        "fs": "ext2",
    }
    assert describe(state) == "writable by GRUB at boot (/boot/grub on ext2)"


@pytest.mark.parametrize(
    ("probes", "word", "layer"),
    [
        (MD_RAID1, "diskfilter", "md RAID"),
        (LVM, "lvm", "LVM"),
        (LVM_ON_MD_RAID1, "diskfilter", "md RAID"),
    ],
    ids=["md-raid1", "lvm", "lvm-on-md-raid1"],
)
def test_md_raid_and_lvm_are_not_writable(
    probes: tuple[dict[str, Any], dict[str, Any]], word: str, layer: str
) -> None:
    state = grubenv_state(*probes)
    assert (state["writable"], state["target"], state["word"], state["layer"]) == (
        False,
        "abstraction",
        word,
        layer,
    )
    assert describe(state) == (
        f"not writable by GRUB at boot: /boot/grub is on {layer}"
        f" (grub-probe --target=abstraction: {word})"
    )


@pytest.mark.parametrize(
    ("probes", "layer"), [(ZFS, "ZFS"), (BTRFS, "btrfs")], ids=["zfs", "btrfs"]
)
def test_zfs_and_btrfs_are_not_writable(
    probes: tuple[dict[str, Any], dict[str, Any]], layer: str
) -> None:
    state = grubenv_state(*probes)
    assert (state["writable"], state["target"], state["layer"]) == (False, "fs", layer)
    assert describe(state) == (
        f"not writable by GRUB at boot: /boot/grub is on {layer}"
        f" (grub-probe --target=fs: {state['word']})"
    )


def test_luks_is_writable() -> None:
    assert grubenv_state(*LUKS2)["writable"] is True


def test_a_failed_probe_leaves_it_unknown() -> None:
    # grub-probe 2.06 where /boot/grub does not exist.
    missing = answer(
        rc=1, stderr="grub-probe: error: failed to get canonical path of `/boot/grub'.\n"
    )
    state = grubenv_state(missing, missing)
    assert state["writable"] is None
    assert state["error"] == (
        "grub-probe --target=abstraction /boot/grub failed:"
        " grub-probe: error: failed to get canonical path of `/boot/grub'."
    )
    assert describe(state) == f"unknown: {state['error']}"


def test_a_missing_grub_probe_leaves_it_unknown() -> None:
    # xen_read answers rc 127 for a program that does not exist.
    absent = answer(rc=127, stderr="[Errno 2] No such file or directory: 'grub-probe'")
    state = grubenv_state(absent, absent)
    assert (state["writable"], state["error"]) == (None, "grub-probe is not installed")


def test_a_failed_filesystem_probe_after_a_plain_abstraction_is_unknown() -> None:
    state = grubenv_state(answer(""), answer(rc=1))
    assert (state["writable"], state["target"]) == (None, "fs")
    assert state["error"] == "grub-probe --target=fs /boot/grub failed: exit code 1"
