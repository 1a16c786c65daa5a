"""The disk and seed script (roles/xen_guests/files/xen-guests-disk), run for real on
files in a temporary folder: copies, blank disks, the seed ISO, and what an
interrupted run leaves.

LVM volumes are files too: lvs, lvcreate and lvchange are stubs that keep each
volume as a file with its tags and state beside it, and blkid and dd are stubs
that record their calls and refuse any path outside the test's folder before
they run the real blkid and dd. Nothing touches the host's block devices.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "xen_guests" / "files" / "xen-guests-disk"
MIB = 1024 * 1024
USAGE = (
    "usage: xen-guests-disk clone|import IMAGE FILE SIZE_MIB\n"
    "       xen-guests-disk clone-lv|import-lv IMAGE VG LV SIZE_MIB [MARKER]\n"
    "       xen-guests-disk blank FILE SIZE_MIB\n"
    "       xen-guests-disk seed DIR ISO\n"
)
# What sits at the start of a golden image and deep inside it.
HEAD = b"\xebc\x90" + bytes(range(256)) * 2
TAIL = b"ext4 superblock, or something like it"


def run(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The script as the role runs it, with its locks kept in tmp_path."""
    env = {**os.environ, "XEN_GUESTS_LOCK_DIR": str(tmp_path / "locks")}
    return subprocess.run(
        ["sh", str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def golden(path: Path, size_mib: int = 3) -> bytes:
    """A sparse image with data at its start and at 2 MiB; returns its bytes."""
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
        f.write(HEAD)
        f.seek(2 * MIB)
        f.write(TAIL)
    return path.read_bytes()


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def test_clone_copies_the_image_and_grows_it_to_the_disk_size(tmp_path: Path) -> None:
    image = golden(tmp_path / "disk.img")
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "clone", tmp_path / "disk.img", disk, "16")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert disk.stat().st_size == 16 * MIB
    data = disk.read_bytes()
    assert data[: len(image)] == image
    assert data[2 * MIB : 2 * MIB + len(TAIL)] == TAIL
    assert data[len(image) :].count(0) == 13 * MIB
    # Sparse: the holes of the image and the grown end take no space.
    assert allocated(disk) < MIB
    assert not (tmp_path / "web1-root.img.partial").exists()


def test_clone_replaces_the_partial_copy_of_an_interrupted_run(tmp_path: Path) -> None:
    image = golden(tmp_path / "disk.img")
    disk = tmp_path / "web1-root.img"
    partial = tmp_path / "web1-root.img.partial"
    # Half a copy of something else, longer than the image.
    partial.write_bytes(b"\xff" * (5 * MIB))
    proc = run(tmp_path, "clone", tmp_path / "disk.img", disk, "8")
    assert proc.returncode == 0, proc.stderr
    assert not partial.exists()
    data = disk.read_bytes()
    assert len(data) == 8 * MIB
    assert data[: len(image)] == image
    assert b"\xff" not in data[len(HEAD) : 2 * MIB] + data[2 * MIB + len(TAIL) :]


def test_clone_keeps_a_disk_that_exists(tmp_path: Path) -> None:
    golden(tmp_path / "disk.img")
    disk = tmp_path / "web1-root.img"
    disk.write_bytes(b"the guest's own data")
    proc = run(tmp_path, "clone", tmp_path / "disk.img", disk, "8")
    assert proc.returncode == 0, proc.stderr
    assert disk.read_bytes() == b"the guest's own data"


def test_clone_of_an_image_larger_than_the_disk_fails_and_writes_nothing(tmp_path: Path) -> None:
    # An 8 MiB image onto a 4 MiB disk was cut short to 4 MiB, with exit code 0.
    golden(tmp_path / "disk.img", size_mib=8)
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "clone", tmp_path / "disk.img", disk, "4")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"xen-guests-disk: {tmp_path}/disk.img is a disk of 8 MiB, larger than the 4 MiB of"
        f" {disk}; nothing was written. Make the disk at least 8 MiB.\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.img", "locks"]


def test_clone_of_an_image_as_large_as_the_disk_copies_it_whole(tmp_path: Path) -> None:
    image = golden(tmp_path / "disk.img", size_mib=4)
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "clone", tmp_path / "disk.img", disk, "4")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert disk.read_bytes() == image


def test_clone_of_a_missing_image_fails_and_leaves_no_disk(tmp_path: Path) -> None:
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "clone", tmp_path / "missing.img", disk, "8")
    assert proc.returncode != 0
    assert "missing.img" in proc.stderr
    assert not disk.exists()


def test_blank_makes_a_sparse_empty_disk_of_the_size(tmp_path: Path) -> None:
    disk = tmp_path / "web1-data.img"
    proc = run(tmp_path, "blank", disk, "64")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert disk.stat().st_size == 64 * MIB
    assert allocated(disk) < 64 * 1024
    with disk.open("rb") as f:
        assert f.read(4096) == bytes(4096)
    assert not (tmp_path / "web1-data.img.partial").exists()


def test_blank_starts_over_a_partial_disk(tmp_path: Path) -> None:
    disk = tmp_path / "web1-data.img"
    (tmp_path / "web1-data.img.partial").write_bytes(b"\xff" * MIB)
    proc = run(tmp_path, "blank", disk, "4")
    assert proc.returncode == 0, proc.stderr
    assert disk.read_bytes() == bytes(4 * MIB)
    assert not (tmp_path / "web1-data.img.partial").exists()


def test_blank_keeps_a_disk_that_exists(tmp_path: Path) -> None:
    disk = tmp_path / "web1-data.img"
    disk.write_bytes(b"data")
    assert run(tmp_path, "blank", disk, "4").returncode == 0
    assert disk.read_bytes() == b"data"


def test_a_second_run_on_the_same_disk_waits_for_the_first(tmp_path: Path) -> None:
    disk = tmp_path / "web1-data.img"
    locks = tmp_path / "locks"
    locks.mkdir()
    lock = locks / (str(disk).replace("/", "_") + ".lock")
    env = {**os.environ, "XEN_GUESTS_LOCK_DIR": str(locks)}
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen(["sh", str(SCRIPT), "blank", str(disk), "4"], env=env)
        try:
            time.sleep(0.5)
            assert proc.poll() is None
            assert not disk.exists()
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
        assert proc.wait(timeout=30) == 0
    assert disk.stat().st_size == 4 * MIB


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["clone"],
        ["clone", "image", "disk"],
        ["clone", "image", "disk", "8", "extra"],
        ["clone-lv", "image", "vg0", "web1-root"],
        ["import", "image", "disk"],
        ["import-lv", "image", "vg0", "web1-root", "8", "marker", "extra"],
        ["clone-lv", "image", "vg0", "web1-root", "8", "marker", "extra"],
        ["blank", "disk"],
        ["blank", "disk", "8", "extra"],
        ["seed", "dir"],
        ["seed", "dir", "seed.iso", "extra"],
        ["grow", "disk", "8"],
    ],
    ids=lambda args: " ".join(args) or "none",
)
def test_wrong_arguments_print_the_usage_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = run(tmp_path, *(work / a if a in ("disk", "seed.iso") else a for a in args))
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", USAGE)
    assert list(work.iterdir()) == []


@pytest.mark.skipif(shutil.which("genisoimage") is None, reason="genisoimage is not installed")
def test_seed_is_an_iso_labelled_cidata_with_the_three_files(tmp_path: Path) -> None:
    seed = tmp_path / "seeds" / "web1"
    seed.mkdir(parents=True)
    files = {
        "user-data": "#cloud-config\nhostname: web1\n",
        "meta-data": "instance-id: iid-0123456789abcdef\nlocal-hostname: web1\n",
        "network-config": "version: 2\nethernets: {}\n",
    }
    for name, content in files.items():
        (seed / name).write_text(content)
    iso = seed / "seed.iso"
    (seed / "seed.iso.partial").write_bytes(b"\xff" * 4096)
    proc = run(tmp_path, "seed", seed, iso)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert not (seed / "seed.iso.partial").exists()
    data = iso.read_bytes()
    # The primary volume descriptor, sector 16: type 1, "CD001", the volume id at 40.
    pvd = data[16 * 2048 : 17 * 2048]
    assert pvd[:6] == b"\x01CD001"
    assert pvd[40:72] == b"cidata".ljust(32)
    for content in files.values():
        assert content.encode() in data
    if shutil.which("isoinfo"):
        listing = subprocess.run(
            ["isoinfo", "-i", str(iso), "-f", "-R"], capture_output=True, text=True, check=True
        )
        assert sorted(listing.stdout.split()) == ["/meta-data", "/network-config", "/user-data"]


@pytest.mark.skipif(shutil.which("genisoimage") is None, reason="genisoimage is not installed")
def test_seed_without_all_its_files_fails_and_leaves_no_iso(tmp_path: Path) -> None:
    (tmp_path / "user-data").write_text("#cloud-config\n")
    (tmp_path / "meta-data").write_text("instance-id: iid-1\n")
    proc = run(tmp_path, "seed", tmp_path, tmp_path / "seed.iso")
    assert proc.returncode != 0
    assert "network-config" in proc.stderr
    assert not (tmp_path / "seed.iso").exists()


# LVM volumes, with the stubs.

TAG = "xen_lab_complete"
# A volume lvcreate just made: its first 4 KiB zeroed, then what the extents held before.
STALE = b"\xaa"

STUBS = {
    # lvs [--noheadings] [--nosuffix] [--units b] [--separator S] -o FIELDS VG/LV
    "lvs": r"""
echo "lvs $*" >>"$STUB_DIR/calls"
sep=" " fields=""
while [ $# -gt 1 ]; do
    case $1 in
    --separator) sep=$2; shift ;;
    -o) fields=$2; shift ;;
    esac
    shift
done
lv=$LVM_DIR/$1
if [ ! -f "$lv" ]; then
    echo "  Failed to find logical volume \"$1\"" >&2
    exit 5
fi
attr=-wi-a-----
[ ! -e "$lv.inactive" ] || attr=-wi-------
[ ! -e "$lv.open" ] || attr=-wi-ao----
line=""
for field in $(echo "$fields" | tr , ' '); do
    case $field in
    lv_path) value=$lv ;;
    lv_attr) value=$attr ;;
    lv_size) value=$(stat -c %s "$lv") ;;
    lv_tags) value=$(cat "$lv.tags" 2>/dev/null || true) ;;
    esac
    line=${line:+$line$sep}$value
done
echo "  $line"
""",
    # lvcreate --yes --wipesignatures y --zero y --name LV --size SIZEm VG
    "lvcreate": r"""
echo "lvcreate $*" >>"$STUB_DIR/calls"
while [ $# -gt 1 ]; do
    case $1 in
    --name) name=$2; shift ;;
    --size) size=${2%m}; shift ;;
    esac
    shift
done
if [ ! -d "$LVM_DIR/$1" ]; then
    echo "  Volume group \"$1\" not found" >&2
    exit 5
fi
lv=$LVM_DIR/$1/$name
if [ -e "$lv" ]; then
    echo "  Logical Volume \"$name\" already exists in volume group \"$1\"" >&2
    exit 5
fi
head -c $((size * 1048576)) /dev/zero | tr '\0' '\252' >"$lv"
/bin/dd if=/dev/zero of="$lv" bs=4096 count=1 conv=notrunc status=none
echo "  Logical volume \"$name\" created."
""",
    # lvchange --addtag TAG VG/LV
    "lvchange": r"""
echo "lvchange $*" >>"$STUB_DIR/calls"
lv=$LVM_DIR/$3
[ -f "$lv" ] || exit 5
tags=$(cat "$lv.tags" 2>/dev/null || true)
echo "${tags:+$tags,}$2" >"$lv.tags"
echo "  Logical volume $3 changed."
""",
    "blkid": r"""
echo "blkid $*" >>"$STUB_DIR/calls"
for arg; do path=$arg; done
case $path in "$STUB_ROOT"/*) ;; *) echo "stub: blkid outside the test" >&2; exit 99 ;; esac
if [ -n "${BLKID_EXIT:-}" ]; then
    echo "blkid: error: $path: Input/output error" >&2
    exit "$BLKID_EXIT"
fi
exec /usr/sbin/blkid "$@"
""",
    # CUT_DD: a pattern; the dd whose arguments contain it writes one block and
    # dies, as a run killed midway.
    "dd": r"""
echo "dd $*" >>"$STUB_DIR/calls"
for arg; do case $arg in of=*) out=${arg#of=} ;; esac; done
case $out in "$STUB_ROOT"/*) ;; *) echo "stub: dd outside the test" >&2; exit 99 ;; esac
case "$*" in
*"${CUT_DD:-//}"*)
    case "$*" in *count=*) exit 137 ;; esac
    /bin/dd "$@" count=1
    exit 137
    ;;
esac
exec /bin/dd "$@"
""",
}


STUBS["qemu-img"] = r"""
echo "qemu-img $*" >>"$STUB_DIR/calls"
for path in $(printf '%s\n' "$@" | tr , '\n' | sed -n 's/^.*filename=//p; /^\//p'); do
    case $path in "$STUB_ROOT"/*) ;; *) echo "stub: qemu-img outside the test" >&2; exit 99 ;; esac
done
case "$*" in *"${CUT_QEMU:-//}"*) exit 137 ;; esac
exec /usr/bin/qemu-img "$@"
"""


class Lvm:
    """Volume groups as folders and volumes as files, with the stubs on PATH."""

    def __init__(self, root: Path, *vgs: str) -> None:
        self.root = root
        self.dir = root / "lvm"
        self.stubs = root / "stubs"
        self.stubs.mkdir()
        for vg in vgs:
            (self.dir / vg).mkdir(parents=True)
        for name, body in STUBS.items():
            stub = self.stubs / name
            stub.write_text("#!/bin/sh\n" + body)
            stub.chmod(0o755)
        (self.stubs / "calls").write_text("")

    def run(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
        full = {
            **os.environ,
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "XEN_GUESTS_LOCK_DIR": str(self.root / "locks"),
            "STUB_DIR": str(self.stubs),
            "STUB_ROOT": str(self.root),
            "LVM_DIR": str(self.dir),
            **env,
        }
        (self.stubs / "calls").write_text("")
        return subprocess.run(
            ["sh", str(SCRIPT), *map(str, args)],
            capture_output=True,
            text=True,
            env=full,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[str]:
        return (self.stubs / "calls").read_text().splitlines()

    def commands(self) -> list[str]:
        """The programs called, in order."""
        return [call.split()[0] for call in self.calls()]

    def volume(self, vg: str, lv: str) -> Path:
        return self.dir / vg / lv

    def make(self, vg: str, lv: str, content: bytes, size_mib: int, tags: str = "") -> Path:
        """A volume that exists before the run, holding CONTENT."""
        path = self.volume(vg, lv)
        with path.open("wb") as f:
            f.truncate(size_mib * MIB)
            f.write(content)
        if tags:
            self.tags_file(vg, lv).write_text(tags + "\n")
        return path

    def tags_file(self, vg: str, lv: str) -> Path:
        return self.dir / vg / f"{lv}.tags"

    def tags(self, vg: str, lv: str) -> list[str]:
        path = self.tags_file(vg, lv)
        return path.read_text().strip().split(",") if path.exists() else []


def bootable(path: Path, size_mib: int = 8) -> bytes:
    """A raw disk image as a golden one starts: a DOS partition table from sfdisk, the
    partition's data at 2 MiB and a mark in its last bytes; returns its bytes."""
    golden(path, size_mib)
    subprocess.run(
        ["sfdisk", "-q", str(path)], input="start=2048, type=83, bootable\n", text=True, check=True
    )
    with path.open("r+b") as f:
        f.seek(size_mib * MIB - 8)
        f.write(b"LASTMIB!")
    return path.read_bytes()


@pytest.fixture
def lvm(tmp_path: Path) -> Lvm:
    return Lvm(tmp_path, "vg0")


def refusal(lvm: Lvm, image: Path, reason: str, how: str) -> str:
    path = lvm.volume("vg0", "web1-root")
    return (
        f"xen-guests-disk: {path} exists without the tag {TAG} that marks a complete copy,"
        f" and {reason}; {image} was not copied onto it.\n"
        f"  To boot the guest from the volume as it is: lvchange --addtag {TAG} vg0/web1-root\n"
        f"  To have the image copied onto it instead, losing what it holds: {how}\n"
    )


def test_clone_lv_creates_the_volume_copies_the_image_and_tags_it(tmp_path: Path, lvm: Lvm) -> None:
    image = bootable(tmp_path / "disk.img")
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    assert (proc.returncode, proc.stderr) == (0, "")
    volume = lvm.volume("vg0", "web1-root")
    data = volume.read_bytes()
    assert len(data) == 16 * MIB
    assert data[: len(image)] == image
    assert lvm.tags("vg0", "web1-root") == [TAG]
    # A volume made in this run is written without probing it.
    assert lvm.calls() == [
        "lvs --noheadings --nosuffix --units b --separator | -o lv_path,lv_attr,lv_size,lv_tags"
        " vg0/web1-root",
        "lvcreate --yes --wipesignatures y --zero y --name web1-root --size 16m vg0",
        "lvs --noheadings -o lv_path vg0/web1-root",
        f"dd if=/dev/zero of={volume} bs=1M count=1 conv=notrunc,fsync status=none",
        f"dd if={tmp_path}/disk.img of={volume} bs=1M skip=1 seek=1 conv=notrunc,fsync status=none",
        f"dd if={tmp_path}/disk.img of={volume} bs=1M count=1 conv=notrunc,fsync status=none",
        f"lvchange --addtag {TAG} vg0/web1-root",
    ]


def test_clone_lv_keeps_a_volume_tagged_complete(tmp_path: Path, lvm: Lvm) -> None:
    bootable(tmp_path / "disk.img")
    volume = lvm.make("vg0", "web1-root", b"the guest's own data", 16, tags=f"backup,{TAG}")
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert volume.read_bytes().startswith(b"the guest's own data")
    assert lvm.commands() == ["lvs"]


def test_clone_lv_tags_a_volume_whose_copy_version_1_0_0_recorded_in_a_file(
    tmp_path: Path, lvm: Lvm
) -> None:
    bootable(tmp_path / "disk.img")
    # The guest runs from it: open, with its partition table.
    volume = lvm.make("vg0", "web1-root", bootable(tmp_path / "old.img"), 16)
    (tmp_path / "lvm" / "vg0" / "web1-root.open").touch()
    marker = tmp_path / "images" / "web1-root.copied"
    marker.parent.mkdir()
    marker.write_text("2026-12-01T10:00:00Z\n")
    before = volume.read_bytes()
    args = ("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16", marker)
    proc = lvm.run(*args)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == (
        f"vg0/web1-root: the complete copy recorded in {marker} is now recorded by the tag {TAG}\n"
    )
    assert volume.read_bytes() == before
    assert lvm.tags("vg0", "web1-root") == [TAG]
    assert not marker.exists()
    assert lvm.commands() == ["lvs", "lvchange"]
    # From then on the tag alone says so.
    assert lvm.run(*args).returncode == 0
    assert lvm.commands() == ["lvs"]


def test_clone_lv_without_a_volume_drops_a_stale_marker_and_copies(
    tmp_path: Path, lvm: Lvm
) -> None:
    bootable(tmp_path / "disk.img")
    marker = tmp_path / "web1-root.copied"
    marker.write_text("2026-12-01T10:00:00Z\n")
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16", marker)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert not marker.exists()
    assert lvm.tags("vg0", "web1-root") == [TAG]


def test_clone_lv_refuses_a_volume_with_a_partition_table_and_no_tag(
    tmp_path: Path, lvm: Lvm
) -> None:
    # A dom0 reinstalled with its volume group kept, or xen_guests_disk_dir changed
    # under version 1.0.0's marker files: the guest's disk is there, untagged.
    bootable(tmp_path / "disk.img")
    volume = lvm.make("vg0", "web1-root", bootable(tmp_path / "old.img", 12), 16)
    before = volume.read_bytes()
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == refusal(
        lvm,
        tmp_path / "disk.img",
        "holds data (blkid -p finds PTTYPE=dos)",
        "lvremove vg0/web1-root, then run again.",
    )
    assert volume.read_bytes() == before
    assert lvm.tags("vg0", "web1-root") == []
    assert lvm.commands() == ["lvs", "blkid"]


def test_clone_lv_refuses_a_volume_with_a_filesystem_and_no_tag(tmp_path: Path, lvm: Lvm) -> None:
    bootable(tmp_path / "disk.img")
    volume = lvm.make("vg0", "web1-root", b"", 16)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(volume)], check=True, capture_output=True)
    before = volume.read_bytes()
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    assert proc.returncode == 1
    assert "and holds data (blkid -p finds TYPE=ext4); " in proc.stderr
    assert volume.read_bytes() == before
    assert "dd" not in lvm.commands()


def test_clone_lv_refuses_an_open_volume_and_does_not_probe_it(tmp_path: Path, lvm: Lvm) -> None:
    bootable(tmp_path / "disk.img")
    volume = lvm.make("vg0", "web1-root", b"", 16)
    (tmp_path / "lvm" / "vg0" / "web1-root.open").touch()
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == refusal(
        lvm,
        tmp_path / "disk.img",
        "is open (a running guest, a mount or a device built on it holds it)",
        "stop what holds it, lvremove vg0/web1-root, then run again.",
    )
    assert volume.read_bytes() == bytes(16 * MIB)
    assert lvm.commands() == ["lvs"]


def test_clone_lv_refuses_a_volume_with_data_blkid_does_not_know(tmp_path: Path, lvm: Lvm) -> None:
    bootable(tmp_path / "disk.img")
    # What lvcreate leaves beyond its first 4 KiB, or a raw database: no signature.
    volume = lvm.make("vg0", "web1-root", bytes(4096) + STALE * MIB, 16)
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    assert proc.returncode == 1
    assert proc.stderr == refusal(
        lvm,
        tmp_path / "disk.img",
        "holds data (its first MiB is not blank)",
        "lvremove vg0/web1-root, then run again.",
    )
    assert volume.read_bytes()[4096 : 4096 + MIB] == STALE * MIB
    assert lvm.commands() == ["lvs", "blkid"]


def test_clone_lv_refuses_a_volume_blkid_cannot_read(tmp_path: Path, lvm: Lvm) -> None:
    bootable(tmp_path / "disk.img")
    lvm.make("vg0", "web1-root", b"", 16)
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16", BLKID_EXIT="4")
    assert proc.returncode == 1
    volume = lvm.volume("vg0", "web1-root")
    assert (
        f"and blkid -p cannot tell what it holds (exit 4: blkid: error: {volume}:"
        " Input/output error); " in proc.stderr
    )
    assert "dd" not in lvm.commands()


def test_clone_lv_refuses_an_inactive_volume(tmp_path: Path, lvm: Lvm) -> None:
    bootable(tmp_path / "disk.img")
    lvm.make("vg0", "web1-root", b"", 16)
    (tmp_path / "lvm" / "vg0" / "web1-root.inactive").touch()
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"xen-guests-disk: vg0/web1-root exists without the tag {TAG} but is not active,"
        f" so what it holds cannot be checked; {tmp_path}/disk.img was not copied onto it."
        " Activate it (lvchange -ay vg0/web1-root) and run again.\n"
    )
    assert lvm.commands() == ["lvs"]


def test_clone_lv_refuses_a_blank_volume_smaller_than_the_image(tmp_path: Path, lvm: Lvm) -> None:
    bootable(tmp_path / "disk.img", size_mib=8)
    lvm.make("vg0", "web1-root", b"", 4)
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"xen-guests-disk: vg0/web1-root exists without the tag {TAG} and holds 4 MiB, less"
        f" than the 8 MiB of {tmp_path}/disk.img, which was not copied onto it. Extend it"
        " (lvextend) or remove it (lvremove vg0/web1-root), then run again.\n"
    )
    assert "dd" not in lvm.commands()


def test_clone_lv_of_an_image_larger_than_the_disk_creates_nothing(
    tmp_path: Path, lvm: Lvm
) -> None:
    bootable(tmp_path / "disk.img", size_mib=8)
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "4")
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f"xen-guests-disk: {tmp_path}/disk.img is a disk of 8 MiB, larger than the 4 MiB of"
        " vg0/web1-root;"
    )
    assert lvm.calls() == []
    assert not lvm.volume("vg0", "web1-root").exists()


def test_clone_lv_into_a_missing_volume_group_fails_with_lvcreate(tmp_path: Path, lvm: Lvm) -> None:
    bootable(tmp_path / "disk.img")
    proc = lvm.run("clone-lv", tmp_path / "disk.img", "vg9", "web1-root", "16")
    assert proc.returncode == 5
    assert proc.stderr == '  Volume group "vg9" not found\n'
    assert lvm.commands() == ["lvs", "lvcreate"]


@pytest.mark.parametrize(
    "cut",
    ["bs=1M skip=1 seek=1", "bs=1M count=1 conv"],
    ids=["during-the-copy", "before-the-first-mib"],
)
def test_clone_lv_cut_short_leaves_a_blank_start_and_the_next_run_copies_again(
    tmp_path: Path, lvm: Lvm, cut: str
) -> None:
    image = bootable(tmp_path / "disk.img")
    args = ("clone-lv", tmp_path / "disk.img", "vg0", "web1-root", "16")
    volume = lvm.volume("vg0", "web1-root")
    killed = lvm.run(*args, CUT_DD=f"if={tmp_path}/disk.img of={volume} {cut}")
    assert killed.returncode == 137
    assert lvm.tags("vg0", "web1-root") == []
    assert volume.read_bytes()[:MIB] == bytes(MIB)
    blkid = subprocess.run(["blkid", "-p", str(volume)], capture_output=True, check=False)
    assert blkid.returncode == 2
    # The next run finds the volume, checks it is the leftover of a copy, and copies.
    proc = lvm.run(*args)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert volume.read_bytes()[: len(image)] == image
    assert lvm.tags("vg0", "web1-root") == [TAG]
    assert lvm.commands() == ["lvs", "blkid", "dd", "dd", "lvchange"]


# Images users bring (os.image): raw or qcow2, as qemu-img reads them.

needs_qemu_img = pytest.mark.skipif(
    shutil.which("qemu-img") is None, reason="qemu-img is not installed"
)


def qcow2(raw: Path, path: Path) -> Path:
    """RAW converted to qcow2 at PATH: a file much smaller than its virtual size."""
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, path], check=True)
    return path


def image_format(path: Path) -> str:
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True, check=True
    )
    return str(json.loads(info.stdout)["format"])


@needs_qemu_img
def test_import_of_a_raw_image_copies_it_sparse_and_grows_it(tmp_path: Path) -> None:
    image = bootable(tmp_path / "user.img")
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "import", tmp_path / "user.img", disk, "16")
    assert (proc.returncode, proc.stderr) == (0, "")
    data = disk.read_bytes()
    assert (len(data), data[: len(image)]) == (16 * MIB, image)
    assert allocated(disk) < MIB
    assert not (tmp_path / "web1-root.img.partial").exists()


@pytest.mark.parametrize("name", ["user.qcow2", "user.img", "user.raw"])
@needs_qemu_img
def test_import_of_a_qcow2_image_converts_it_whatever_its_name(tmp_path: Path, name: str) -> None:
    image = bootable(tmp_path / "source.raw")
    qcow2(tmp_path / "source.raw", tmp_path / name)
    assert (tmp_path / name).stat().st_size < len(image) // 2
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "import", tmp_path / name, disk, "16")
    assert (proc.returncode, proc.stderr) == (0, "")
    data = disk.read_bytes()
    assert (len(data), data[: len(image)]) == (16 * MIB, image)
    assert data[len(image) :] == bytes(8 * MIB)
    assert image_format(disk) == "raw"
    # Converted sparse: the image's holes take no space.
    assert allocated(disk) < MIB
    assert not (tmp_path / "web1-root.img.partial").exists()


@needs_qemu_img
def test_import_of_a_raw_image_named_qcow2_copies_it_raw(tmp_path: Path) -> None:
    image = bootable(tmp_path / "user.qcow2")
    disk = tmp_path / "web1-root.img"
    assert run(tmp_path, "import", tmp_path / "user.qcow2", disk, "8").returncode == 0
    assert disk.read_bytes() == image


@needs_qemu_img
def test_import_of_a_qcow2_image_larger_than_the_disk_writes_nothing(tmp_path: Path) -> None:
    # Its file is small; what counts is the virtual size the guest would see.
    bootable(tmp_path / "source.raw", size_mib=12)
    qcow2(tmp_path / "source.raw", tmp_path / "user.qcow2")
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "import", tmp_path / "user.qcow2", disk, "8")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"xen-guests-disk: {tmp_path}/user.qcow2 is a disk of 12 MiB, larger than the 8 MiB of"
        f" {disk}; nothing was written. Make the disk at least 12 MiB.\n"
    )
    assert not disk.exists()
    assert not (tmp_path / "web1-root.img.partial").exists()


@needs_qemu_img
def test_import_refuses_a_qcow2_image_with_a_backing_file(tmp_path: Path) -> None:
    bootable(tmp_path / "secret.raw")
    overlay = tmp_path / "user.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "secret.raw", "-F", "raw", overlay],
        check=True,
    )
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "import", overlay, disk, "16")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"xen-guests-disk: {overlay} is a qcow2 image that reads another file (a backing file or"
        " an external data file); nothing was written. Give a standalone image (qemu-img"
        " convert -O qcow2 makes one).\n"
    )
    assert not disk.exists()


@needs_qemu_img
def test_import_refuses_a_qcow2_image_with_an_external_data_file(tmp_path: Path) -> None:
    image = tmp_path / "user.qcow2"
    # The data file's name is relative to the working folder: the test's own.
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=data.raw", image, "4M"],
        check=True,
        cwd=tmp_path,
    )
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "import", image, disk, "16")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"xen-guests-disk: {image} is a qcow2 image that reads another")
    assert not disk.exists()


@needs_qemu_img
def test_import_refuses_an_image_neither_raw_nor_qcow2(tmp_path: Path) -> None:
    image = tmp_path / "user.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", image, "4M"], check=True)
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "import", image, disk, "16")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"xen-guests-disk: {image} is not a raw or qcow2 image (qemu-img info: format vmdk);"
        " nothing was written. Convert it (qemu-img convert -O qcow2).\n"
    )
    assert not disk.exists()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        # The nested node of a vmdk has a size and a format; the image itself none.
        (
            '{\n    "children": [\n        {\n            "virtual-size": 4194304,\n'
            '            "format": "raw"\n        }\n    ]\n}\n',
            "is not a raw or qcow2 image (qemu-img info: format unknown); nothing was written.",
        ),
        (
            '{\n    "format": "qcow2",\n    "children": [\n        {\n'
            '            "virtual-size": 4194304\n        }\n    ]\n}\n',
            "qemu-img info gives no virtual size of",
        ),
    ],
    ids=["no-format", "no-virtual-size"],
)
def test_import_refuses_an_image_whose_qemu_img_answer_it_cannot_read(
    tmp_path: Path, answer: str, message: str
) -> None:
    image = tmp_path / "user.img"
    image.write_bytes(bytes(MIB))
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "answer.json").write_text(answer)
    (stubs / "qemu-img").write_text(f"#!/bin/sh\ncat {stubs}/answer.json\n")
    (stubs / "qemu-img").chmod(0o755)
    disk = tmp_path / "web1-root.img"
    proc = subprocess.run(
        ["sh", str(SCRIPT), "import", str(image), str(disk), "16"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PATH": f"{stubs}:{os.environ['PATH']}",
            "XEN_GUESTS_LOCK_DIR": str(tmp_path / "locks"),
        },
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("xen-guests-disk: ")
    assert message in proc.stderr
    assert not disk.exists()
    assert not (tmp_path / "web1-root.img.partial").exists()


@needs_qemu_img
def test_import_of_a_missing_image_fails_and_leaves_no_disk(tmp_path: Path) -> None:
    disk = tmp_path / "web1-root.img"
    proc = run(tmp_path, "import", tmp_path / "missing.qcow2", disk, "8")
    assert proc.returncode != 0
    assert "missing.qcow2" in proc.stderr
    assert not disk.exists()


@needs_qemu_img
def test_import_lv_converts_a_qcow2_image_onto_the_volume_first_mib_last(
    tmp_path: Path, lvm: Lvm
) -> None:
    image = bootable(tmp_path / "source.raw")
    qcow2(tmp_path / "source.raw", tmp_path / "user.img")
    proc = lvm.run("import-lv", tmp_path / "user.img", "vg0", "web1-root", "16")
    assert (proc.returncode, proc.stderr) == (0, "")
    volume = lvm.volume("vg0", "web1-root")
    assert volume.read_bytes()[: len(image)] == image
    assert lvm.tags("vg0", "web1-root") == [TAG]
    source = f"file.driver=qcow2,file.file.driver=file,file.file.filename={tmp_path}/user.img"
    target = f"file.driver=file,file.filename={volume}"
    assert lvm.calls()[0] == f"qemu-img info --output=json {tmp_path}/user.img"
    assert lvm.commands()[1:5] == ["lvs", "lvcreate", "lvs", "dd"]
    assert lvm.calls()[5:] == [
        f"qemu-img convert -q -n --image-opts driver=raw,offset=1048576,{source}"
        f" --target-image-opts driver=raw,offset=1048576,{target}",
        f"qemu-img convert -q -n --image-opts driver=raw,size=1048576,{source}"
        f" --target-image-opts driver=raw,size=1048576,{target}",
        f"lvchange --addtag {TAG} vg0/web1-root",
    ]


@needs_qemu_img
def test_import_lv_cut_short_before_the_first_mib_is_converted_again(
    tmp_path: Path, lvm: Lvm
) -> None:
    image = bootable(tmp_path / "source.raw")
    qcow2(tmp_path / "source.raw", tmp_path / "user.qcow2")
    args = ("import-lv", tmp_path / "user.qcow2", "vg0", "web1-root", "16")
    killed = lvm.run(*args, CUT_QEMU="driver=raw,size=1048576")
    assert killed.returncode == 137
    volume = lvm.volume("vg0", "web1-root")
    data = volume.read_bytes()
    assert data[:MIB] == bytes(MIB)
    assert data[MIB : len(image)] == image[MIB:]
    assert lvm.tags("vg0", "web1-root") == []
    proc = lvm.run(*args)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert volume.read_bytes()[: len(image)] == image
    assert lvm.tags("vg0", "web1-root") == [TAG]


@needs_qemu_img
def test_import_lv_of_a_raw_image_copies_it_with_dd(tmp_path: Path, lvm: Lvm) -> None:
    image = bootable(tmp_path / "user.qcow2")
    proc = lvm.run("import-lv", tmp_path / "user.qcow2", "vg0", "web1-root", "16")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert lvm.volume("vg0", "web1-root").read_bytes()[: len(image)] == image
    assert lvm.commands() == [
        "qemu-img",
        "lvs",
        "lvcreate",
        "lvs",
        "dd",
        "dd",
        "dd",
        "lvchange",
    ]


@needs_qemu_img
def test_import_lv_of_an_image_larger_than_the_disk_creates_nothing(
    tmp_path: Path, lvm: Lvm
) -> None:
    bootable(tmp_path / "source.raw", size_mib=12)
    qcow2(tmp_path / "source.raw", tmp_path / "user.qcow2")
    proc = lvm.run("import-lv", tmp_path / "user.qcow2", "vg0", "web1-root", "8")
    assert proc.returncode == 1
    assert "is a disk of 12 MiB, larger than the 8 MiB of vg0/web1-root;" in proc.stderr
    assert lvm.commands() == ["qemu-img"]
    assert not lvm.volume("vg0", "web1-root").exists()
