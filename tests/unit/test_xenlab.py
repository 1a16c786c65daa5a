"""The lab harness's pure parts: cache key, ports, inventory, accelerator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from xenlab import accel, cli, config, image, procs, vm

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake xen-lab"


def test_cache_root_defaults_under_home_and_honours_override() -> None:
    assert config.cache_root({"HOME": "/home/u"}) == Path("/home/u/.cache/xen-lab")
    assert config.cache_root({"HOME": "/home/u", "XEN_LAB_CACHE": "/srv/lab"}) == Path("/srv/lab")


def test_cache_key_is_stable_for_the_same_recipe() -> None:
    a = config.cache_key(config.recipe("trixie", config.DEFAULT_MIRROR, PUBKEY))
    b = config.cache_key(config.recipe("trixie", config.DEFAULT_MIRROR, PUBKEY + "\n"))
    assert a == b
    assert len(a) == 16


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(release="bookworm"),
        lambda r: r.update(packages=[*r["packages"], "vim"]),
        lambda r: r.update(version=r["version"] + 1),
        lambda r: r.update(first_boot=r["first_boot"] + "true\n"),
        lambda r: r.update(mirror="http://mirror.example/debian"),
        lambda r: r.update(pubkey="ssh-ed25519 other"),
    ],
    ids=["release", "packages", "version", "first-boot", "mirror", "key"],
)
def test_cache_key_changes_with_the_recipe(change) -> None:  # noqa: ANN001
    base = config.recipe("trixie", config.DEFAULT_MIRROR, PUBKEY)
    changed = dict(base)
    change(changed)
    assert config.cache_key(base) != config.cache_key(changed)


def test_package_order_does_not_change_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = config.cache_key(config.recipe("trixie", config.DEFAULT_MIRROR, PUBKEY))
    monkeypatch.setattr(config, "BASE_PACKAGES", tuple(reversed(config.BASE_PACKAGES)))
    assert config.cache_key(config.recipe("trixie", config.DEFAULT_MIRROR, PUBKEY)) == before


def test_free_port_is_bindable_on_loopback() -> None:
    port = vm.free_port()
    assert 1024 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def spec(**kw: object) -> config.VmSpec:
    base = {
        "name": "t", "disk": Path("/c/vms/t/disk.qcow2"), "serial_log": Path("/c/s.log"),
        "pidfile": Path("/c/q.pid"), "ssh_port": 40022, "accel": "tcg", "cpu": "qemu64,+svm",
    }  # fmt: skip
    base.update(kw)
    return config.VmSpec(**base)  # type: ignore[arg-type]


def test_qemu_command_allows_in_place_reboot_and_binds_loopback_only() -> None:
    cmd = config.qemu_command(spec())
    assert "-no-reboot" not in cmd
    netdev = cmd[cmd.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdev
    assert cmd[cmd.index("-accel") + 1] == "tcg"
    assert cmd[cmd.index("-cpu") + 1] == "qemu64,+svm"
    assert "file:/c/s.log" in cmd
    assert cmd.count("-netdev") == 1


def test_qemu_command_second_nic_is_isolated() -> None:
    cmd = config.qemu_command(spec(second_nic=True))
    netdevs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-netdev"]
    assert len(netdevs) == 2
    assert "restrict=on" in netdevs[1]
    assert "hostfwd" not in netdevs[1]


def test_qemu_command_bond_nic_puts_two_nics_on_the_management_network() -> None:
    cmd = config.qemu_command(spec(bond_nic=True))
    netdevs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-netdev"]
    devices = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
    assert netdevs[0].startswith("user,id=n0,hostfwd=")
    # One hub: the user-mode network and both NICs are its ports.
    assert netdevs[1:] == [
        "hubport,id=h0,hubid=0,netdev=n0",
        "hubport,id=h1,hubid=0",
        "hubport,id=h2,hubid=0",
    ]
    assert "virtio-net-pci,netdev=h1,addr=0x3,id=nic0" in devices  # ens3
    assert "virtio-net-pci,netdev=h2,addr=0x7,id=nic2" in devices  # ens7


def test_qmp_unplugs_and_plugs_a_nic_of_a_real_qemu(tmp_path: Path) -> None:
    """A paused QEMU with the lab's NICs: set_link through vm.qmp, read back from QEMU."""
    vm_dir = tmp_path / "vms" / "t"
    vm_dir.mkdir(parents=True)
    disk = vm_dir / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1G"], check=True)
    the_spec = config.VmSpec(
        name="t",
        disk=disk,
        serial_log=vm_dir / "serial.log",
        pidfile=vm_dir / "qemu.pid",
        ssh_port=vm.free_port(),
        accel="tcg",
        cpu="qemu64",
        memory_mib=64,
        bond_nic=True,
        qmp=vm.qmp_path(tmp_path, "t"),
    )
    subprocess.run([*config.qemu_command(the_spec), "-S"], check=True)
    pid = int((vm_dir / "qemu.pid").read_text())
    try:
        info = vm.qmp(tmp_path, "t", "human-monitor-command", {"command-line": "info network"})
        assert " \\ h1: nic0: index=0,type=nic,model=virtio-net-pci" in str(info)
        assert " \\ h2: nic2: index=0,type=nic,model=virtio-net-pci" in str(info)
        # The guest sees the carrier go (the Molecule scenario's bond fails over).
        assert vm.qmp(tmp_path, "t", "set_link", {"name": "nic0", "up": False}) == {}
        assert vm.qmp(tmp_path, "t", "set_link", {"name": "nic0", "up": True}) == {}
        with pytest.raises(vm.LabError, match="QMP set_link on VM t"):
            vm.qmp(tmp_path, "t", "set_link", {"name": "nic9", "up": False})
    finally:
        os.kill(pid, signal.SIGTERM)


def test_qemu_command_data_disk_is_a_second_virtio_disk() -> None:
    assert config.qemu_command(spec()).count("-drive") == 1
    cmd = config.qemu_command(spec(data_disks=(Path("/c/vms/t/data.qcow2"),)))
    drives = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-drive"]
    devices = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
    assert drives == [
        "file=/c/vms/t/disk.qcow2,format=qcow2,if=none,id=d0,cache=unsafe",
        "file=/c/vms/t/data.qcow2,format=qcow2,if=none,id=d1,cache=unsafe",
    ]
    # the root disk's slot comes first, so the data disk is /dev/vdb
    assert "virtio-blk-pci,drive=d0,addr=0x5" in devices
    assert "virtio-blk-pci,drive=d1,addr=0x6" in devices


def test_qemu_command_two_data_disks_are_vdb_and_vdc_beside_the_bond_nic() -> None:
    disks = (Path("/c/vms/t/data.qcow2"), Path("/c/vms/t/data2.qcow2"))
    cmd = config.qemu_command(spec(data_disks=disks, bond_nic=True))
    devices = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
    blk = [d for d in devices if d.startswith("virtio-blk-pci")]
    assert blk == [
        "virtio-blk-pci,drive=d0,addr=0x5",
        "virtio-blk-pci,drive=d1,addr=0x6",
        "virtio-blk-pci,drive=d2,addr=0x8",
    ]
    slots = [d.rsplit("addr=", 1)[1].split(",")[0] for d in devices]
    assert len(slots) == len(set(slots))


@pytest.mark.parametrize(
    ("env", "kvm_boots", "expected"),
    [
        ({}, True, ("kvm", "host")),
        ({}, False, ("tcg", "qemu64,+svm")),
        ({}, None, ("tcg", "qemu64,+svm")),
        ({"XEN_LAB_ACCEL": "tcg"}, True, ("tcg", "qemu64,+svm")),
        ({"XEN_LAB_CPU": "max,-smap,-smep"}, False, ("tcg", "max,-smap,-smep")),
        ({"XEN_LAB_ACCEL": "kvm", "XEN_LAB_CPU": "EPYC"}, False, ("kvm", "EPYC")),
    ],
)
def test_choose_accel(
    env: dict[str, str], kvm_boots: bool | None, expected: tuple[str, str]
) -> None:
    assert config.choose_accel(env, kvm_boots) == expected


@pytest.mark.parametrize(
    ("env", "kvm_boots", "expected"),
    [
        ({}, False, ("tcg", "qemu64,+svm,+npt")),
        ({}, True, ("kvm", "host")),
        ({"XEN_LAB_CPU": "max,-smap,-smep"}, False, ("tcg", "max,-smap,-smep")),
    ],
)
def test_choose_accel_with_hap(
    env: dict[str, str], kvm_boots: bool | None, expected: tuple[str, str]
) -> None:
    assert config.choose_accel(env, kvm_boots, hap=True) == expected


def test_choose_accel_rejects_unknown_accelerator() -> None:
    with pytest.raises(ValueError, match="XEN_LAB_ACCEL='hvf'"):
        config.choose_accel({"XEN_LAB_ACCEL": "hvf"}, None)


def test_probe_verdict_needs_a_running_kernel() -> None:
    assert accel.verdict_from_console("[ 1.2] VFS: Unable to mount root fs on unknown-block(0,0)")
    assert accel.verdict_from_console("---[ end Kernel panic - not syncing: VFS")
    assert not accel.verdict_from_console("Probing EDD (edd=off to disable)... ok")
    assert not accel.verdict_from_console("")


def test_written_inventory_reaches_the_vm(tmp_path: Path) -> None:
    state = vm.VmState(
        name="lab", release="trixie", pid=1, qemu_ident="1:1", ssh_port=40022,
        disk="/d", serial_log="/s", key="/k/id_ed25519", owner=None, accel="tcg", cpu="qemu64",
    )  # fmt: skip
    path = tmp_path / "inv" / "hosts.yml"
    cli.write_inventory(path, state, "xen_dom0s")
    data = yaml.safe_load(path.read_text())
    host = data["all"]["children"]["xen_dom0s"]["hosts"]["lab"]
    assert host["ansible_host"] == "127.0.0.1"
    assert host["ansible_port"] == 40022
    assert host["ansible_user"] == "root"
    assert host["ansible_ssh_private_key_file"] == "/k/id_ed25519"
    assert "StrictHostKeyChecking=no" in host["ansible_ssh_common_args"]


def test_process_identity_survives_only_as_long_as_the_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    ident = procs.identity(child.pid)
    assert ident is not None and procs.alive(ident)
    child.kill()
    child.wait()
    assert not procs.alive(ident)
    assert not procs.alive(f"{child.pid}:0")
    assert not procs.alive(None)


def test_sweep_removes_vms_whose_qemu_is_gone(tmp_path: Path) -> None:
    vm_dir = vm.vms_dir(tmp_path) / "ghost"
    vm_dir.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    state = vm.VmState(
        name="ghost", release="trixie", pid=dead.pid, qemu_ident=f"{dead.pid}:1", ssh_port=1,
        disk=str(vm_dir / "disk.qcow2"), serial_log="/s", key="/k", owner=None,
        accel="tcg", cpu="x",
    )  # fmt: skip
    vm.save_state(tmp_path, state)
    assert vm.sweep(tmp_path) == ["ghost"]
    assert not vm_dir.exists()


def test_stop_never_signals_a_process_that_is_not_our_qemu(tmp_path: Path) -> None:
    vm_dir = vm.vms_dir(tmp_path) / "other"
    vm_dir.mkdir(parents=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state = vm.VmState(
            name="other", release="trixie", pid=bystander.pid,
            qemu_ident=procs.identity(bystander.pid) or "", ssh_port=1,
            disk=str(vm_dir / "disk.qcow2"), serial_log="/s", key="/k", owner=None,
            accel="tcg", cpu="x",
        )  # fmt: skip
        vm.save_state(tmp_path, state)
        assert vm.stop(tmp_path, "other")
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_keeps_the_serial_console_of_the_vm_it_removes(tmp_path: Path) -> None:
    vm_dir = vm.vms_dir(tmp_path) / "mol-hv"
    vm_dir.mkdir(parents=True)
    (vm_dir / "serial.log").write_text("Hardware Dom0 crashed\n")
    assert vm.stop(tmp_path, "mol-hv")
    assert not vm_dir.exists()
    assert vm.last_serial_log(tmp_path, "mol-hv").read_text() == "Hardware Dom0 crashed\n"


def test_prune_keeps_the_current_image_and_any_image_a_vm_may_use(tmp_path: Path) -> None:
    images = image.images_dir(tmp_path)
    for name in ("trixie-old", "trixie-new", "bookworm-old"):
        (images / name).mkdir(parents=True)
    busy = vm.vms_dir(tmp_path) / "lab"
    busy.mkdir(parents=True)
    (busy / "disk.qcow2").write_bytes(b"")
    assert image.prune(tmp_path, "trixie", keep=images / "trixie-new") == []
    (busy / "disk.qcow2").unlink()
    assert image.prune(tmp_path, "trixie", keep=images / "trixie-new") == [images / "trixie-old"]
    assert sorted(p.name for p in images.iterdir()) == ["bookworm-old", "trixie-new"]


def test_a_zombie_counts_as_gone() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while not procs.gone(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # exited but not yet reaped: /proc still lists it, as state Z
    assert procs.start_time(child.pid) is not None
    assert procs.gone(child.pid)
    child.wait()
    assert procs.gone(child.pid)


def test_kvm_probe_reports_on_stderr_so_up_prints_only_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `xen-lab up` prints one JSON object on stdout, which create.yml parses; the
    # first run on a machine also probes KVM and must say so elsewhere.
    monkeypatch.delenv("XEN_LAB_ACCEL", raising=False)
    monkeypatch.setattr(accel, "kvm_usable", lambda: True)
    monkeypatch.setattr(accel, "probe", lambda kernel: False)
    assert accel.kvm_boots(tmp_path, tmp_path / "vmlinuz") is False
    out = capsys.readouterr()
    assert out.out == ""
    assert "KVM probe" in out.err
    assert (tmp_path / "accel.json").exists()


def _fake_boots(monkeypatch: pytest.MonkeyPatch, outcomes: list[Exception | None]) -> list[int]:
    """Replace one boot with the next outcome: an exception, or None for a VM that answers."""
    attempts: list[int] = []

    def boot_once(*args: object, **_kw: object) -> vm.VmState:
        attempts.append(int(str(args[-1])))
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return vm.VmState("lab", "trixie", 1, "1:0", 2222, "d", "s", "k", None, "tcg", "qemu64")

    monkeypatch.setattr(vm, "_boot_once", boot_once)
    return attempts


def _start(tmp_path: Path) -> vm.VmState:
    return vm.start(
        tmp_path, "lab", "trixie", tmp_path / "base", tmp_path / "key", "tcg", "qemu64", None
    )


def test_a_boot_that_never_answers_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = _fake_boots(monkeypatch, [vm.BootTimeout("no SSH"), vm.BootTimeout("no SSH"), None])
    assert _start(tmp_path).ssh_port == 2222
    assert attempts == [1, 2, 3]


def test_the_last_failed_boot_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = _fake_boots(monkeypatch, [vm.BootTimeout("no SSH")] * vm.BOOT_ATTEMPTS)
    with pytest.raises(vm.LabError, match=f"failed to come up in {vm.BOOT_ATTEMPTS} boots: no SSH"):
        _start(tmp_path)
    assert attempts == list(range(1, vm.BOOT_ATTEMPTS + 1))


def test_qemu_that_cannot_start_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = _fake_boots(monkeypatch, [vm.LabError("QEMU did not start: bad flag"), None])
    with pytest.raises(vm.LabError, match="bad flag"):
        _start(tmp_path)
    assert attempts == [1]
