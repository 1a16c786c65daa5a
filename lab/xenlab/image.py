"""Build and cache bootable Debian base images without loop devices.

The recipe: mmdebstrap a root filesystem, write it into the partition of a
raw disk with `mke2fs -d`, put GRUB's boot.img and core.img in front of it,
boot once to install a normal Debian GRUB on /dev/vda, shut down cleanly and
keep the result as a qcow2 that every lab VM overlays.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from xenlab import accel, config, vm

HOST_TOOLS = ("mmdebstrap", "qemu-img", "qemu-system-x86_64", "sfdisk", "mke2fs", "ssh")


def check_host_tools() -> None:
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if missing:
        raise vm.LabError(f"missing host tools: {', '.join(missing)}; run `make setup` first")
    if os.geteuid() != 0:
        raise vm.LabError("building a base image needs root (mmdebstrap --mode=root)")


def images_dir(cache: Path) -> Path:
    return cache / "images"


def image_dir(cache: Path, release: str, key: str) -> Path:
    return images_dir(cache) / f"{release}-{key}"


def mirror() -> str:
    return os.environ.get("XEN_LAB_MIRROR", config.DEFAULT_MIRROR)


def current(cache: Path, release: str) -> tuple[Path, str]:
    """The image directory the current recipe maps to, and its key."""
    key_file = vm.ssh_key(cache)
    pubkey = key_file.with_suffix(".pub").read_text()
    key = config.cache_key(config.recipe(release, mirror(), pubkey))
    return image_dir(cache, release, key), key


def ensure(cache: Path, release: str) -> Path:
    """Path of the cached base qcow2 for `release`, built when missing."""
    if release not in config.RELEASES:
        raise vm.LabError(
            f"unknown release {release!r}; choose one of {', '.join(config.RELEASES)}"
        )
    target, key = current(cache, release)
    base = target / "base.qcow2"
    if base.exists():
        return base
    check_host_tools()
    started = time.monotonic()
    build_dir = images_dir(cache) / f".build-{release}-{key}-{os.getpid()}"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    try:
        _build(cache, release, build_dir)
        meta = {"release": release, "key": key, "build_seconds": round(time.monotonic() - started)}
        (build_dir / "meta.json").write_text(json.dumps(meta, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        build_dir.rename(target)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    vm.log(f"base image {release} built in {meta['build_seconds']} s: {target / 'base.qcow2'}")
    prune(cache, release, keep=target)
    return target / "base.qcow2"


def prune(cache: Path, release: str, keep: Path) -> list[Path]:
    """Remove older images of a release, unless a VM may still overlay one."""
    if any(vm.vms_dir(cache).glob("*/disk.qcow2")):
        return []
    removed = []
    for old in images_dir(cache).glob(f"{release}-*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old)
            removed.append(old)
            vm.log(f"removed the outdated image {old}")
    return removed


def _run(cmd: list[str], **kwargs: object) -> None:
    vm.log("+ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def _build(cache: Path, release: str, build_dir: Path) -> None:
    key = vm.ssh_key(cache)
    rootfs = build_dir / "rootfs"
    _run([
        "mmdebstrap", "--variant=apt", "--mode=root", "--quiet",
        "--aptopt=Acquire::Retries \"3\"",
        # A freshly installed Debian has its package lists; so does the lab.
        "--skip=cleanup/apt/lists",
        "--include=" + ",".join(config.BASE_PACKAGES),
        release, str(rootfs), mirror(),
    ])  # fmt: skip
    fs_uuid = str(uuid.uuid4())
    _customize(rootfs, release, key.with_suffix(".pub").read_text(), fs_uuid)
    kernel = max((rootfs / "boot").glob("vmlinuz-*"))
    initrd = rootfs / "boot" / ("initrd.img-" + kernel.name.removeprefix("vmlinuz-"))
    shutil.copy2(kernel, build_dir / "vmlinuz")

    raw = build_dir / "disk.raw"
    size = config.DISK_SIZE_GIB * 1024 * 1024 * 1024
    with raw.open("wb") as fh:
        fh.truncate(size)
    _run(["sfdisk", "--quiet", str(raw)], input=b"label: dos\n2048,,L,*\n")
    _write_bootstrap_grub(rootfs, fs_uuid, kernel.name, initrd.name)
    # the partition starts at 1 MiB and fills the rest of the disk
    _run([
        "mke2fs", "-q", "-t", "ext4", "-U", fs_uuid, "-L", "root",
        "-E", "offset=1048576", "-d", str(rootfs), str(raw), f"{size // 1024 - 1024}k",
    ])  # fmt: skip
    _install_grub_blocks(rootfs, raw, build_dir)
    shutil.rmtree(rootfs)
    pre = build_dir / "pre.qcow2"
    _run(["qemu-img", "convert", "-q", "-O", "qcow2", str(raw), str(pre)])
    raw.unlink()
    _first_boot(cache, release, pre, key, build_dir)
    pre.rename(build_dir / "base.qcow2")


def _customize(rootfs: Path, release: str, pubkey: str, fs_uuid: str) -> None:
    hostname = f"lab-{release}"
    (rootfs / "etc/hostname").write_text(hostname + "\n")
    (rootfs / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    (rootfs / "etc/fstab").write_text(f"UUID={fs_uuid}\t/\text4\terrors=remount-ro\t0\t1\n")
    (rootfs / "etc/network/interfaces").write_text(config.INTERFACES)
    (rootfs / "etc/default/grub").write_text(config.GRUB_DEFAULTS)
    ssh_dir = rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    (ssh_dir / "authorized_keys").chmod(0o600)
    unit = rootfs / "etc/systemd/system/xen-lab-hostkeys.service"
    unit.write_text(config.HOSTKEYS_UNIT)
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "xen-lab-hostkeys.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/xen-lab-hostkeys.service")


def _write_bootstrap_grub(rootfs: Path, fs_uuid: str, kernel: str, initrd: str) -> None:
    grub_dir = rootfs / "boot/grub"
    modules = grub_dir / "i386-pc"
    shutil.copytree(rootfs / "usr/lib/grub/i386-pc", modules, dirs_exist_ok=True)
    (grub_dir / "grub.cfg").write_text(
        "serial --unit=0 --speed=115200\n"
        "terminal_input serial console\nterminal_output serial console\n"
        "set timeout=1\n"
        'menuentry "Debian (first boot)" {\n'
        f"  search --no-floppy --fs-uuid --set=root {fs_uuid}\n"
        f"  linux /boot/{kernel} root=UUID={fs_uuid} ro console=ttyS0,115200n8\n"
        f"  initrd /boot/{initrd}\n"
        "}\n"
    )


def _install_grub_blocks(rootfs: Path, raw: Path, build_dir: Path) -> None:
    # core.img comes from the image's own GRUB so that it matches its modules.
    _run([
        "chroot", str(rootfs), "grub-mkimage", "-O", "i386-pc", "-o", "/tmp/core.img",
        "-p", "(hd0,msdos1)/boot/grub",
        "biosdisk", "part_msdos", "ext2", "search", "search_fs_uuid",
    ])  # fmt: skip
    core = rootfs / "tmp/core.img"
    boot = rootfs / "usr/lib/grub/i386-pc/boot.img"
    if core.stat().st_size > 2047 * 512:
        raise vm.LabError("GRUB core.img does not fit before the first partition")
    with raw.open("r+b") as disk:
        disk.seek(0)
        disk.write(boot.read_bytes()[:440])
        disk.seek(512)
        disk.write(core.read_bytes())
    core.unlink()


def _first_boot(cache: Path, release: str, disk: Path, key: Path, build_dir: Path) -> None:
    kvm_ok = accel.kvm_boots(cache, build_dir / "vmlinuz")
    accel_name, cpu = config.choose_accel(dict(os.environ), kvm_ok)
    serial_log = build_dir / "first-boot.log"
    pidfile = build_dir / "qemu.pid"
    spec = config.VmSpec(
        name=f"xen-lab-build-{release}",
        disk=disk,
        serial_log=serial_log,
        pidfile=pidfile,
        ssh_port=vm.free_port(),
        accel=accel_name,
        cpu=cpu,
    )
    _run(config.qemu_command(spec), capture_output=True)
    pid = int(pidfile.read_text().strip())
    try:
        vm.wait_for_ssh(spec.ssh_port, key, pid, serial_log, timeout=900)
        subprocess.run(
            vm.ssh_command(spec.ssh_port, key, "sh", "-s"),
            input=config.FIRST_BOOT.encode(),
            check=True,
            capture_output=True,
            timeout=900,
        )
        deadline = time.monotonic() + 300
        while not vm.procs.gone(pid) and time.monotonic() < deadline:
            time.sleep(1)
        if not vm.procs.gone(pid):
            raise vm.LabError("the first-boot VM did not power off within 300 s")
    except (vm.LabError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        vm.report_failure(serial_log, f"first boot of the {release} image failed: {exc} {detail}")
        if vm.procs.is_our_qemu(pid, disk):
            vm.procs.terminate(pid)
        raise vm.LabError(f"first boot of the {release} image failed: {exc}") from exc
