"""The xen_guests validator and planner: one case per message, and the planned values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_sizes import SIZE_ERROR
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import parse_xl_info
from unit.keys import ED25519, KEYS

DATA = Path(__file__).parent / "data"
KEY = ED25519
SHA = "sha256:" + "ab" * 32


def lab_host(**kw: Any) -> dict[str, Any]:
    """Host facts as the role gathers them on the bookworm lab dom0 (shadow paging)."""
    info = parse_xl_info((DATA / "xl-info-bookworm.txt").read_text())
    facts: dict[str, Any] = {
        "total_memory_mib": int(info["total_memory"]),
        "free_memory_mib": int(info["free_memory"]),
        "dom0_memory_mib": 1024,
        "nr_cpus": int(info["nr_cpus"]),
        "virt_caps": info["virt_caps"],
        "cpu_flags": ["fpu", "vme", "svm"],
        "bridges": ["xenbr0", "xenbr1"],
        "volume_groups": ["vg0"],
        "existing_domains": {},
    }
    facts.update(kw)
    return facts


def guest(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "web1",
        "type": "pvh",
        "vcpus": 1,
        "memory": "512M",
        "disks": [{"size": "10G"}],
        "interfaces": [{"ipv4": {"address": "192.0.2.10/24", "gateway": "192.0.2.1"}}],
        "os": {"release": "trixie"},
        "ssh_authorized_keys": [KEY],
    }
    base.update(kw)
    return base


def test_a_good_guest_list_has_no_errors() -> None:
    guests = [
        guest(),
        guest(
            name="db1",
            type="pv",
            vcpus=2,
            memory=1024,
            maxmem="1G",
            disks=[{"size": "8G"}, {"size": "20G", "backend": "lvm", "vg": "vg0", "name": "data"}],
            interfaces=[
                {"bridge": "xenbr1", "ipv4": "dhcp", "ipv6": {"address": "2001:db8::5/64"}},
                {"mac": "02:00:00:00:00:01", "ipv6": "dhcp"},
            ],
            os={"image": "https://cloud.debian.org/trixie.raw", "checksum": SHA},
            autostart=False,
            state="stopped",
        ),
        guest(name="win1", type="hvm", os={"iso": "/srv/iso/installer.iso"}, interfaces=[{}]),
        guest(name="old1", state="absent", purge=True, interfaces=[]),
    ]
    assert gp.validate_guests(guests, lab_host()) == []


def test_facts_left_out_skip_their_checks() -> None:
    assert gp.validate_guests([guest(type="hvm", interfaces=[{"bridge": "br9"}])], {}) == []


BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "name with a dot",
        {"name": "web.1"},
        "Guest web.1: name must be 1 to 63 lowercase letters, digits or '-', starting and"
        " ending with a letter or digit (it names files, LVM volumes and the host).",
    ),
    (
        "name with a path",
        {"name": "../etc"},
        "Guest ../etc: name must be 1 to 63 lowercase letters, digits or '-', starting and"
        " ending with a letter or digit (it names files, LVM volumes and the host).",
    ),
    (
        "name ending with a dash",
        {"name": "web1-"},
        "Guest web1-: name must be 1 to 63 lowercase letters, digits or '-', starting and"
        " ending with a letter or digit (it names files, LVM volumes and the host).",
    ),
    (
        "name starting with a dash",
        {"name": "-web1"},
        "Guest -web1: name must be 1 to 63 lowercase letters, digits or '-', starting and"
        " ending with a letter or digit (it names files, LVM volumes and the host).",
    ),
    (
        "misspelt key",
        {"memroy": "1G"},
        "Guest web1: unknown key 'memroy' in the guest (did you mean 'memory'?).",
    ),
    ("unknown type", {"type": "kvm"}, "Guest web1: type 'kvm' is not one of pv, pvh, hvm."),
    ("no vcpus", {"vcpus": 0}, "Guest web1: vcpus 0 is below 1."),
    ("too many vcpus", {"vcpus": 4}, "Guest web1: vcpus 4 is more than the host's 2 CPUs."),
    ("vcpus as text", {"vcpus": "two"}, "Guest web1: vcpus 'two' is not a whole number."),
    (
        "memory too small",
        {"memory": 64},
        "Guest web1: memory 64 MiB is below the minimum of 128 MiB.",
    ),
    (
        "memory junk",
        {"memory": "lots"},
        "Guest web1: memory: " + SIZE_ERROR.format(value="lots"),
    ),
    (
        "maxmem below memory",
        {"memory": "1G", "maxmem": "512M"},
        "Guest web1: maxmem 512 MiB is below memory 1024 MiB.",
    ),
    (
        "unknown state",
        {"state": "paused"},
        "Guest web1: state 'paused' is not one of running, stopped, absent.",
    ),
    (
        "purge while running",
        {"purge": True},
        "Guest web1: purge is true but state is running; purge deletes the guest's disks and"
        " applies only with state absent.",
    ),
    (
        "autostart as text",
        {"autostart": "yes"},
        "Guest web1: autostart is 'yes'; use true or false.",
    ),
    (
        "no disks",
        {"disks": []},
        "Guest web1: disks is empty; the first disk is the root disk and is required.",
    ),
    ("disk without size", {"disks": [{"backend": "file"}]}, "Guest web1: disks[0] has no size."),
    (
        "unknown disk backend",
        {"disks": [{"size": "5G", "backend": "qcow2"}]},
        "Guest web1: disks[0].backend 'qcow2' is not one of file, lvm.",
    ),
    (
        "lvm without vg",
        {"disks": [{"size": "5G", "backend": "lvm"}]},
        "Guest web1: disks[0] uses backend lvm but sets no vg.",
    ),
    (
        "missing vg",
        {"disks": [{"size": "5G", "backend": "lvm", "vg": "vg9"}]},
        "Guest web1: disks[0].vg 'vg9' is not a volume group on the host (found: vg0).",
    ),
    (
        "disk name with a slash",
        {"disks": [{"size": "5G", "name": "a/b"}]},
        "Guest web1: disks[0].name 'a/b' must be lowercase letters, digits or '-', starting"
        " with a letter or digit.",
    ),
    (
        "missing bridge",
        {"interfaces": [{"bridge": "br9"}]},
        "Guest web1: interfaces[0].bridge 'br9' does not exist on the host"
        " (found: xenbr0, xenbr1).",
    ),
    (
        "short MAC",
        {"interfaces": [{"mac": "00:16:3e:12:34"}]},
        "Guest web1: interfaces[0].mac '00:16:3e:12:34' is not a MAC address of six hex octets"
        " like 00:16:3e:12:34:56.",
    ),
    (
        "multicast MAC",
        {"interfaces": [{"mac": "01:00:5E:00:00:01"}]},
        "Guest web1: interfaces[0].mac 01:00:5e:00:00:01 is a multicast address; the first"
        " octet must be even.",
    ),
    (
        "address without prefix",
        {"interfaces": [{"ipv4": {"address": "192.0.2.10"}}]},
        "Guest web1: interfaces[0].ipv4.address '192.0.2.10' is not an IPv4 address with a"
        " prefix, like 192.0.2.10/24.",
    ),
    (
        "bad prefix",
        {"interfaces": [{"ipv4": {"address": "192.0.2.10/33"}}]},
        "Guest web1: interfaces[0].ipv4.address '192.0.2.10/33' is not an IPv4 address with a"
        " prefix, like 192.0.2.10/24.",
    ),
    (
        "IPv4 address given as IPv6",
        {"interfaces": [{"ipv6": {"address": "192.0.2.10/24"}}]},
        "Guest web1: interfaces[0].ipv6.address '192.0.2.10/24' is not an IPv6 address with a"
        " prefix, like 2001:db8::10/64.",
    ),
    (
        "network address",
        {"interfaces": [{"ipv4": {"address": "192.0.2.0/24"}}]},
        "Guest web1: interfaces[0].ipv4.address 192.0.2.0/24 is the network or broadcast"
        " address of 192.0.2.0/24.",
    ),
    (
        "gateway outside the subnet",
        {"interfaces": [{"ipv4": {"address": "192.0.2.10/24", "gateway": "198.51.100.1"}}]},
        "Guest web1: interfaces[0].ipv4.gateway 198.51.100.1 is outside the subnet 192.0.2.0/24.",
    ),
    (
        "IPv6 gateway outside the subnet",
        {"interfaces": [{"ipv6": {"address": "2001:db8::10/64", "gateway": "2001:db9::1"}}]},
        "Guest web1: interfaces[0].ipv6.gateway 2001:db9::1 is outside the subnet 2001:db8::/64.",
    ),
    (
        "gateway is not an address",
        {"interfaces": [{"ipv4": {"address": "192.0.2.10/24", "gateway": "router"}}]},
        "Guest web1: interfaces[0].ipv4.gateway 'router' is not an IPv4 address.",
    ),
    (
        "address neither dhcp nor mapping",
        {"interfaces": [{"ipv4": "auto"}]},
        "Guest web1: interfaces[0].ipv4 must be 'dhcp' or a mapping with address and optional"
        " gateway.",
    ),
    (
        "no os",
        {"os": None},
        "Guest web1: os is missing; set os.release (trixie or bookworm), os.image with"
        " os.checksum, or os.iso (hvm only).",
    ),
    (
        "two os sources",
        {"os": {"release": "trixie", "iso": "/srv/x.iso"}},
        "Guest web1: os sets release and iso; set exactly one of release, image, iso.",
    ),
    (
        "unknown release",
        {"os": {"release": "sid"}},
        "Guest web1: os.release 'sid' is not one of trixie, bookworm.",
    ),
    (
        "iso on pvh",
        {"os": {"iso": "/srv/x.iso"}},
        "Guest web1: os.iso needs type hvm, not pvh; PV and PVH guests cannot boot an"
        " installer ISO.",
    ),
    (
        "bad checksum",
        {"os": {"image": "/srv/trixie.raw", "checksum": "md5:abc"}},
        "Guest web1: os.checksum 'md5:abc' must be 'sha256:' and 64 hex digits"
        " (or 'sha512:' and 128).",
    ),
    (
        "downloaded image without checksum",
        {"os": {"image": "https://example.org/trixie.raw"}},
        "Guest web1: os.image is a URL; set os.checksum ('sha256:...') so the download is"
        " verified.",
    ),
    (
        "ssh key with a newline",
        {"ssh_authorized_keys": [KEY + "\n" + KEY]},
        "Guest web1: ssh_authorized_keys[0] is not a one-line public key.",
    ),
    (
        "ssh key of a type sshd refuses",
        {"ssh_authorized_keys": [KEY, "ssh-dss AAAAB3NzaC1kc3MAAACBAP admin@example.org"]},
        "Guest web1: ssh_authorized_keys[1] starts with 'ssh-dss', which is not a key type: use"
        " one of ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384,"
        " ecdsa-sha2-nistp521, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com.",
    ),
    (
        "ssh key without its type",
        {"ssh_authorized_keys": [KEY.split()[1]]},
        "Guest web1: ssh_authorized_keys[0] starts with 'AAAAC3NzaC1lZDI1NTE5AAAAIH9t6Hx30C0Ni...',"
        " which is not a key type: use one of ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256,"
        " ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, sk-ssh-ed25519@openssh.com,"
        " sk-ecdsa-sha2-nistp256@openssh.com.",
    ),
    (
        "ssh key type alone",
        {"ssh_authorized_keys": ["ssh-ed25519"]},
        "Guest web1: ssh_authorized_keys[0] has the key type ssh-ed25519 but no key after it.",
    ),
    (
        "ssh key that lost a character",
        {"ssh_authorized_keys": [KEY.replace("vK admin", "v admin")]},
        "Guest web1: ssh_authorized_keys[0] has an ssh-ed25519 key whose body is not valid base64.",
    ),
    (
        "ssh key cut short",
        {"ssh_authorized_keys": [KEY.replace("BFvK admin", " admin")]},
        "Guest web1: ssh_authorized_keys[0] is not a whole ssh-ed25519 key: its body is cut"
        " short or has bytes left over.",
    ),
    (
        "ssh key of another type than it says",
        {"ssh_authorized_keys": ["ssh-rsa " + KEY.split(" ", 1)[1]]},
        "Guest web1: ssh_authorized_keys[0] says ssh-rsa, but its body is a key of type"
        " ssh-ed25519.",
    ),
    (
        "ssh key with an option sshd does not know",
        {"ssh_authorized_keys": ["no-agent-forwading " + KEY]},
        "Guest web1: ssh_authorized_keys[0] has 'no-agent-forwading' before its key type, which"
        " is not an option sshd knows.",
    ),
    (
        "ssh key with an option value without quotes",
        {"ssh_authorized_keys": ["no-pty,from=192.0.2.0/24 " + KEY]},
        "Guest web1: ssh_authorized_keys[0] has 'from=192.0.2.0/24' before its key type, which"
        " is not an option sshd knows.",
    ),
    (
        "ssh key options with a quote never closed",
        {"ssh_authorized_keys": ['from="192.0.2.0/24 ' + KEY]},
        "Guest web1: ssh_authorized_keys[0] has options with a double quote that is never closed.",
    ),
    (
        "no ssh key",
        {"ssh_authorized_keys": []},
        "Guest web1: no SSH key would let anyone log in; set ssh_authorized_keys or"
        " xen_guests_ssh_authorized_keys, or console_only: true for a guest reached only on its"
        " console.",
    ),
    (
        "console only with ssh keys",
        {"console_only": True},
        "Guest web1: console_only is true but ssh_authorized_keys lists keys; a console-only"
        " guest gets no SSH key, so leave out one or the other.",
    ),
    (
        "console only as text",
        {"console_only": "yes", "ssh_authorized_keys": []},
        "Guest web1: console_only is 'yes'; use true or false.",
    ),
    (
        "template with a path",
        {"template": "../secret.j2"},
        "Guest web1: template '../secret.j2' must be a file name under templates/ (letters,"
        " digits, '.', '_', '-'), without slashes or '..'.",
    ),
    (
        "unknown interface key",
        {"interfaces": [{"brige": "xenbr0"}]},
        "Guest web1: unknown key 'brige' in interfaces[0] (did you mean 'bridge'?).",
    ),
    (
        "unknown reboot action",
        {"on_reboot": "reboot"},
        "Guest web1: on_reboot 'reboot' is not one of destroy, restart, rename-restart, preserve,"
        " coredump-destroy, coredump-restart.",
    ),
    (
        "soft-reset as crash action",
        {"on_crash": "soft-reset"},
        "Guest web1: on_crash 'soft-reset' is not one of destroy, restart, rename-restart,"
        " preserve, coredump-destroy, coredump-restart.",
    ),
    (
        "unknown tsc mode",
        {"type": "hvm", "tsc_mode": "native_paravirt"},
        "Guest web1: tsc_mode 'native_paravirt' is not one of default, always_emulate, native.",
    ),
    (
        "tsc mode on pvh",
        {"tsc_mode": "native"},
        "Guest web1: tsc_mode applies only to type hvm, not pvh; leave it out for PV and PVH"
        " guests.",
    ),
    (
        "root disk smaller than the release image",
        {"disks": [{"size": "1G"}]},
        "Guest web1: disks[0].size is 1024 MiB, smaller than the 2048 MiB image of"
        " os.release trixie it is copied from.",
    ),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_each_bad_setting_gives_one_exact_message(change: dict[str, Any], message: str) -> None:
    assert gp.validate_guests([guest(**change)], lab_host()) == [message]


def test_hvm_and_pvh_need_hardware_virtualisation() -> None:
    no_caps = lab_host(virt_caps="pv gnttab-v1 gnttab-v2")
    assert gp.validate_guests([guest(type="hvm", os={"iso": "/x.iso"})], no_caps) == [
        "Guest web1: type hvm needs Xen's hvm capability, but xl info shows virt_caps"
        " 'pv gnttab-v1 gnttab-v2'."
    ]
    no_vmx = lab_host(cpu_flags=["fpu", "sse2"])
    assert gp.validate_guests([guest()], no_vmx) == [
        "Guest web1: type pvh needs VT-x or AMD-V, but the CPU flags have neither vmx nor svm."
    ]
    assert gp.validate_guests([guest(type="pv")], no_caps | no_vmx) == []


def test_pvh_needs_a_paging_mode_which_trixies_xen_lacks_without_npt() -> None:
    # Real xl info of the trixie lab dom0 (qemu64,+svm: no NPT): Xen 4.20 is
    # built without shadow paging, so `xl create` of a PVH guest fails there.
    trixie = parse_xl_info((DATA / "xl-info-trixie.txt").read_text())
    host = lab_host(virt_caps=trixie["virt_caps"])
    assert gp.validate_guests([guest()], host) == [
        "Guest web1: type pvh needs hardware-assisted (hap) or shadow paging, but xl info"
        " shows virt_caps 'pv hvm gnttab-v1 gnttab-v2' with neither: this Xen has no paging"
        " mode for PVH/HVM guests on this CPU."
    ]
    assert gp.validate_guests([guest(type="pv")], host) == []
    assert gp.validate_guests([guest()], lab_host(virt_caps="pv hvm hap gnttab-v1")) == []


def test_duplicates_across_the_list_name_both_guests() -> None:
    guests = [
        guest(),
        guest(name="web1"),
        guest(
            name="web2",
            interfaces=[
                {"mac": gp.stable_mac("web1", 0), "ipv4": {"address": "192.0.2.10/24"}},
                {"ipv6": {"address": "2001:db8::1/64"}},
                {"ipv6": {"address": "2001:db8::1/64"}},
            ],
            disks=[{"size": "5G", "name": "root"}, {"size": "5G", "name": "root"}],
        ),
    ]
    path = "/var/lib/xen/images/web2-root.img"
    assert gp.validate_guests(guests, lab_host()) == [
        "Guest web1: the name is used by more than one guest; names must be unique.",
        f"Guest web2: MAC {gp.stable_mac('web1', 0)} is also used by guest web1.",
        "Guest web2: ipv4 address 192.0.2.10 is also used by guest web1.",
        "Guest web2: ipv6 address 2001:db8::1 is also used by guest web2.",
        f"Guest web2: disk path {path} is also used by guest web2.",
    ]


def test_running_guests_must_fit_in_what_xen_can_give() -> None:
    big = [guest(memory="1G"), guest(name="db1", memory="1G", interfaces=[])]
    assert gp.validate_guests(big, lab_host()) == [
        "xen_guests_list: the guests with state running need 2048 MiB of memory, but Xen can give"
        " them only 2014 MiB; lower their memory or stop some of them."
    ]
    # web1 already runs and holds 512 MiB that it keeps.
    assert gp.validate_guests(big, lab_host(existing_domains={"web1": 512})) == []
    # Stopped guests need no memory.
    big[1]["state"] = "stopped"
    assert gp.validate_guests(big, lab_host()) == []


def test_every_problem_is_reported_at_once() -> None:
    guests = [guest(vcpus=0, memory=64), "web2", {"type": "pv"}]
    assert gp.validate_guests(guests, lab_host()) == [
        "Guest web1: vcpus 0 is below 1.",
        "Guest web1: memory 64 MiB is below the minimum of 128 MiB.",
        "xen_guests_list entry 1 is not a mapping of guest settings.",
        "xen_guests_list entry 2 has no name.",
    ]


def test_stable_mac_is_deterministic_unicast_and_in_the_xen_range() -> None:
    assert gp.stable_mac("web1", 0) == gp.stable_mac("web1", 0) == "00:16:3e:6e:1d:7e"
    macs = {gp.stable_mac(f"guest{n}", i) for n in range(200) for i in range(3)}
    assert len(macs) == 600
    for mac in macs:
        assert re.fullmatch(r"00:16:3e:[0-7][0-9a-f](:[0-9a-f]{2}){2}", mac), mac


def test_plan_fills_in_defaults_and_paths() -> None:
    planned = gp.plan_guests(
        [
            guest(
                type="pv",
                memory="1G",
                maxmem="2G",
                vcpus=2,
                disks=[{"size": "10G"}, {"size": "20G", "backend": "lvm", "vg": "vg0"}],
                interfaces=[
                    {"ipv4": {"address": "192.0.2.10/24", "gateway": "192.0.2.1"}},
                    {"bridge": "xenbr1"},
                ],
            )
        ],
        lab_host(),
        {"disk_dir": "/srv/xen/", "nameservers": ["192.0.2.53"]},
    )
    web1 = planned[0]
    assert (web1["memory_mib"], web1["maxmem_mib"], web1["vcpus"]) == (1024, 2048, 2)
    assert [d["path"] for d in web1["disks"]] == ["/srv/xen/web1-root.img", "/dev/vg0/web1-disk1"]
    assert [d["vdev"] for d in web1["disks"]] == ["xvda", "xvdb"]
    assert web1["disks"][1]["lv"] == "web1-disk1"
    assert web1["disks"][0]["size_mib"] == 10240
    assert web1["macs"] == [gp.stable_mac("web1", 0), gp.stable_mac("web1", 1)]
    assert web1["interfaces"][0]["ipv4"] == {
        "dhcp": False,
        "address": "192.0.2.10",
        "prefix": 24,
        "cidr": "192.0.2.10/24",
        "gateway": "192.0.2.1",
    }
    # An interface without addresses asks for an IPv4 lease.
    assert web1["interfaces"][1]["ipv4"] == {"dhcp": True}
    assert web1["interfaces"][1]["bridge"] == "xenbr1"
    assert web1["config_path"] == "/etc/xen/web1.cfg"
    assert web1["autostart_path"] == "/etc/xen/auto/web1.cfg"
    assert web1["seed_files"]["meta-data"] == "/var/lib/xen/seeds/web1/meta-data"
    assert web1["seed_image"] == "/var/lib/xen/seeds/web1/seed.iso"
    assert web1["seed_vdev"] == "xvdz"
    assert web1["template"] == "xl/pv.cfg.j2"
    assert web1["nameservers"] == ["192.0.2.53"]
    assert web1["cloud_init"] is True
    assert (web1["state"], web1["autostart"], web1["purge"]) == ("running", True, False)


def test_plan_defaults_for_a_minimal_guest() -> None:
    (g,) = gp.plan_guests(
        [{"name": "tiny", "os": {"release": "bookworm"}}], {}, {"ssh_authorized_keys": [KEY]}
    )
    assert (g["type"], g["memory_mib"], g["vcpus"]) == ("pvh", 512, 1)
    assert g["disks"][0]["path"] == "/var/lib/xen/images/tiny-root.img"
    assert g["interfaces"][0]["bridge"] == "xenbr0"
    assert (g["ssh_authorized_keys"], g["console_only"]) == ([KEY], False)


def test_hvm_disks_leave_room_for_the_emulated_cdroms() -> None:
    (g,) = gp.plan_guests(
        [guest(type="hvm", disks=[{"size": "1G"}] * 3, os={"iso": "/srv/x.iso"})], lab_host()
    )
    assert [d["vdev"] for d in g["disks"]] == ["xvda", "xvdb", "xvde"]
    assert (g["iso_vdev"], g["cloud_init"], g["template"]) == ("hdc", False, "xl/hvm.cfg.j2")


def test_instance_id_is_stable_per_name() -> None:
    (a,) = gp.plan_guests([guest()], lab_host())
    (b,) = gp.plan_guests([guest(memory="1G")], lab_host())
    assert a["instance_id"] == b["instance_id"] == gp.instance_id("web1")
    assert re.fullmatch(r"iid-[0-9a-f]{16}", a["instance_id"])
    assert gp.instance_id("web2") != a["instance_id"]


def test_plan_refuses_invalid_guests_with_every_message() -> None:
    with pytest.raises(ValueError, match="vcpus 0 is below 1") as err:
        gp.plan_guests([guest(vcpus=0, memory=64)], lab_host())
    assert len(str(err.value).splitlines()) == 2


def test_root_disk_must_hold_the_release_image_it_is_copied_from() -> None:
    host = lab_host()
    assert gp.validate_guests([guest(disks=[{"size": "2G"}])], host) == []
    assert gp.validate_guests(
        [guest(disks=[{"size": "2047M"}], os={"release": "bookworm"})], host
    ) == [
        "Guest web1: disks[0].size is 2047 MiB, smaller than the 2048 MiB image of"
        " os.release bookworm it is copied from."
    ]
    # Only the first disk is copied from the image; data disks may be small.
    assert gp.validate_guests([guest(disks=[{"size": "4G"}, {"size": "100M"}])], host) == []
    # An HVM guest from a release is copied from the same image.
    assert gp.validate_guests([guest(type="hvm", disks=[{"size": "1G"}])], host) == [
        "Guest web1: disks[0].size is 1024 MiB, smaller than the 2048 MiB image of"
        " os.release trixie it is copied from."
    ]
    # User-supplied images and installer ISOs have no known size to compare with.
    small = [{"size": "1G"}]
    assert gp.validate_guests([guest(disks=small, os={"image": "/srv/a.raw"})], host) == []
    assert (
        gp.validate_guests([guest(type="hvm", disks=small, os={"iso": "/srv/x.iso"})], host) == []
    )
    # The role passes the image size as text (the result of a Jinja expression).
    assert gp.validate_guests(
        [guest(disks=[{"size": "3G"}])], host, {"image_size_mib": "4096"}
    ) == [
        "Guest web1: disks[0].size is 3072 MiB, smaller than the 4096 MiB image of"
        " os.release trixie it is copied from."
    ]
    assert gp.validate_guests([guest(disks=small)], host, {"image_size_mib": 1024}) == []


def test_every_guest_gets_the_default_keys_first_then_its_own_each_once() -> None:
    admin = KEYS["ssh-ed25519"]
    backup = KEYS["ssh-rsa"]
    own = KEYS["ecdsa-sha2-nistp256"].replace("admin@", "dev@")
    defaults = {"ssh_authorized_keys": [admin, backup]}
    (g,) = gp.plan_guests([guest(ssh_authorized_keys=[own, admin + "\n"])], lab_host(), defaults)
    assert g["ssh_authorized_keys"] == [admin, backup, own]
    (g,) = gp.plan_guests(
        [{"name": "tiny", "os": {"release": "trixie"}, "ssh_authorized_keys": [own, own]}],
        {},
        {"ssh_authorized_keys": [backup]},
    )
    assert g["ssh_authorized_keys"] == [backup, own]
    (g,) = gp.plan_guests([{"name": "tiny", "os": {"release": "trixie"}}], {}, defaults)
    assert g["ssh_authorized_keys"] == [admin, backup]


def test_lvm_disks_name_the_copy_record_of_version_1_0_0_and_file_disks_none() -> None:
    (g,) = gp.plan_guests(
        [
            guest(
                disks=[
                    {"size": "10G", "backend": "lvm", "vg": "vg0"},
                    {"size": "5G"},
                    {"size": "20G", "backend": "lvm", "vg": "vg0", "name": "data"},
                    {"size": "1G", "name": "swap"},
                ]
            )
        ],
        lab_host(),
        {"disk_dir": "/srv/xen/"},
    )
    assert [(d["path"], d["legacy_marker"]) for d in g["disks"]] == [
        ("/dev/vg0/web1-root", "/srv/xen/web1-root.copied"),
        ("/srv/xen/web1-disk1.img", None),
        ("/dev/vg0/web1-data", "/srv/xen/web1-data.copied"),
        ("/srv/xen/web1-swap.img", None),
    ]


@pytest.mark.parametrize("gtype", ["pv", "pvh"])
def test_pv_and_pvh_from_a_release_boot_its_kernel_directly(gtype: str) -> None:
    (g,) = gp.plan_guests([guest(type=gtype)], lab_host())
    assert g["direct_boot"] is True
    assert g["boot_dir"] == "/var/lib/xen/boot/web1"
    assert g["kernel"] == "/var/lib/xen/boot/web1/vmlinuz"
    assert g["ramdisk"] == "/var/lib/xen/boot/web1/initrd.img"
    assert g["cmdline"] == "root=/dev/xvda1 ro console=hvc0"


def test_direct_boot_follows_the_boot_dir_and_kernel_extra_settings() -> None:
    (g,) = gp.plan_guests(
        [guest(type="pv")],
        lab_host(),
        {"boot_dir": "/srv/boot/", "kernel_extra": "console=hvc0 quiet"},
    )
    assert (g["boot_dir"], g["kernel"], g["ramdisk"], g["cmdline"]) == (
        "/srv/boot/web1",
        "/srv/boot/web1/vmlinuz",
        "/srv/boot/web1/initrd.img",
        "root=/dev/xvda1 ro console=hvc0 quiet",
    )
    (g,) = gp.plan_guests([guest()], lab_host(), {"kernel_extra": ""})
    assert g["cmdline"] == "root=/dev/xvda1 ro"


@pytest.mark.parametrize(
    ("gtype", "os"),
    [
        ("hvm", {"release": "trixie"}),
        ("hvm", {"iso": "/srv/iso/installer.iso"}),
        ("pv", {"image": "/srv/images/trixie.raw"}),
        ("pvh", {"image": "https://example.org/trixie.qcow2", "checksum": SHA}),
    ],
    ids=["hvm-release", "hvm-iso", "pv-image", "pvh-image-url"],
)
def test_hvm_guests_and_image_guests_boot_without_a_kernel_of_ours(
    gtype: str, os: dict[str, str]
) -> None:
    (g,) = gp.plan_guests([guest(type=gtype, os=os)], lab_host())
    assert g["direct_boot"] is False
    # PV and PVH guests from an image boot grub-xen-host's GRUB; HVM guests their disk.
    grub = {
        "hvm": None,
        "pv": "/usr/lib/grub-xen/grub-x86_64-xen.bin",
        "pvh": "/usr/lib/grub-xen/grub-i386-xen_pvh.bin",
    }[gtype]
    assert (g["kernel"], g["ramdisk"], g["cmdline"]) == (grub, None, None)
    # The folder is named anyway; the role makes it only for direct-boot guests.
    assert g["boot_dir"] == "/var/lib/xen/boot/web1"


def test_the_grub_images_come_from_the_settings_and_must_be_absolute_paths() -> None:
    image = {"image": "/srv/a.raw"}
    settings = {"pv_kernel": "/opt/pv.bin", "pvh_kernel": "grub.bin"}
    guests = [guest(type="pv", os=image), guest(name="web2", type="pvh", os=image, interfaces=[])]
    assert gp.validate_guests(guests, lab_host(), settings) == [
        "Guest web2: xen_guests_pvh_kernel 'grub.bin' is not an absolute path on the dom0."
    ]
    (g,) = gp.plan_guests(guests[:1], lab_host(), settings)
    assert g["kernel"] == "/opt/pv.bin"
    # Guests that boot no GRUB image never trip over it.
    assert gp.validate_guests([guest()], lab_host(), {"pvh_kernel": ""}) == []


def test_event_actions_and_tsc_mode_come_from_the_guest_else_the_settings() -> None:
    hvm = guest(type="hvm", os={"iso": "/srv/x.iso"})
    (g,) = gp.plan_guests([hvm], lab_host())
    assert (g["on_reboot"], g["on_crash"], g["tsc_mode"]) == ("restart", "restart", None)
    settings = {"on_reboot": "destroy", "on_crash": "preserve", "tsc_mode": "native"}
    (g,) = gp.plan_guests([hvm], lab_host(), settings)
    assert (g["on_reboot"], g["on_crash"], g["tsc_mode"]) == ("destroy", "preserve", "native")
    own = {**hvm, "on_crash": "coredump-restart", "tsc_mode": "always_emulate"}
    (g,) = gp.plan_guests([own], lab_host(), settings)
    assert (g["on_reboot"], g["on_crash"], g["tsc_mode"]) == (
        "destroy",
        "coredump-restart",
        "always_emulate",
    )
    # The TSC mode of the settings is for HVM guests: a PVH guest gets none.
    (g,) = gp.plan_guests([guest()], lab_host(), settings)
    assert g["tsc_mode"] is None


def test_a_bad_role_default_is_named_as_the_role_setting() -> None:
    settings = {"on_crash": "reset", "tsc_mode": "fast"}
    assert gp.validate_guests([guest(type="hvm", os={"iso": "/x.iso"})], lab_host(), settings) == [
        "Guest web1: xen_guests_default_on_crash 'reset' is not one of destroy, restart,"
        " rename-restart, preserve, coredump-destroy, coredump-restart.",
        "Guest web1: xen_guests_default_tsc_mode 'fast' is not one of default, always_emulate,"
        " native.",
    ]


def test_guests_that_stay_need_the_device_model_if_hvm_and_qemu_img_if_from_an_image() -> None:
    image = {"image": "/srv/images/custom.img"}
    guests = [
        guest(),
        guest(name="pv1", type="pv", interfaces=[]),
        guest(name="win1", type="hvm", os={"iso": "/srv/x.iso"}, interfaces=[]),
        guest(name="old1", type="hvm", state="absent", interfaces=[]),
        guest(name="img1", os=image, state="stopped", interfaces=[]),
        guest(name="img2", type="hvm", os=image, state="stopped", interfaces=[]),
        guest(name="img3", os=image, state="absent", interfaces=[]),
    ]
    planned = gp.plan_guests(guests, lab_host())
    assert {g["name"]: g["dom0_packages"] for g in planned} == {
        "web1": [],
        "pv1": [],
        "win1": ["qemu-system-xen"],
        "old1": [],
        "img1": ["qemu-utils"],
        "img2": ["qemu-system-xen", "qemu-utils"],
        "img3": [],
    }


@pytest.mark.parametrize(
    ("args", "bridge"),
    [
        # The dom0's own setting wins over everything.
        (("xenbr-int", {"default_bridge": "xenbr1"}, "xenbr2", None), "xenbr-int"),
        # The xen_network role ran earlier in the run: its facts.
        (("", {"default_bridge": "xenbr1"}, "xenbr2", None), "xenbr1"),
        # Else the xen_network role's settings, as its planner reads them.
        (("", None, "xenbr2", [{"name": "xenbr0", "primary": True}]), "xenbr2"),
        (("", {}, "", [{"name": "br-lan"}, {"name": "br-wan", "primary": True}]), "br-wan"),
        (("", None, "", [{"name": "br-lan"}, {"name": "br-wan"}]), "br-lan"),
        # Else the xen_network role's own default bridges: one primary xenbr0.
        (("", None, "", None), "xenbr0"),
        ((), "xenbr0"),
    ],
)
def test_the_default_bridge_follows_the_network_role(args: tuple[Any, ...], bridge: str) -> None:
    assert gp.default_bridge(*args) == bridge


def test_a_bad_key_every_guest_gets_is_named_once_as_the_role_setting() -> None:
    guests = [guest(ssh_authorized_keys=[]), guest(name="db1", interfaces=[])]
    assert gp.validate_guests(guests, lab_host(), {"ssh_authorized_keys": ["ssh-ed25519"]}) == [
        "xen_guests_ssh_authorized_keys[0] has the key type ssh-ed25519 but no key after it."
    ]


def test_authorized_keys_options_are_kept_as_written() -> None:
    restricted = f'from="192.0.2.0/24",no-agent-forwarding,command="uptime" {KEY}'
    (g,) = gp.plan_guests([guest(ssh_authorized_keys=[restricted])], lab_host())
    assert g["ssh_authorized_keys"] == [restricted]


def test_the_keys_every_guest_gets_are_enough() -> None:
    (g,) = gp.plan_guests(
        [guest(ssh_authorized_keys=[])], lab_host(), {"ssh_authorized_keys": [KEY]}
    )
    assert (g["ssh_authorized_keys"], g["console_only"]) == ([KEY], False)


def test_a_console_only_guest_gets_no_ssh_key_not_even_those_of_every_guest() -> None:
    settings = {"ssh_authorized_keys": [KEY]}
    (g,) = gp.plan_guests([guest(ssh_authorized_keys=[], console_only=True)], lab_host(), settings)
    assert (g["ssh_authorized_keys"], g["console_only"]) == ([], True)
    (g,) = gp.plan_guests([guest(console_only=True, ssh_authorized_keys=None)], lab_host())
    assert (g["ssh_authorized_keys"], g["console_only"]) == ([], True)


def test_guests_that_boot_no_cloud_init_or_are_gone_need_no_key() -> None:
    guests = [
        guest(name="win1", type="hvm", os={"iso": "/srv/x.iso"}, ssh_authorized_keys=[]),
        guest(name="old1", state="absent", os=None, ssh_authorized_keys=[], interfaces=[]),
        guest(name="old2", state="absent", ssh_authorized_keys=[], interfaces=[]),
    ]
    assert gp.validate_guests(guests, lab_host()) == []


def test_without_the_keys_every_guest_gets_no_key_is_required() -> None:
    # The inventory plugin reads no keys: whether a guest has one is not its question.
    lone = [guest(ssh_authorized_keys=[])]
    assert gp.validate_guests(lone, {}, {"ssh_authorized_keys": None}) == []
    assert gp.validate_guests(lone, {}) == [
        "Guest web1: no SSH key would let anyone log in; set ssh_authorized_keys or"
        " xen_guests_ssh_authorized_keys, or console_only: true for a guest reached only on its"
        " console."
    ]


# --- guests of several dom0s --------------------------------------------------------------


def dom0(*guests: dict[str, Any], **entry: Any) -> dict[str, Any]:
    return {"guests": list(guests), "settings": {"bridge": "xenbr0"}, **entry}


def static(address: str, bridge: str = "xenbr0", **kw: Any) -> list[dict[str, Any]]:
    return [{"bridge": bridge, "ipv4": {"address": address}, **kw}]


def test_guests_of_different_dom0s_that_share_nothing_pass() -> None:
    fleet = {
        "hv1": dom0(guest(), guest(name="db1", interfaces=static("192.0.2.11/24"))),
        "hv2": dom0(
            guest(name="web2", interfaces=static("192.0.2.12/24")),
            guest(name="dhcp1", interfaces=[{}]),
        ),
    }
    assert gp.validate_fleet(fleet) == {}


def test_a_name_on_two_dom0s_is_refused_on_each_of_them() -> None:
    fleet = {
        "hv1": dom0(guest()),
        "hv2": dom0(guest(interfaces=static("192.0.2.20/24"))),
        "hv3": dom0(guest(interfaces=[{}])),
    }
    message = (
        "Guest web1 on {dom0}: dom0 {other} has a guest of that name too; a name is the guest's"
        " host name and inventory name, so it must be unique across the dom0s of the play."
    )
    # Their stable MACs are the same too: the name is the one thing to fix.
    assert gp.validate_fleet(fleet) == {
        "hv1": [message.format(dom0="hv1", other="hv2")],
        "hv2": [message.format(dom0="hv2", other="hv1")],
        "hv3": [message.format(dom0="hv3", other="hv1")],
    }


def test_a_mac_on_two_dom0s_is_refused_whatever_the_bridges() -> None:
    mac = "02:00:00:00:00:01"
    fleet = {
        "hv1": dom0(guest(interfaces=[{"mac": mac}])),
        "hv2": dom0(guest(name="web2", interfaces=[{"mac": "02:00:00:00:00:02"}, {"mac": mac}])),
    }
    message = (
        "Guest {name} on {dom0}: MAC 02:00:00:00:00:01 is also used by guest {owner} on {other};"
        " a MAC must be unique across the dom0s of the play."
    )
    assert gp.validate_fleet(fleet) == {
        "hv1": [message.format(name="web1", dom0="hv1", owner="web2", other="hv2")],
        "hv2": [message.format(name="web2", dom0="hv2", owner="web1", other="hv1")],
    }


def test_a_static_address_on_bridges_of_the_same_name_is_refused() -> None:
    fleet = {
        "hv1": dom0(guest(interfaces=static("192.0.2.10/24"))),
        # The same address with another prefix is the same address on the wire.
        "hv2": dom0(guest(name="web2", interfaces=static("192.0.2.10/16"))),
        # An interface that names no bridge is on the dom0's default bridge.
        "hv3": dom0(guest(name="web3", interfaces=[{"ipv4": {"address": "192.0.2.10/24"}}])),
    }
    message = (
        "Guest {name} on {dom0}: ipv4 address 192.0.2.10 on bridge xenbr0 is also used by guest"
        " {owner} on {other}; bridges of the same name on two dom0s are taken to be one network."
    )
    assert gp.validate_fleet(fleet) == {
        "hv1": [message.format(name="web1", dom0="hv1", owner="web2", other="hv2")],
        "hv2": [message.format(name="web2", dom0="hv2", owner="web1", other="hv1")],
        "hv3": [message.format(name="web3", dom0="hv3", owner="web1", other="hv1")],
    }


def test_a_static_ipv6_address_is_compared_like_ipv4() -> None:
    six = [{"ipv6": {"address": "2001:db8::10/64"}}]
    fleet = {"hv1": dom0(guest(interfaces=six)), "hv2": dom0(guest(name="web2", interfaces=six))}
    assert gp.validate_fleet(fleet)["hv2"] == [
        "Guest web2 on hv2: ipv6 address 2001:db8::10 on bridge xenbr0 is also used by guest"
        " web1 on hv1; bridges of the same name on two dom0s are taken to be one network."
    ]


def test_one_address_on_other_bridges_or_host_only_ones_is_another_network() -> None:
    host_only = [{"name": "xenbr0", "primary": True}, {"name": "xenbr-int"}]
    fleet = {
        "hv1": dom0(
            guest(interfaces=static("10.0.0.5/24", "xenbr-int")),
            guest(name="db1", interfaces=static("192.0.2.10/24", "xenbr1")),
            network_bridges=host_only,
        ),
        "hv2": dom0(
            guest(name="web2", interfaces=static("10.0.0.5/24", "xenbr-int")),
            guest(name="db2", interfaces=static("192.0.2.10/24", "xenbr2")),
            network_bridges=host_only,
        ),
    }
    assert gp.validate_fleet(fleet) == {}
    # Host-only on one dom0 is enough: its guests reach no other dom0's.
    fleet["hv2"]["network_bridges"] = [{"name": "xenbr-int", "ports": ["eth1"]}]
    assert gp.validate_fleet(fleet) == {}
    del fleet["hv1"]["network_bridges"]
    assert gp.validate_fleet(fleet)["hv2"] == [
        "Guest web2 on hv2: ipv4 address 10.0.0.5 on bridge xenbr-int is also used by guest"
        " web1 on hv1; bridges of the same name on two dom0s are taken to be one network."
    ]


def test_a_guest_can_move_to_another_dom0_in_one_run() -> None:
    fleet = {
        "hv1": dom0(guest(state="absent", interfaces=static("192.0.2.10/24"))),
        "hv2": dom0(guest(interfaces=static("192.0.2.10/24"))),
    }
    assert gp.validate_fleet(fleet) == {}
    # A stopped guest keeps its name and addresses.
    fleet["hv1"]["guests"][0]["state"] = "stopped"
    assert set(gp.validate_fleet(fleet)) == {"hv1", "hv2"}


def test_a_fleet_check_leaves_each_dom0s_own_problems_to_its_own_check() -> None:
    fleet = {
        "hv1": dom0(guest(), guest(), "not a guest", guest(name="Bad_Name", vcpus=0)),
        "hv2": dom0(guest(name="db1", interfaces=static("192.0.2.10/24"))),
        "hv3": {"guests": "{{ guests }}"},
    }
    assert gp.validate_fleet(fleet)["hv2"] == [
        "Guest db1 on hv2: ipv4 address 192.0.2.10 on bridge xenbr0 is also used by guest"
        " web1 on hv1; bridges of the same name on two dom0s are taken to be one network."
    ]
    assert set(gp.validate_fleet(fleet)) == {"hv1", "hv2"}


# --- the guest lists this repository ships ----------------------------------------------

ROOT = Path(__file__).parents[2]
SHIPPED = [
    "inventory/sample/group_vars/xen_dom0s/guests.yml",
    "inventory/lab/group_vars/xen_dom0s/guests.yml",
    "examples/iac-repo/inventory/group_vars/xen_dom0s/guests.yml",
    "tests/e2e/bookworm/group_vars/xen_dom0s/guests.yml",
    "tests/e2e/trixie/group_vars/xen_dom0s/guests.yml",
]


def role_readme_example() -> dict[str, Any]:
    text = (ROOT / "roles/xen_guests/README.md").read_text().split("## Example", 1)[1]
    play = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    return play[0]["roles"][0]["vars"]


@pytest.mark.parametrize("path", [*SHIPPED, "roles/xen_guests/README.md"])
def test_every_guest_list_this_repository_ships_is_valid(path: str) -> None:
    if path.endswith("README.md"):
        settings = role_readme_example()
    else:
        settings = yaml.safe_load((ROOT / path).read_text())
    # The lab and the end-to-end scenarios give the guests the harness's key, read from
    # its .pub file at run time: an ed25519 key made by ssh-keygen (lab/xenlab/vm.py).
    keys = [KEY if "{{" in key else key for key in settings["xen_guests_ssh_authorized_keys"]]
    defaults = {"ssh_authorized_keys": keys}
    assert gp.validate_guests(settings["xen_guests_list"], {}, defaults) == []


# What the dom0 shows of a user's image: real `qemu-img info --output=json` answers.

QEMU_IMG = json.loads((DATA / "qemu-img-info-bookworm.json").read_text())
IMAGE = "/srv/images/user.img"
URL = "https://example.org/images/user.qcow2"


def image_guests(size: str = "16M", **kw: Any) -> list[dict[str, Any]]:
    return gp.plan_guests(
        [guest(disks=[{"size": size}], os={"image": IMAGE, "checksum": SHA}, **kw)], lab_host()
    )


@pytest.mark.parametrize("name", ["user.raw", "user.qcow2"])
def test_an_image_that_fits_its_root_disk_has_no_problem(name: str) -> None:
    facts = {IMAGE: {"exists": True, "digest": SHA, "info": QEMU_IMG[name]}}
    assert gp.image_problems(image_guests("12M"), facts) == []


@pytest.mark.parametrize("name", ["user.raw", "user.qcow2"])
def test_an_image_larger_than_its_root_disk_is_refused(name: str) -> None:
    # The qcow2 file is 324 KiB; the guest would see 12 MiB.
    facts = {IMAGE: {"exists": True, "info": QEMU_IMG[name]}}
    assert gp.image_problems(image_guests("8M"), facts) == [
        gp.MSG_IMAGE_LARGE.format(name="web1", mib=8, image_mib=12, image=IMAGE)
    ]
    assert gp.image_problems(image_guests("8M"), facts) == [
        "Guest web1: disks[0].size is 8 MiB, smaller than the 12 MiB (virtual size) of os.image"
        " /srv/images/user.img; no disk of the guest was written. Set disks[0].size to at least"
        " 12 MiB."
    ]


@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("overlay.qcow2", "backing file user.raw"),
        ("external.qcow2", "external data file external.raw"),
    ],
)
def test_an_image_that_reads_another_file_is_refused(name: str, other: str) -> None:
    facts = {IMAGE: {"exists": True, "info": QEMU_IMG[name]}}
    assert gp.image_problems(image_guests(), facts) == [
        f"Guest web1: os.image {IMAGE} is a qcow2 image that reads another file ({other});"
        " give a standalone image (qemu-img convert -O qcow2 makes one)."
    ]


def test_an_image_neither_raw_nor_qcow2_is_refused() -> None:
    facts = {IMAGE: {"exists": True, "info": QEMU_IMG["user.vmdk"]}}
    assert gp.image_problems(image_guests(), facts) == [
        f"Guest web1: os.image {IMAGE} is a vmdk image; only raw and qcow2 images are copied"
        " (qemu-img convert -O qcow2 converts it)."
    ]


def test_a_local_image_that_is_missing_or_differs_from_its_checksum_is_refused() -> None:
    assert gp.image_problems(image_guests(), {IMAGE: {"exists": False}}) == [
        f"Guest web1: os.image {IMAGE} does not exist on the dom0."
    ]
    other = "sha256:" + "cd" * 32
    facts = {IMAGE: {"exists": True, "digest": other, "info": QEMU_IMG["user.raw"]}}
    assert gp.image_problems(image_guests(), facts) == [
        f"Guest web1: os.image {IMAGE} has {other}, not os.checksum {SHA}; no disk of the guest"
        " was written."
    ]


def test_a_download_that_failed_or_differs_from_its_checksum_is_named_for_each_guest() -> None:
    guests = gp.plan_guests(
        [
            guest(os={"image": URL, "checksum": SHA}),
            guest(name="web2", os={"image": URL, "checksum": SHA}, interfaces=[{}]),
        ],
        lab_host(),
    )
    other = "sha256:" + "cd" * 32
    facts = {URL: {"download_error": "The checksum ... did not match", "download_digest": other}}
    assert gp.image_problems(guests, facts) == [
        gp.MSG_IMAGE_DOWNLOAD_CHECKSUM.format(name=name, image=URL, actual=other, checksum=SHA)
        for name in ("web1", "web2")
    ]
    assert gp.image_problems(guests, facts)[0] == (
        f"Guest web1: the download of os.image {URL} has {other}, not os.checksum {SHA}; it was"
        " deleted, and no disk of the guest was written. Check that os.image and os.checksum"
        " name the same image."
    )
    facts = {URL: {"download_error": "Request failed: <urlopen error timed out>"}}
    assert gp.image_problems(guests[:1], facts) == [
        f"Guest web1: os.image {URL} could not be downloaded: Request failed: <urlopen error"
        " timed out>"
    ]


def test_an_image_qemu_img_cannot_read_is_refused() -> None:
    error = "qemu-img: Could not open '/srv/images/user.img': Image is not in qcow2 format"
    facts = {IMAGE: {"exists": True, "info_error": error}}
    assert gp.image_problems(image_guests(), facts) == [
        f"Guest web1: qemu-img cannot read os.image {IMAGE}: {error}"
    ]


def test_images_not_yet_known_and_guests_without_an_image_have_no_problem() -> None:
    # Check mode: nothing downloaded and qemu-img not installed yet.
    assert gp.image_problems(image_guests("8M"), {}) == []
    assert gp.image_problems(image_guests("8M"), {IMAGE: {"exists": None}}) == []
    guests = gp.plan_guests(
        [
            guest(),
            guest(name="win1", type="hvm", os={"iso": "/srv/x.iso"}, interfaces=[{}]),
            guest(name="old1", state="absent", interfaces=[{}]),
            guest(
                name="old2",
                state="absent",
                disks=[{"size": "8M"}],
                os={"image": IMAGE},
                interfaces=[{}],
            ),
        ],
        lab_host(),
    )
    facts = {IMAGE: {"exists": True, "info": QEMU_IMG["user.vmdk"]}}
    assert gp.image_problems(guests, facts) == []
