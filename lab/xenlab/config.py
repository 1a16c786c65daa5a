"""Paths, settings and the image recipe of the lab harness.

Everything here is plain data or pure functions so that it can be unit-tested
without QEMU.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

RELEASES = ("trixie", "bookworm")
DEFAULT_RELEASE = "trixie"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Bumped by hand when the build steps change in a way the recipe data below
# does not show (the image builder's code, not its inputs).
RECIPE_VERSION = 4

# Packages of the "bare metal" Debian install the roles start from: what a
# minimal server install with SSH has, and nothing of Xen.
BASE_PACKAGES = (
    "linux-image-amd64",
    "systemd-sysv",
    # systemd Recommends it, so every installer-made Debian has it;
    # shutdown needs it on bookworm.
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "ifupdown",
    "isc-dhcp-client",
    "grub-pc",
    "sudo",
    "iproute2",
    "iputils-ping",
    "ca-certificates",
    "procps",
    "less",
    # Every installer-made Debian has it (priority required); installing it
    # later triggers update-initramfs, over 10 minutes under emulation.
    "e2fsprogs",
)

DISK_SIZE_GIB = 8
# Name the first NIC gets: QEMU slot 3 on the i440fx machine is "ens3".
NIC0_NAME = "ens3"
NIC1_NAME = "ens4"

# The serial console and a short menu so that a person can watch the boot.
GRUB_DEFAULTS = """\
GRUB_DEFAULT=0
GRUB_TIMEOUT=2
GRUB_DISTRIBUTOR=`( . /etc/os-release; echo ${NAME:-Debian} ) 2>/dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0,115200n8"
GRUB_CMDLINE_LINUX=""
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
"""

INTERFACES = f"""\
# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug {NIC0_NAME}
iface {NIC0_NAME} inet dhcp
"""

# Run over SSH on the image's first boot: a real Debian GRUB on the disk.
FIRST_BOOT = """\
set -eu
echo 'grub-pc grub-pc/install_devices multiselect /dev/vda' | debconf-set-selections
grub-install /dev/vda
update-grub
apt-get clean
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
# Host keys are gone now, so no new SSH session could ask for the power-off.
systemd-run --quiet --on-active=3 systemctl poweroff
"""

# Regenerates SSH host keys on each clone's first boot.
HOSTKEYS_UNIT = """\
[Unit]
Description=Generate SSH host keys missing on a fresh clone
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""


def cache_root(env: dict[str, str] | None = None) -> Path:
    """Where images, VM state and keys live: ${XEN_LAB_CACHE:-~/.cache/xen-lab}."""
    env = dict(os.environ) if env is None else env
    override = env.get("XEN_LAB_CACHE")
    if override:
        return Path(override).expanduser()
    return Path(env.get("HOME", "~")).expanduser() / ".cache" / "xen-lab"


def recipe(release: str, mirror: str, pubkey: str) -> dict[str, object]:
    """Everything that decides the bytes of a base image."""
    return {
        "version": RECIPE_VERSION,
        "release": release,
        "mirror": mirror,
        "packages": sorted(BASE_PACKAGES),
        "disk_gib": DISK_SIZE_GIB,
        "grub": GRUB_DEFAULTS,
        "interfaces": INTERFACES,
        "first_boot": FIRST_BOOT,
        "hostkeys_unit": HOSTKEYS_UNIT,
        "pubkey": pubkey.strip(),
    }


def cache_key(data: dict[str, object]) -> str:
    """A short stable digest of a recipe: same recipe, same key."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class VmSpec:
    """What one lab VM looks like to QEMU."""

    name: str
    disk: Path
    serial_log: Path
    pidfile: Path
    ssh_port: int
    accel: str
    cpu: str
    memory_mib: int = 3072
    cpus: int = 2
    second_nic: bool = False
    # A third NIC (ens7) on the management network beside ens3, both ports of
    # one QEMU hub in front of the user-mode network: two uplinks to the same
    # switch, for a bond. Their devices are nic0 and nic2 for QMP's set_link.
    bond_nic: bool = False
    # Blank qcow2 disks after the root disk: /dev/vdb, /dev/vdc in the VM.
    data_disks: tuple[Path, ...] = ()
    # QMP socket, for set_link and the like; none when unset.
    qmp: Path | None = None


DATA_DISK_SLOTS = ("0x6", "0x8")


def qemu_command(spec: VmSpec, qemu: str = "qemu-system-x86_64") -> list[str]:
    """The QEMU command line of a lab VM.

    Reboots stay in place (no -no-reboot) so Ansible's reboot module works,
    and the SSH forward listens on 127.0.0.1 only.
    """
    cmd = [
        qemu,
        "-name", spec.name,
        "-machine", "pc",
        "-accel", spec.accel,
        "-cpu", spec.cpu,
        "-smp", str(spec.cpus),
        "-m", str(spec.memory_mib),
        "-vga", "none",
        "-display", "none",
        "-monitor", "none",
        *(["-qmp", f"unix:{spec.qmp},server=on,wait=off"] if spec.qmp else []),
        "-serial", f"file:{spec.serial_log}",
        "-drive", f"file={spec.disk},format=qcow2,if=none,id=d0,cache=unsafe",
        "-device", "virtio-blk-pci,drive=d0,addr=0x5",
    ]  # fmt: skip
    # PCI slots in the order of the disks' names; 0x7 is the bond NIC's.
    if len(spec.data_disks) > len(DATA_DISK_SLOTS):
        raise ValueError(f"at most {len(DATA_DISK_SLOTS)} data disks")
    slots = DATA_DISK_SLOTS[: len(spec.data_disks)]
    for number, (data_disk, slot) in enumerate(zip(spec.data_disks, slots, strict=True), 1):
        cmd += [
            "-drive", f"file={data_disk},format=qcow2,if=none,id=d{number},cache=unsafe",
            "-device", f"virtio-blk-pci,drive=d{number},addr={slot}",
        ]  # fmt: skip
    user = f"user,id=n0,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22"
    if spec.bond_nic:
        cmd += [
            "-netdev", user,
            "-netdev", "hubport,id=h0,hubid=0,netdev=n0",
            "-netdev", "hubport,id=h1,hubid=0",
            "-netdev", "hubport,id=h2,hubid=0",
            "-device", "virtio-net-pci,netdev=h1,addr=0x3,id=nic0",
            "-device", "virtio-net-pci,netdev=h2,addr=0x7,id=nic2",
        ]  # fmt: skip
    else:
        cmd += ["-netdev", user, "-device", "virtio-net-pci,netdev=n0,addr=0x3,id=nic0"]
    if spec.second_nic:
        cmd += [
            "-netdev", "user,id=n1,restrict=on,net=10.0.3.0/24",
            "-device", "virtio-net-pci,netdev=n1,addr=0x4",
        ]  # fmt: skip
    cmd += ["-pidfile", str(spec.pidfile), "-daemonize"]
    return cmd


# TCG CPU models. Xen runs on the plain one, and Xen 4.17 (bookworm) gives
# PVH and HVM guests shadow paging on it. Xen 4.20 (trixie) has no shadow
# paging there; with nested paging (+npt) it uses HAP, so PVH guests run.
TCG_CPU = "qemu64,+svm"
TCG_CPU_HAP = "qemu64,+svm,+npt"


def choose_accel(env: dict[str, str], kvm_boots: bool | None, hap: bool = False) -> tuple[str, str]:
    """Pick (accelerator, cpu model).

    XEN_LAB_ACCEL and XEN_LAB_CPU win. Otherwise KVM only when a 64-bit
    kernel was seen to boot under it (kvm_boots True), else TCG with the CPU
    model that lets Xen run HVM guests, with nested paging when ``hap``.
    """
    accel = env.get("XEN_LAB_ACCEL") or ("kvm" if kvm_boots else "tcg")
    if accel not in ("kvm", "tcg"):
        raise ValueError(f"XEN_LAB_ACCEL={accel!r} is not one of: kvm, tcg")
    tcg_cpu = TCG_CPU_HAP if hap else TCG_CPU
    cpu = env.get("XEN_LAB_CPU") or ("host" if accel == "kvm" else tcg_cpu)
    return accel, cpu


def inventory(hosts: dict[str, dict[str, object]], group: str) -> dict[str, object]:
    """An Ansible YAML inventory (as data) for lab VMs in one group."""
    return {"all": {"children": {group: {"hosts": hosts}}}}


def host_vars(port: int, key: Path) -> dict[str, object]:
    """How Ansible reaches a lab VM."""
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key),
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": " ".join(SSH_OPTIONS),
    }


# A lab VM is new on every run: its host key means nothing.
SSH_OPTIONS = (
    "-o StrictHostKeyChecking=no",
    "-o UserKnownHostsFile=/dev/null",
    "-o LogLevel=ERROR",
)
