"""Whether GRUB can write its environment block, from grub-probe's answers.

data/grub-probe.json holds the answers of ``grub-probe --target=abstraction
/boot/grub`` and ``--target=fs`` as xen_read returns them:

- plain-ext4 and no-boot-grub: grub-probe 2.06 (Debian 12) on an ext4
  filesystem, and where /boot/grub does not exist;
- md-raid1 (metadata 1.2), lvm, lvm-on-md-raid1, luks2, zfs, btrfs: the words
  util/grub-probe.c prints there, one a line: "diskfilter" and the RAID module
  for md RAID, "lvm" for a logical volume, the members' layers first, and the
  name of GRUB's filesystem driver.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_grubenv import (
    PROBE_ABSTRACTION,
    PROBE_FS,
    describe,
    grubenv_state,
)

DATA = Path(__file__).parent / "data"
ROLES = Path(__file__).resolve().parents[2] / "roles"
PROBES: dict[str, dict[str, Any]] = json.loads((DATA / "grub-probe.json").read_text())


def state_of(host: str) -> dict[str, Any]:
    return grubenv_state(PROBES[host]["abstraction"], PROBES[host]["fs"])


def test_the_role_probes_boot_grub() -> None:
    assert PROBE_ABSTRACTION == ["grub-probe", "--target=abstraction", "/boot/grub"]
    assert PROBE_FS == ["grub-probe", "--target=fs", "/boot/grub"]


def test_plain_ext4_is_writable() -> None:
    state = state_of("plain-ext4")
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
    ("host", "word", "layer"),
    [
        ("md-raid1", "diskfilter", "md RAID"),
        ("lvm", "lvm", "LVM"),
        ("lvm-on-md-raid1", "diskfilter", "md RAID"),
    ],
)
def test_md_raid_and_lvm_are_not_writable(host: str, word: str, layer: str) -> None:
    state = state_of(host)
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


@pytest.mark.parametrize(("host", "layer"), [("zfs", "ZFS"), ("btrfs", "btrfs")])
def test_zfs_and_btrfs_are_not_writable(host: str, layer: str) -> None:
    state = state_of(host)
    assert (state["writable"], state["target"], state["word"], state["layer"]) == (
        False,
        "fs",
        host,
        layer,
    )
    assert describe(state) == (
        f"not writable by GRUB at boot: /boot/grub is on {layer} (grub-probe --target=fs: {host})"
    )


def test_luks_is_writable() -> None:
    # GRUB's cryptodisk layer writes (grub_cryptodisk_write); Debian's list leaves it out.
    assert state_of("luks2")["writable"] is True


def test_a_failed_probe_leaves_it_unknown() -> None:
    state = state_of("no-boot-grub")
    assert state["writable"] is None
    assert state["error"] == (
        "grub-probe --target=abstraction /boot/grub failed:"
        " grub-probe: error: failed to get canonical path of `/boot/grub'."
    )
    assert describe(state) == f"unknown: {state['error']}"


def test_a_missing_grub_probe_leaves_it_unknown() -> None:
    # xen_read answers rc 127 for a program that does not exist.
    absent = {"rc": 127, "stdout": "", "stderr": "[Errno 2] No such file or directory"}
    state = grubenv_state(absent, absent)
    assert (state["writable"], state["error"]) == (None, "grub-probe is not installed")


def test_a_failed_filesystem_probe_after_a_plain_abstraction_is_unknown() -> None:
    failed = {"rc": 1, "stdout": "", "stderr": ""}
    state = grubenv_state(PROBES["plain-ext4"]["abstraction"], failed)
    assert (state["writable"], state["target"]) == (None, "fs")
    assert state["error"] == "grub-probe --target=fs /boot/grub failed: exit code 1"


@pytest.mark.parametrize(
    "tasks", ["xen_hypervisor/tasks/plan.yml", "xen_preflight/tasks/gather.yml"]
)
def test_the_roles_probe_with_these_commands(tasks: str) -> None:
    reads = [
        task["xen_lab.dom0.xen_read"]
        for task in yaml.safe_load((ROLES / tasks).read_text())
        if "xen_lab.dom0.xen_read" in task
    ]
    commands = reads[0]["commands"]
    assert commands["grub_abstraction"] == PROBE_ABSTRACTION
    assert commands["grub_fs"] == PROBE_FS
