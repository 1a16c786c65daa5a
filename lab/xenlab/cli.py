"""xen-lab: build, boot and drive the QEMU VMs that stand in for bare metal.

xen-lab build [--release R]        build (or find) the cached base image
xen-lab up --name N [...]          boot a VM from it, wait for SSH, print JSON
xen-lab down --name N | --all      stop a VM and remove its overlay
xen-lab ssh --name N [CMD ...]     log in to a VM
xen-lab link --name N DEV up|down  plug or unplug a NIC (QMP set_link)
xen-lab status                     list running VMs
xen-lab sweep                      stop VMs whose owner has gone
xen-lab run -- CMD ...             run CMD; VMs it starts die with it
xen-lab lab [...] -- CMD ...       the `make lab` VM: kept on success only
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import yaml

from xenlab import accel, config, image, procs, vm

OWNER_ENV = "XEN_LAB_OWNER"


def _boot(args: argparse.Namespace, cache: Path, owner: str | None) -> vm.VmState:
    base = image.ensure(cache, args.release)
    key = vm.ssh_key(cache)
    accel_name, cpu = accel.choose(cache, base.parent / "vmlinuz", args.hap)
    return vm.start(
        cache,
        args.name,
        args.release,
        base,
        key,
        accel_name,
        cpu,
        owner,
        memory_mib=args.memory,
        second_nic=args.second_nic,
        data_disk_gib=args.data_disk_gib,
        bond_nic=args.bond_nic,
        data_disks=args.data_disks,
    )


def write_inventory(path: Path, state: vm.VmState, group: str) -> None:
    data = config.inventory({state.name: state.host_vars()}, group)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "---\n# Written by xen-lab for the running lab VM; do not edit.\n" + yaml.safe_dump(data)
    )


def cmd_build(args: argparse.Namespace, cache: Path) -> int:
    print(image.ensure(cache, args.release))
    return 0


def cmd_up(args: argparse.Namespace, cache: Path) -> int:
    state = _boot(args, cache, os.environ.get(OWNER_ENV) or None)
    if args.inventory:
        write_inventory(Path(args.inventory), state, args.group)
    print(json.dumps({**vars(state), "host_vars": state.host_vars()}))
    return 0


def cmd_down(args: argparse.Namespace, cache: Path) -> int:
    names = [p.name for p in vm.vms_dir(cache).glob("*") if p.is_dir()] if args.all else [args.name]
    for name in names:
        if vm.stop(cache, name):
            vm.log(f"VM {name} stopped and its overlay removed")
    return 0


def cmd_link(args: argparse.Namespace, cache: Path) -> int:
    vm.qmp(cache, args.name, "set_link", {"name": args.device, "up": args.state == "up"})
    vm.log(f"VM {args.name}: link of {args.device} is {args.state}")
    return 0


def cmd_ssh(args: argparse.Namespace, cache: Path) -> int:
    state = vm.load_state(cache, args.name)
    if state is None or not vm.running(state):
        vm.log(f"no running VM named {args.name}")
        return 1
    return subprocess.call(vm.ssh_command(state.ssh_port, Path(state.key), *args.command))


def cmd_status(_args: argparse.Namespace, cache: Path) -> int:
    for vm_dir in sorted(vm.vms_dir(cache).glob("*")):
        state = vm.load_state(cache, vm_dir.name)
        if state is None:
            continue
        up = "running" if vm.running(state) else "dead"
        print(
            f"{state.name}\t{state.release}\t{up}\t"
            f"ssh 127.0.0.1:{state.ssh_port}\t{state.serial_log}"
        )
    return 0


def cmd_sweep(_args: argparse.Namespace, cache: Path) -> int:
    for name in vm.sweep(cache):
        vm.log(f"swept stale VM {name}")
    return 0


def cmd_watchdog(args: argparse.Namespace, cache: Path) -> int:
    vm.watchdog(cache, args.name)
    return 0


def _owned_by(cache: Path, owner: str) -> list[str]:
    names = []
    for vm_dir in vm.vms_dir(cache).glob("*"):
        state = vm.load_state(cache, vm_dir.name)
        if state is not None and state.owner == owner:
            names.append(state.name)
    return names


class Interrupted(Exception):
    """A signal arrived while no child command was running."""


class Supervisor:
    """Run a child command as the owner of the VMs it starts.

    SIGINT, SIGTERM and SIGHUP are passed on to the child; whatever way the
    child ends, the VMs this process owns are stopped. If this process is
    killed outright, each VM's watchdog stops it.
    """

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.owner = procs.identity(os.getpid()) or str(os.getpid())
        self.child: subprocess.Popen[bytes] | None = None
        self.signalled = 0

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.signalled = signum
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)
        else:
            raise Interrupted(signum)

    def run(self, command: list[str]) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._forward)
        env = {**os.environ, OWNER_ENV: self.owner}
        try:
            self.child = subprocess.Popen(command, env=env)
            code = self.child.wait()
        except FileNotFoundError:
            vm.log(f"command not found: {command[0]}")
            code = 127
        finally:
            if self.signalled:
                vm.log(f"interrupted by signal {self.signalled}; stopping this run's VMs")
        return 128 + self.signalled if self.signalled else code

    def cleanup(self) -> None:
        for name in _owned_by(self.cache, self.owner):
            state = vm.load_state(self.cache, name)
            if state is not None and self.signalled == 0:
                vm.report_failure(Path(state.serial_log), f"run failed; VM {name} is stopped")
            vm.stop(self.cache, name)
            vm.log(f"VM {name} stopped")


def cmd_run(args: argparse.Namespace, cache: Path) -> int:
    sup = Supervisor(cache)
    try:
        return sup.run(args.command)
    except Interrupted:
        return 128 + sup.signalled
    finally:
        sup.cleanup()


def cmd_lab(args: argparse.Namespace, cache: Path) -> int:
    """Boot the lab VM, run the command against it, keep it only on success."""
    sup = Supervisor(cache)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, sup._forward)
    try:
        state = _boot(args, cache, sup.owner)
    except Interrupted:
        vm.log(f"interrupted by signal {sup.signalled}; stopping the lab VM")
        sup.cleanup()
        return 128 + sup.signalled
    except vm.LabError as exc:
        vm.log(str(exc))
        sup.cleanup()
        return 1
    write_inventory(Path(args.inventory), state, args.group)
    try:
        code = sup.run(args.command) if not sup.signalled else 128 + sup.signalled
    except Interrupted:
        code = 128 + sup.signalled
    if code == 0:
        state = vm.load_state(cache, args.name) or state
        state.owner = None  # released: the VM stays up until `make lab-destroy`
        vm.save_state(cache, state)
        vm.log(
            f"lab VM {args.name} is up: ssh -p {state.ssh_port} root@127.0.0.1 (key {state.key})"
        )
        vm.log(f"serial console log: {state.serial_log}")
        return 0
    sup.cleanup()
    return code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xen-lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    def vm_opts(sp: argparse.ArgumentParser, name: str | None) -> None:
        sp.add_argument("--name", default=name, required=name is None)
        sp.add_argument("--release", default=config.DEFAULT_RELEASE, choices=config.RELEASES)
        sp.add_argument("--memory", type=int, default=3072, help="MiB of guest RAM")
        sp.add_argument("--second-nic", action="store_true", help="add a second, isolated NIC")
        sp.add_argument(
            "--bond-nic",
            action="store_true",
            help="add a third NIC (ens7) on ens3's network, for a bond (QMP devices nic0, nic2)",
        )
        sp.add_argument(
            "--data-disk-gib",
            type=int,
            default=0,
            metavar="N",
            help="add a blank sparse N GiB disk, /dev/vdb in the VM",
        )
        sp.add_argument(
            "--data-disks",
            type=int,
            default=1,
            choices=[1, 2],
            help="how many such disks (2: /dev/vdb and /dev/vdc, for md RAID1)",
        )
        sp.add_argument("--group", default="xen_dom0s", help="inventory group of the VM")
        sp.add_argument(
            "--hap",
            action="store_true",
            help=f"under TCG, CPU {config.TCG_CPU_HAP}: Xen gets nested paging (HAP)",
        )

    sp = sub.add_parser("build", help="build or find the base image")
    sp.add_argument("--release", default=config.DEFAULT_RELEASE, choices=config.RELEASES)
    sp.set_defaults(func=cmd_build)

    sp = sub.add_parser("up", help="boot a VM and wait for SSH")
    vm_opts(sp, None)
    sp.add_argument("--inventory", help="write an Ansible inventory for the VM here")
    sp.set_defaults(func=cmd_up)

    sp = sub.add_parser("down", help="stop a VM and remove its overlay")
    group = sp.add_mutually_exclusive_group(required=True)
    group.add_argument("--name")
    group.add_argument("--all", action="store_true")
    sp.set_defaults(func=cmd_down)

    sp = sub.add_parser("link", help="plug or unplug a VM's NIC (QMP set_link)")
    sp.add_argument("--name", required=True)
    sp.add_argument("device", help="nic0 (ens3), nic2 (ens7)")
    sp.add_argument("state", choices=["up", "down"])
    sp.set_defaults(func=cmd_link)

    sp = sub.add_parser("ssh", help="log in to a VM")
    sp.add_argument("--name", default="lab")
    sp.add_argument("command", nargs=argparse.REMAINDER)
    sp.set_defaults(func=cmd_ssh)

    sub.add_parser("status", help="list VMs").set_defaults(func=cmd_status)
    sub.add_parser("sweep", help="stop VMs whose owner is gone").set_defaults(func=cmd_sweep)

    sp = sub.add_parser("watchdog", help=argparse.SUPPRESS)
    sp.add_argument("name")
    sp.set_defaults(func=cmd_watchdog)

    sp = sub.add_parser("run", help="run a command that owns the VMs it starts")
    sp.add_argument("command", nargs="+")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("lab", help="boot the lab VM and run a command against it")
    vm_opts(sp, "lab")
    sp.add_argument("--inventory", default="inventory/lab/hosts.yml")
    sp.add_argument("command", nargs="+")
    sp.set_defaults(func=cmd_lab)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "command", None) and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    cache = config.cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    if args.cmd not in ("watchdog", "status"):
        vm.sweep(cache)
    try:
        return int(args.func(args, cache))
    except vm.LabError as exc:
        vm.log(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
