"""The disk and seed script (roles/xen_guests/files/xen-guests-disk), run for real on
files in a temporary folder: copies, blank disks, the seed ISO, and what an
interrupted run leaves. The block-device branch (LVM volumes) needs a dom0.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "xen_guests" / "files" / "xen-guests-disk"
MIB = 1024 * 1024
USAGE = (
    "usage: xen-guests-disk clone IMAGE FILE|DEVICE SIZE_MIB|MARKER\n"
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
        f"xen-guests-disk: {tmp_path}/disk.img is 8 MiB, larger than the 4 MiB of {disk};"
        " nothing was written. Make the disk at least as large as the image.\n"
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
