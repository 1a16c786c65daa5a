"""The guest templates, rendered from planned guests as Ansible's template module does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_domain_state as ds
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp

TEMPLATES = Path(__file__).parents[2] / "templates"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx1 admin@example.org"
SHA = "sha256:" + "ab" * 32
ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    trim_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def planned(**kw: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "name": "web1",
        "type": "pvh",
        "memory": "1G",
        "vcpus": 2,
        "disks": [{"size": "10G"}, {"size": "20G", "backend": "lvm", "vg": "vg0", "name": "data"}],
        "interfaces": [
            {
                "ipv4": {"address": "192.0.2.10/24", "gateway": "192.0.2.1"},
                "ipv6": {"address": "2001:db8::10/64", "gateway": "fe80::1"},
            },
            {"bridge": "xenbr1", "ipv6": "dhcp"},
        ],
        "os": {"release": "trixie"},
        "ssh_authorized_keys": [KEY],
    }
    settings.update(kw)
    return gp.plan_guests([settings], {}, {"nameservers": ["192.0.2.53"]})[0]


def render(template: str, guest: dict[str, Any], **role: Any) -> str:
    return ENV.get_template(template).render(guest=guest, **role)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def assert_common_pv_lines(gtype: str, guest: dict[str, Any], text: str) -> None:
    """What every PV and PVH config of the default guest holds, however it boots."""
    found = lines(text)
    assert f'type = "{gtype}"' in found
    assert "memory = 1024" in found
    assert "vcpus = 2" in found
    assert not any(line.startswith("maxmem") for line in found)
    assert f'"mac={guest["macs"][0]}, bridge=xenbr0",' in found
    assert f'"mac={guest["macs"][1]}, bridge=xenbr1"' in found
    assert '"format=raw, vdev=xvda, access=rw, target=/var/lib/xen/images/web1-root.img",' in found
    assert '"format=raw, vdev=xvdb, access=rw, target=/dev/vg0/web1-data",' in found
    assert '"format=raw, vdev=xvdz, access=ro, target=/var/lib/xen/seeds/web1/seed.iso"' in found
    assert 'on_reboot = "restart"' in found
    assert 'on_crash = "restart"' in found
    assert "\n\n" not in text
    assert "{" not in text


@pytest.mark.parametrize("gtype", ["pv", "pvh"])
def test_pv_and_pvh_from_a_release_boot_the_image_kernel_directly(gtype: str) -> None:
    guest = planned(type=gtype)
    text = render(f"xl/{gtype}.cfg.j2", guest)
    assert_common_pv_lines(gtype, guest, text)
    found = lines(text)
    assert [line for line in found if line.startswith(("kernel", "ramdisk", "cmdline"))] == [
        'kernel = "/var/lib/xen/boot/web1/vmlinuz"',
        'ramdisk = "/var/lib/xen/boot/web1/initrd.img"',
        'cmdline = "root=/dev/xvda1 ro console=hvc0"',
    ]
    assert "/usr/lib/grub-xen/" not in text


@pytest.mark.parametrize(
    ("gtype", "kernel"),
    [
        ("pv", 'kernel = "/usr/lib/grub-xen/grub-x86_64-xen.bin"'),
        ("pvh", 'kernel = "/usr/lib/grub-xen/grub-i386-xen_pvh.bin"'),
    ],
)
def test_pv_and_pvh_from_an_image_boot_grub_from_grub_xen_host(gtype: str, kernel: str) -> None:
    guest = planned(type=gtype, os={"image": "/srv/images/trixie.raw", "checksum": SHA})
    text = render(f"xl/{gtype}.cfg.j2", guest)
    assert_common_pv_lines(gtype, guest, text)
    found = lines(text)
    assert [line for line in found if line.startswith(("kernel", "ramdisk", "cmdline"))] == [kernel]
    assert "/var/lib/xen/boot" not in text


def test_the_module_reads_the_sizes_it_rendered() -> None:
    guest = planned(type="pv", maxmem="2G")
    cfg = ds.parse_xl_cfg(render("xl/pv.cfg.j2", guest))
    assert ds.wanted_sizes(cfg) == {"memory_mib": 1024, "maxmem_mib": 2048, "vcpus": 2}
    assert cfg["name"] == "web1"


def test_hvm_with_an_installer_iso() -> None:
    guest = planned(type="hvm", os={"iso": "/srv/iso/debian.iso"}, disks=[{"size": "10G"}])
    found = lines(render("xl/hvm.cfg.j2", guest, xen_guests_tsc_mode="native"))
    assert 'type = "hvm"' in found
    assert 'vnclisten = "127.0.0.1"' in found
    assert 'serial = "pty"' in found
    assert 'tsc_mode = "native"' in found
    assert '"format=raw, vdev=xvda, access=rw, target=/var/lib/xen/images/web1-root.img",' in found
    assert '"format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/srv/iso/debian.iso"' in found
    assert not any("seed.iso" in line for line in found)
    assert not any(line.startswith("kernel") for line in found)


def test_hvm_from_a_release_gets_its_seed_on_a_cdrom() -> None:
    found = lines(render("xl/hvm.cfg.j2", planned(type="hvm"), xen_guests_vnclisten="0.0.0.0"))
    assert 'vnclisten = "0.0.0.0"' in found
    assert not any(line.startswith("tsc_mode") for line in found)
    assert (
        '"format=raw, vdev=hdd, access=ro, devtype=cdrom,'
        ' target=/var/lib/xen/seeds/web1/seed.iso"' in found
    )


def test_meta_data() -> None:
    guest = planned()
    assert yaml.safe_load(render("cloud-init/meta-data.j2", guest)) == {
        "instance-id": guest["instance_id"],
        "local-hostname": "web1",
    }


def test_user_data_for_root() -> None:
    text = render("cloud-init/user-data.j2", planned())
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert data["hostname"] == "web1"
    assert data["ssh_deletekeys"] is True
    assert data["disable_root"] is False
    assert data["users"] == [{"name": "root", "lock_passwd": True, "ssh_authorized_keys": [KEY]}]


def test_user_data_for_a_sudo_user_with_a_domain() -> None:
    text = render(
        "cloud-init/user-data.j2", planned(), xen_guests_user="admin", xen_guests_domain="lan"
    )
    data = yaml.safe_load(text)
    assert data["fqdn"] == "web1.lan"
    (user,) = data["users"]
    assert (user["name"], user["ssh_authorized_keys"]) == ("admin", [KEY])
    assert "disable_root" not in data


def test_user_data_without_keys_stays_valid() -> None:
    data = yaml.safe_load(render("cloud-init/user-data.j2", planned(ssh_authorized_keys=[])))
    assert data["users"] == [{"name": "root", "lock_passwd": True}]


def test_network_config_static_and_dhcp() -> None:
    guest = planned()
    data = yaml.safe_load(render("cloud-init/network-config.j2", guest))
    assert data["version"] == 2
    eth0, eth1 = data["ethernets"]["eth0"], data["ethernets"]["eth1"]
    assert eth0["match"] == {"macaddress": guest["macs"][0]}
    assert eth0["set-name"] == "eth0"
    assert (eth0["dhcp4"], eth0["dhcp6"]) == (False, False)
    assert eth0["addresses"] == ["192.0.2.10/24", "2001:db8::10/64"]
    assert eth0["routes"] == [
        {"to": "0.0.0.0/0", "via": "192.0.2.1"},
        {"to": "::/0", "via": "fe80::1"},
    ]
    assert eth0["nameservers"] == {"addresses": ["192.0.2.53"]}
    assert eth1 == {
        "match": {"macaddress": guest["macs"][1]},
        "set-name": "eth1",
        "dhcp4": False,
        "dhcp6": True,
    }


def test_network_config_interface_without_addresses_uses_dhcp4() -> None:
    data = yaml.safe_load(render("cloud-init/network-config.j2", planned(interfaces=[{}])))
    assert data["ethernets"]["eth0"]["dhcp4"] is True
    assert "addresses" not in data["ethernets"]["eth0"]
