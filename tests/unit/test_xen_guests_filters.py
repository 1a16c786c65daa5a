"""The xen_guests role's filters (filter_plugins/xen_guests.py) on real captured host output
and on guests planned by module_utils/xen_guests_plan.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.filter import xen_guests as fg
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp
from unit.playbooks import run_playbook

DATA = Path(__file__).parent / "data"
SHA = "sha256:" + "ab" * 32
IMAGE_DIR = "/var/lib/xen/golden"
IMAGES = {
    "trixie": f"{IMAGE_DIR}/trixie-0123456789ab",
    "bookworm": f"{IMAGE_DIR}/bookworm-0123456789ab",
}
QCOW2_URL = "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2"
RAW_URL = "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.raw"
# A real public key, made by ssh-keygen.
KEY = next(
    line
    for line in (DATA / "authorized_keys").read_text().splitlines()
    if line.startswith("ssh-ed25519 ")
)

# `ip -j link show type bridge` on a dom0 with two bridges, as iproute2 prints it
# (one line; shortened to two bridges).
IP_LINKS = json.dumps(
    [
        {
            "ifindex": 3,
            "ifname": "xenbr0",
            "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
            "mtu": 1500,
            "qdisc": "noqueue",
            "operstate": "UP",
            "linkmode": "DEFAULT",
            "group": "default",
            "txqlen": 1000,
            "link_type": "ether",
            "address": "52:54:00:12:34:56",
            "broadcast": "ff:ff:ff:ff:ff:ff",
        },
        {
            "ifindex": 5,
            "ifname": "br-lan",
            "flags": ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"],
            "mtu": 1500,
            "qdisc": "noqueue",
            "operstate": "DOWN",
            "linkmode": "DEFAULT",
            "group": "default",
            "txqlen": 1000,
            "link_type": "ether",
            "address": "d2:5a:9f:01:7c:3e",
            "broadcast": "ff:ff:ff:ff:ff:ff",
        },
    ]
)
# `vgs --noheadings -o vg_name`: names right-aligned after two spaces.
VGS = "  vg0\n  data\n"


def text(name: str) -> str:
    return (DATA / name).read_text()


def planned(*guests: dict[str, Any], **defaults: Any) -> list[dict[str, Any]]:
    return gp.plan_guests(list(guests), {}, defaults)


def guest(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "web1",
        "type": "pvh",
        "disks": [{"size": "10G"}],
        "interfaces": [{"ipv4": {"address": "192.0.2.10/24", "gateway": "192.0.2.1"}}],
        "os": {"release": "trixie"},
        "ssh_authorized_keys": [KEY],
    }
    base.update(kw)
    return base


# xen_guests_host


def test_host_facts_from_the_trixie_dom0_with_guests_running() -> None:
    host = fg.xen_guests_host(
        text("xl-info-trixie.txt"), text("xl-list-trixie-guests.txt"), IP_LINKS, VGS
    )
    assert host == {
        "total_memory_mib": 3071,
        "free_memory_mib": 2014,
        "nr_cpus": 2,
        "virt_caps": "pv hvm gnttab-v1 gnttab-v2",
        "cpu_flags": [],
        "bridges": ["br-lan", "xenbr0"],
        "volume_groups": ["data", "vg0"],
        # Domain-0 is left out: it is no guest and its memory is not Xen's to give.
        "existing_domains": {"web1": 256, "db1": 320},
    }


def test_host_facts_from_the_bookworm_dom0_alone() -> None:
    host = fg.xen_guests_host(
        text("xl-info-bookworm.txt"), text("xl-list-trixie.txt"), IP_LINKS, "", ["fpu", "svm"]
    )
    assert host["virt_caps"] == "pv hvm shadow gnttab-v1 gnttab-v2"
    assert (host["total_memory_mib"], host["free_memory_mib"], host["nr_cpus"]) == (3071, 2014, 2)
    assert host["existing_domains"] == {}
    assert host["cpu_flags"] == ["fpu", "svm"]
    assert host["volume_groups"] == []


@pytest.mark.parametrize("ip_links", ["", "\n", "[]", "[ ]\n"])
def test_host_without_bridges_or_volume_groups(ip_links: str) -> None:
    host = fg.xen_guests_host(text("xl-info-trixie.txt"), "", ip_links, "\n")
    assert (host["bridges"], host["volume_groups"], host["existing_domains"]) == ([], [], {})


def test_host_facts_feed_the_validator() -> None:
    # The trixie lab dom0 has no paging mode for PVH guests.
    host = fg.xen_guests_host(
        text("xl-info-trixie.txt"), text("xl-list-trixie-guests.txt"), IP_LINKS, VGS
    )
    result = fg.xen_guests_plan([guest(interfaces=[{"bridge": "xenbr1"}])], host, {})
    assert result == {
        "guests": [],
        "errors": [
            "Guest web1: type pvh needs hardware-assisted (hap) or shadow paging, but xl info"
            " shows virt_caps 'pv hvm gnttab-v1 gnttab-v2' with neither: this Xen has no"
            " paging mode for PVH/HVM guests on this CPU.",
            "Guest web1: interfaces[0].bridge 'xenbr1' does not exist on the host"
            " (found: br-lan, xenbr0).",
        ],
    }
    # web1 already runs and holds 256 MiB: 2014 free + 256 = 2270 MiB for it.
    fits = fg.xen_guests_plan([guest(type="pv", memory=2270)], host, {})
    assert fits["errors"] == []
    assert [g["name"] for g in fits["guests"]] == ["web1"]
    assert fg.xen_guests_plan([guest(type="pv", memory=2271)], host, {})["errors"] == [
        "xen_guests_list: the guests with state running need 2271 MiB of memory, but Xen can give"
        " them only 2270 MiB; lower their memory or stop some of them."
    ]
    # A new guest gets nothing back from the domains already running.
    assert fg.xen_guests_plan([guest(name="new1", type="pv", memory=2270)], host, {})["errors"] == [
        "xen_guests_list: the guests with state running need 2270 MiB of memory, but Xen can give"
        " them only 2014 MiB; lower their memory or stop some of them."
    ]


# xen_guests_plan


def test_plan_of_a_valid_list_gives_the_guests_and_no_errors() -> None:
    guests = [guest(), guest(name="db1", type="pv", interfaces=[{}])]
    defaults = {"disk_dir": "/srv/xen"}
    result = fg.xen_guests_plan(guests, {"bridges": ["xenbr0"]}, defaults)
    assert result["errors"] == []
    assert result["guests"] == gp.plan_guests(guests, {"bridges": ["xenbr0"]}, defaults)
    assert [g["disks"][0]["path"] for g in result["guests"]] == [
        "/srv/xen/web1-root.img",
        "/srv/xen/db1-root.img",
    ]


def test_plan_of_an_invalid_list_gives_every_message_and_no_guests() -> None:
    result = fg.xen_guests_plan(
        [guest(vcpus=0), guest(name="db1", os={"release": "sid"}, interfaces=[{}])], {}, {}
    )
    assert result == {
        "guests": [],
        "errors": [
            "Guest web1: vcpus 0 is below 1.",
            "Guest db1: os.release 'sid' is not one of trixie, bookworm.",
        ],
    }


# xen_guests_fleet


def test_fleet_compares_this_dom0_as_the_role_sees_it_with_the_others_hostvars() -> None:
    hostvars = {
        "hv1": {"xen_guests_list": [guest()]},
        # Its interface names no bridge: xen_network's primary bridge, as the plugin reads it.
        "hv2": {
            "xen_guests_list": [
                guest(name="web2", interfaces=[{"ipv4": {"address": "192.0.2.10/24"}}])
            ],
            "xen_network_bridges": [{"name": "br-lan", "primary": True}],
        },
        "hv3": {"xen_guests_list": [guest(name="web3", interfaces=[{"mac": "02:00:00:00:00:01"}])]},
    }
    mine = [
        guest(name="db1", interfaces=[{"bridge": "br-lan", "ipv4": {"address": "192.0.2.10/24"}}]),
        guest(name="web3", interfaces=[{"mac": "02:00:00:00:00:02"}]),
    ]
    # hv4 is not in the play's list; it is compared all the same, after the others.
    errors = fg.xen_guests_fleet(mine, "hv4", {"bridge": "xenbr0"}, ["hv1", "hv2", "hv3"], hostvars)
    assert errors == [
        "Guest db1 on hv4: ipv4 address 192.0.2.10 on bridge br-lan is also used by guest web2 on"
        " hv2; bridges of the same name on two dom0s are taken to be one network.",
        "Guest web3 on hv4: dom0 hv3 has a guest of that name too; a name is the guest's host"
        " name and inventory name, so it must be unique across the dom0s of the play.",
    ]
    # The same address on this dom0's host-only bridge is this dom0's own.
    local = [{"name": "br-lan"}]
    assert fg.xen_guests_fleet(mine[:1], "hv4", {}, ["hv1", "hv2"], hostvars, local) == []
    assert fg.xen_guests_fleet([], "hv1", {}, ["hv1", "hv2", "hv3"], hostvars) == []


def fleet_errors(tmp_path: Path, dom0s: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """__xen_guests_fleet_errors of each dom0 as the role computes it in Ansible, from its
    own vars/main.yml; each dom0's settings are its host_vars."""
    role = tmp_path / "roles" / "guests_fleet"
    for folder in ("defaults", "vars"):
        (role / folder).mkdir(parents=True)
        (role / folder / "main.yml").symlink_to(ROLE / folder / "main.yml")
    (role / "tasks").mkdir()
    out = tmp_path / "fleet"
    out.mkdir()
    task = {
        "name": "The fleet's problems are written down",
        "ansible.builtin.copy": {
            "dest": f"{out}/{{{{ inventory_hostname }}}}.json",
            "mode": "0600",
            "content": "{{ __xen_guests_fleet_errors | to_json }}",
        },
        "delegate_to": "localhost",
    }
    (role / "tasks" / "main.yml").write_text(json.dumps([task]))
    inventory = {
        "xen_dom0s": {
            "hosts": {name: {"ansible_connection": "local", **v} for name, v in dom0s.items()}
        }
    }
    play = [
        {"name": "Fleet", "hosts": "xen_dom0s", "gather_facts": False, "roles": ["guests_fleet"]}
    ]
    proc = run_playbook(play, tmp_path, inventory=inventory)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {path.stem: json.loads(path.read_text()) for path in out.iterdir()}


def test_the_role_refuses_a_guest_name_and_address_another_dom0_of_the_play_has(
    tmp_path: Path,
) -> None:
    static = [{"ipv4": {"address": "192.0.2.10/24"}}]
    dom0s = {
        "hv1": {"xen_guests_list": [guest(interfaces=static)]},
        # A template, evaluated with hv2's own variables.
        "hv2": {
            "xen_guests_list": "{{ [hv2_guest] }}",
            "hv2_guest": guest(name="web2", interfaces=static),
        },
        "hv3": {"xen_guests_list": [guest(interfaces=[{}])]},
    }
    found = fleet_errors(tmp_path, dom0s)
    address = (
        "Guest {name} on {dom0}: ipv4 address 192.0.2.10 on bridge xenbr0 is also used by guest"
        " {owner} on {other}; bridges of the same name on two dom0s are taken to be one network."
    )
    name = (
        "Guest web1 on {dom0}: dom0 {other} has a guest of that name too; a name is the guest's"
        " host name and inventory name, so it must be unique across the dom0s of the play."
    )
    assert found == {
        "hv1": [name.format(dom0="hv1", other="hv3")],
        "hv2": [address.format(name="web2", dom0="hv2", owner="web1", other="hv1")],
        "hv3": [name.format(dom0="hv3", other="hv1")],
    }


# xen_guests_disk_steps


def test_disk_steps_of_a_release_guest_with_file_root_and_lvm_and_file_data() -> None:
    guests = planned(
        guest(
            disks=[
                {"size": "10G"},
                {"size": "20G", "backend": "lvm", "vg": "vg0", "name": "data"},
                {"size": "5G", "name": "logs"},
            ]
        )
    )
    image = f"{IMAGE_DIR}/trixie-0123456789ab/disk.img"
    assert fg.xen_guests_disk_steps(guests, IMAGES, IMAGE_DIR) == [
        {
            "guest": "web1",
            "path": "/var/lib/xen/images/web1-root.img",
            "backend": "file",
            "size_mib": 10240,
            "action": "clone",
            "image": image,
            "args": ["clone", image, "/var/lib/xen/images/web1-root.img", "10240"],
            "creates": "/var/lib/xen/images/web1-root.img",
        },
        # The empty LVM volume is made by community.general.lvol: no step.
        {
            "guest": "web1",
            "path": "/var/lib/xen/images/web1-logs.img",
            "backend": "file",
            "size_mib": 5120,
            "action": "blank",
            "image": None,
            "args": ["blank", "/var/lib/xen/images/web1-logs.img", "5120"],
            "creates": "/var/lib/xen/images/web1-logs.img",
        },
    ]


def test_disk_step_of_an_lvm_root_disk_from_a_release_creates_the_volume_and_tags_it() -> None:
    guests = planned(
        guest(
            name="db1",
            os={"release": "bookworm"},
            disks=[{"size": "8G", "backend": "lvm", "vg": "vg0"}],
        ),
        disk_dir="/srv/xen/",
    )
    (step,) = fg.xen_guests_disk_steps(guests, IMAGES, IMAGE_DIR)
    image = f"{IMAGE_DIR}/bookworm-0123456789ab/disk.img"
    assert step == {
        "guest": "db1",
        "path": "/dev/vg0/db1-root",
        "backend": "lvm",
        "size_mib": 8192,
        "action": "clone",
        "image": image,
        # The record of version 1.0.0 goes along, for the script to move onto the tag.
        "args": ["clone-lv", image, "vg0", "db1-root", "8192", "/srv/xen/db1-root.copied"],
        # The volume's tag records the copy: no file does.
        "creates": None,
    }


def test_complete_volumes_are_those_lvs_lists_with_the_tag() -> None:
    # `lvs --noheadings --separator '|' -o lv_path,lv_tags`, as LVM prints it.
    lvs = (
        "  /dev/vg0/db1-root|xen_lab_complete\n"
        "  /dev/vg0/db1-data|\n"
        "  /dev/vg0/web1-root|backup,xen_lab_complete,weekly\n"
        "  /dev/vg0/web2-root|xen_lab_completed\n"
        "  /dev/data/scratch|\n"
    )
    assert fg.xen_guests_complete_volumes(lvs) == ["/dev/vg0/db1-root", "/dev/vg0/web1-root"]
    assert fg.xen_guests_complete_volumes("") == []


def test_the_complete_tag_is_the_one_the_disk_script_puts_on_volumes() -> None:
    script = (ROOT / "roles" / "xen_guests" / "files" / "xen-guests-disk").read_text()
    assert f"\ntag={fg.COMPLETE_TAG}\n" in script


def test_the_role_runs_the_disk_script_only_for_disks_not_yet_made() -> None:
    provision = yaml.safe_load((ROLE / "tasks" / "provision.yml").read_text())
    (task,) = [t for t in provision if t["name"].startswith("Root disks are copied")]
    assert task["ansible.builtin.command"] == {
        "argv": "{{ [__xen_guests_disk_script] + item.args }}",
        "creates": "{{ item.creates or omit }}",
    }
    assert "rejectattr('creates', 'in', __xen_guests_present)" in task["loop"]
    assert "rejectattr('path', 'in', __xen_guests_complete_volumes)" in task["loop"]
    validate = yaml.safe_load((ROLE / "tasks" / "validate.yml").read_text())
    (read,) = [t for t in validate if "xen_lab.dom0.xen_read" in t]
    assert read["xen_lab.dom0.xen_read"]["commands"]["lvs"] == [
        "lvs",
        "--noheadings",
        "--separator",
        "|",
        "-o",
        "lv_path,lv_tags",
    ]
    variables = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert "xen_lab.dom0.xen_guests_complete_volumes" in variables["__xen_guests_complete_volumes"]
    # A volume the script refused is never created empty by lvol before it.
    names = [t["name"] for t in provision]
    assert names.index(task["name"]) < names.index(
        "LVM volumes exist for lvm disks, at least as large as planned"
    )


def test_disk_step_of_an_hvm_guest_installing_from_an_iso_is_blank() -> None:
    guests = planned(guest(name="win1", type="hvm", os={"iso": "/srv/iso/installer.iso"}))
    assert fg.xen_guests_disk_steps(guests, {}, IMAGE_DIR) == [
        {
            "guest": "win1",
            "path": "/var/lib/xen/images/win1-root.img",
            "backend": "file",
            "size_mib": 10240,
            "action": "blank",
            "image": None,
            "args": ["blank", "/var/lib/xen/images/win1-root.img", "10240"],
            "creates": "/var/lib/xen/images/win1-root.img",
        }
    ]


def test_disk_step_of_a_downloaded_image_imports_it_from_the_downloads() -> None:
    guests = planned(guest(os={"image": QCOW2_URL, "checksum": SHA}))
    (step,) = fg.xen_guests_disk_steps(guests, {}, IMAGE_DIR + "/")
    assert step["action"] == "import"
    assert re.fullmatch(
        rf"{IMAGE_DIR}/downloads/[0-9a-f]{{12}}-debian-13-genericcloud-amd64\.qcow2",
        step["image"],
    ), step["image"]
    # The same path the download task writes; the script reads its format.
    (source,) = fg.xen_guests_sources(guests, IMAGE_DIR)
    assert step["image"] == source["fetched"]
    assert step["args"] == ["import", step["image"], "/var/lib/xen/images/web1-root.img", "10240"]
    assert step["creates"] == step["path"] == "/var/lib/xen/images/web1-root.img"


def test_disk_step_of_a_local_image_imports_it_in_place() -> None:
    guests = planned(guest(os={"image": "/srv/images/trixie.raw"}))
    (step,) = fg.xen_guests_disk_steps(guests, {}, IMAGE_DIR)
    assert (step["action"], step["image"]) == ("import", "/srv/images/trixie.raw")


def test_disk_step_of_an_image_onto_an_lvm_root_disk_imports_it_onto_the_volume() -> None:
    guests = planned(
        guest(
            os={"image": "/srv/images/Custom.QCOW2"},
            disks=[{"size": "8G", "backend": "lvm", "vg": "vg0"}],
        )
    )
    (step,) = fg.xen_guests_disk_steps(guests, {}, IMAGE_DIR)
    assert step["args"] == [
        "import-lv",
        "/srv/images/Custom.QCOW2",
        "vg0",
        "web1-root",
        "8192",
        "/var/lib/xen/images/web1-root.copied",
    ]
    assert (step["action"], step["creates"]) == ("import", None)


def test_disk_steps_of_several_guests_keep_their_order() -> None:
    guests = planned(
        guest(),
        guest(name="db1", os={"image": RAW_URL, "checksum": SHA}, interfaces=[{}]),
    )
    steps = fg.xen_guests_disk_steps(guests, IMAGES, IMAGE_DIR)
    assert [(s["guest"], s["action"]) for s in steps] == [("web1", "clone"), ("db1", "import")]
    assert steps[1]["image"].startswith(f"{IMAGE_DIR}/downloads/")
    assert steps[1]["image"].endswith("-debian-13-genericcloud-amd64.raw")


# xen_guests_sources


def test_sources_once_per_image_for_urls_and_local_paths() -> None:
    guests = planned(
        guest(name="a1", os={"image": QCOW2_URL, "checksum": SHA}, interfaces=[{}]),
        guest(name="a2", os={"image": QCOW2_URL, "checksum": SHA}, interfaces=[{}]),
        guest(name="b1", os={"image": "/srv/images/bookworm.raw"}, interfaces=[{}]),
        guest(name="c1", os={"image": "/srv/images/Custom.QCOW2"}, interfaces=[{}]),
        guest(name="r1", interfaces=[{}]),
        guest(name="i1", type="hvm", os={"iso": "/srv/iso/x.iso"}, interfaces=[{}]),
    )
    remote, local, local_qcow2 = fg.xen_guests_sources(guests, IMAGE_DIR)
    assert remote["location"] == remote["url"] == QCOW2_URL
    assert remote["checksum"] == SHA
    assert re.fullmatch(
        rf"{IMAGE_DIR}/downloads/[0-9a-f]{{12}}-debian-13-genericcloud-amd64\.qcow2",
        remote["fetched"],
    ), remote["fetched"]
    assert local == {
        "location": "/srv/images/bookworm.raw",
        "url": None,
        "checksum": None,
        "fetched": "/srv/images/bookworm.raw",
        "qemu_img_info": ["qemu-img", "info", "--output=json", "/srv/images/bookworm.raw"],
    }
    # A local image is read where it is, whatever its format.
    assert local_qcow2["url"] is None
    assert local_qcow2["fetched"] == "/srv/images/Custom.QCOW2"


def test_sources_of_two_urls_with_one_file_name_do_not_collide() -> None:
    other = QCOW2_URL.replace("/trixie/latest/", "/trixie/20250101-1/")
    guests = planned(
        guest(os={"image": QCOW2_URL, "checksum": SHA}),
        guest(name="db1", os={"image": other, "checksum": SHA}, interfaces=[{}]),
    )
    first, second = fg.xen_guests_sources(guests, IMAGE_DIR)
    assert (first["url"], second["url"]) == (QCOW2_URL, other)
    assert first["fetched"] != second["fetched"]


def test_sources_plain_raw_url_is_used_as_downloaded() -> None:
    guests = planned(guest(os={"image": RAW_URL, "checksum": SHA}))
    (source,) = fg.xen_guests_sources(guests, IMAGE_DIR)
    assert source["fetched"].startswith(f"{IMAGE_DIR}/downloads/")
    assert source["fetched"].endswith("-debian-13-genericcloud-amd64.raw")


def test_sources_of_release_guests_only_are_none() -> None:
    assert fg.xen_guests_sources(planned(guest()), IMAGE_DIR) == []


# xen_guests_domains


def test_domains_restart_only_the_guests_whose_config_changed() -> None:
    guests = planned(
        guest(),
        guest(name="db1", state="stopped", interfaces=[{}]),
        guest(name="old1", state="absent", interfaces=[]),
        config_dir="/etc/xen/",
    )
    assert fg.xen_guests_domains(guests, ["db1", "ghost"]) == [
        {"name": "web1", "config": "/etc/xen/web1.cfg", "state": "running", "restart": False},
        {"name": "db1", "config": "/etc/xen/db1.cfg", "state": "stopped", "restart": True},
        {"name": "old1", "config": "/etc/xen/old1.cfg", "state": "absent", "restart": False},
    ]
    assert [d["restart"] for d in fg.xen_guests_domains(guests, [])] == [False, False, False]


# xen_guests_fact


def test_fact_of_a_guest_with_a_static_address() -> None:
    (web1,) = planned(
        guest(
            memory="1G",
            vcpus=2,
            interfaces=[
                {
                    "mac": "00:16:3e:12:34:56",
                    "ipv4": {"address": "192.0.2.10/24", "gateway": "192.0.2.1"},
                    "ipv6": {"address": "2001:db8::10/64"},
                },
                {"bridge": "xenbr1"},
            ],
            disks=[{"size": "10G"}, {"size": "20G", "backend": "lvm", "vg": "vg0"}],
        )
    )
    assert fg.xen_guests_fact(web1) == {
        "name": "web1",
        "type": "pvh",
        "state": "running",
        "memory_mib": 1024,
        "vcpus": 2,
        "bridge": "xenbr0",
        "mac": "00:16:3e:12:34:56",
        "ipv4": "192.0.2.10",
        "ipv6": "2001:db8::10",
        "dhcp": False,
        # 00 -> 02 (the U/L bit), ff:fe in the middle, scoped to the bridge.
        "link_local": "fe80::216:3eff:fe12:3456%xenbr0",
        # The static IPv4 wins.
        "address": "192.0.2.10",
        "config": "/etc/xen/web1.cfg",
        "disks": ["/var/lib/xen/images/web1-root.img", "/dev/vg0/web1-disk1"],
        "console_only": False,
    }


@pytest.mark.parametrize("iface", [{}, {"ipv4": "dhcp"}, {"ipv4": "dhcp", "ipv6": "dhcp"}])
def test_fact_of_a_dhcp_guest_has_its_link_local_address(iface: dict[str, Any]) -> None:
    # The U/L bit of 52 is set already: it flips to 50.
    (g,) = planned(guest(interfaces=[{**iface, "bridge": "br0", "mac": "52:54:00:12:34:56"}]))
    fact = fg.xen_guests_fact(g)
    assert (fact["ipv4"], fact["ipv6"], fact["dhcp"]) == (None, None, True)
    assert fact["link_local"] == fact["address"] == "fe80::5054:ff:fe12:3456%br0"


def test_fact_of_a_dhcp_guest_with_its_stable_mac_on_the_default_bridge() -> None:
    (g,) = planned(guest(interfaces=[{}]))
    fact = fg.xen_guests_fact(g)
    # stable_mac("web1", 0) is 00:16:3e:6e:1d:7e.
    assert (fact["bridge"], fact["mac"]) == ("xenbr0", "00:16:3e:6e:1d:7e")
    assert fact["link_local"] == fact["address"] == "fe80::216:3eff:fe6e:1d7e%xenbr0"


def test_fact_of_a_guest_without_interfaces_or_ipv4() -> None:
    (g,) = planned(guest(interfaces=[]))
    fact = fg.xen_guests_fact(g)
    assert (fact["bridge"], fact["mac"], fact["ipv4"], fact["dhcp"]) == (None, None, None, False)
    assert (fact["link_local"], fact["address"]) == (None, None)
    (g,) = planned(
        guest(interfaces=[{"mac": "00:16:3e:ab:cd:ef", "ipv6": {"address": "2001:db8::10/64"}}])
    )
    fact = fg.xen_guests_fact(g)
    assert (fact["ipv4"], fact["ipv6"], fact["dhcp"]) == (None, "2001:db8::10", False)
    # The static IPv6 is the address; the link-local one is there too.
    assert fact["address"] == "2001:db8::10"
    assert fact["link_local"] == "fe80::216:3eff:feab:cdef%xenbr0"


def test_the_filter_module_offers_every_filter() -> None:
    assert fg.FilterModule().filters() == {
        "xen_guests_host": fg.xen_guests_host,
        "xen_guests_plan": fg.xen_guests_plan,
        "xen_guests_fleet": fg.xen_guests_fleet,
        "xen_guests_sources": fg.xen_guests_sources,
        "xen_guests_image_problems": fg.xen_guests_image_problems,
        "xen_guests_disk_steps": fg.xen_guests_disk_steps,
        "xen_guests_complete_volumes": fg.xen_guests_complete_volumes,
        "xen_guests_domains": fg.xen_guests_domains,
        "xen_guests_fact": fg.xen_guests_fact,
        "xen_guests_files": fg.xen_guests_files,
        "xen_guests_template": fg.xen_guests_template,
        "xen_guests_default_bridge": gp.default_bridge,
    }


# xen_guests_files


def test_files_of_a_pvh_guest_with_autostart_and_a_stopped_hvm_guest() -> None:
    iso = {"iso": "/srv/iso/debian.iso"}
    guests = planned(
        guest(autostart=True),
        guest(name="win1", type="hvm", state="stopped", os=iso, interfaces=[{}]),
    )
    rendered = {
        "web1": {
            "config": "name = 'web1'\n",
            "user-data": "#cloud-config\n",
            "meta-data": "instance-id: web1\n",
            "network-config": "version: 2\n",
        },
        "win1": {"config": "name = 'win1'\n"},
    }
    files = fg.xen_guests_files(guests, rendered, IMAGES)
    boot, image = "/var/lib/xen/boot/web1", IMAGES["trixie"]
    assert files["kernels"] == [
        {"src": f"{image}/vmlinuz", "dest": f"{boot}/vmlinuz", "mode": "0600"},
        {"src": f"{image}/initrd.img", "dest": f"{boot}/initrd.img", "mode": "0600"},
    ]
    seeds = "/var/lib/xen/seeds/web1"
    assert files["secret_files"] == [
        {"path": f"{seeds}/user-data", "content": "#cloud-config\n", "mode": "0600"}
    ]
    assert files["seed_files"] == [
        {"path": f"{seeds}/meta-data", "content": "instance-id: web1\n", "mode": "0600"},
        {"path": f"{seeds}/network-config", "content": "version: 2\n", "mode": "0600"},
    ]
    assert [(c["path"], c["content"], c["validate"]) for c in files["configs"]] == [
        ("/etc/xen/web1.cfg", "name = 'web1'\n", "xl -N create %s"),
        ("/etc/xen/win1.cfg", "name = 'win1'\n", "xl -N create %s"),
    ]
    assert files["links"] == [{"src": "/etc/xen/web1.cfg", "dest": "/etc/xen/auto/web1.cfg"}]
    assert files["unlinked"] == ["/etc/xen/auto/win1.cfg"]


# The packages the role installs on the dom0, through its own vars/main.yml in Ansible.

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "xen_guests"
# What the role's one xen_read found: the image tools installed, nothing else.
READ = {
    "mmdebstrap": "1.5.7-1",
    "e2fsprogs": "1.47.2-3",
    "fdisk": "2.41-5",
    "genisoimage": "9:1.1.11-4",
    "qemu-utils": "",
    "qemu-system-xen": "",
}


def role_packages(tmp_path: Path, guests: list[dict[str, Any]]) -> dict[str, list[str]]:
    """__xen_guests_read_packages, __xen_guests_packages and the missing ones, as the role
    computes them for GUESTS (its defaults and vars under a role that only plans)."""
    role = tmp_path / "roles" / "guests_planned"
    for folder in ("defaults", "vars"):
        (role / folder).mkdir(parents=True)
        (role / folder / "main.yml").symlink_to(ROLE / folder / "main.yml")
    (role / "tasks").mkdir()
    out = tmp_path / "packages.json"
    tasks = [
        {
            "name": "The guests are planned",
            "ansible.builtin.set_fact": {
                "__xen_guests_plan": "{{ xen_guests_list | xen_lab.dom0.xen_guests_plan({},"
                " __xen_guests_settings) }}"
            },
        },
        {
            "name": "The packages are written down",
            "ansible.builtin.copy": {
                "dest": str(out),
                "mode": "0600",
                "content": "{{ {'read': __xen_guests_read_packages,"
                " 'install': __xen_guests_packages,"
                " 'missing': __xen_guests_packages | xen_lab.dom0.xen_read_missing_packages("
                "__xen_guests_read.packages)} | to_json }}",
            },
        },
    ]
    (role / "tasks" / "main.yml").write_text(json.dumps(tasks))
    play = [
        {
            "name": "The role's packages",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"xen_guests_list": guests, "__xen_guests_read": {"packages": READ}},
            "roles": ["guests_planned"],
        }
    ]
    proc = run_playbook(play, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def test_the_role_installs_the_device_model_and_qemu_img_for_the_guests_that_stay(
    tmp_path: Path,
) -> None:
    win1 = {"name": "win1", "type": "hvm", "os": {"iso": "/srv/x.iso"}, "interfaces": []}
    old1 = {**win1, "name": "old1", "state": "absent"}
    web1 = {"name": "web1", "os": {"release": "trixie"}, "ssh_authorized_keys": [KEY]}
    found = role_packages(tmp_path / "hvm", [web1, win1])
    tools = ["mmdebstrap", "e2fsprogs", "fdisk", "genisoimage"]
    # One read, before the plan, covers every package the role may install.
    assert found["read"] == [*tools, "qemu-utils", "qemu-system-xen"]
    assert found["install"] == [*tools, "qemu-system-xen"]
    assert found["missing"] == ["qemu-system-xen"]
    # Without an HVM guest that stays, nothing is missing and apt does not run.
    found = role_packages(tmp_path / "pvh", [web1, old1])
    assert (found["install"], found["missing"]) == (tools, [])
    # A guest from os.image needs qemu-img, whatever the image's name says.
    img1 = {**web1, "name": "img1", "os": {"image": "/srv/images/custom.img"}}
    found = role_packages(tmp_path / "image", [web1, img1])
    assert (found["install"], found["missing"]) == ([*tools, "qemu-utils"], ["qemu-utils"])


def test_the_apt_task_installs_what_the_role_planned_after_one_read() -> None:
    validate = yaml.safe_load((ROLE / "tasks" / "validate.yml").read_text())
    (read,) = [t for t in validate if "xen_lab.dom0.xen_read" in t]
    assert read["xen_lab.dom0.xen_read"]["packages"] == "{{ __xen_guests_read_packages }}"
    provision = yaml.safe_load((ROLE / "tasks" / "provision.yml").read_text())
    (apt,) = [t for t in provision if "ansible.builtin.apt" in t]
    assert apt["ansible.builtin.apt"]["name"] == "{{ __xen_guests_packages }}"
    assert "__xen_guests_packages | xen_lab.dom0.xen_read_missing_packages(" in apt["when"]
