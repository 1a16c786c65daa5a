"""The guest templates, rendered from planned guests as Ansible's template module does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pytest
import yaml
from jinja2 import nodes

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_domain_state as ds
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp
from unit.keys import ED25519

ROOT = Path(__file__).parents[2]
TEMPLATES = ROOT / "templates"
DATA = Path(__file__).parent / "data"
ROLE_DEFAULTS = ROOT / "roles" / "xen_guests" / "defaults" / "main.yml"
KEY = ED25519
SHA = "sha256:" + "ab" * 32
ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    trim_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def planned(defaults: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
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
    return gp.plan_guests([settings], {}, {"nameservers": ["192.0.2.53"], **(defaults or {})})[0]


def role_defaults() -> dict[str, Any]:
    """The xen_guests role's defaults: the templates have no defaults of their own."""
    return yaml.safe_load(ROLE_DEFAULTS.read_text())


def render(template: str, guest: dict[str, Any], **role: Any) -> str:
    return ENV.get_template(template).render(guest=guest, **{**role_defaults(), **role})


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
    guest = planned(
        type="hvm", os={"iso": "/srv/iso/debian.iso"}, disks=[{"size": "10G"}], tsc_mode="native"
    )
    found = lines(render("xl/hvm.cfg.j2", guest))
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


def test_user_data_of_a_console_only_guest_without_keys_stays_valid() -> None:
    guest = planned(ssh_authorized_keys=[], console_only=True)
    data = yaml.safe_load(render("cloud-init/user-data.j2", guest))
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


@pytest.mark.parametrize(
    ("gtype", "os"),
    [("pv", {"release": "trixie"}), ("pvh", {"image": "/srv/a.raw"}), ("hvm", {"iso": "/x.iso"})],
)
def test_event_actions_come_from_the_guest_else_the_role_default(
    gtype: str, os: dict[str, str]
) -> None:
    role = {"on_reboot": "destroy", "on_crash": "preserve"}
    found = lines(render(f"xl/{gtype}.cfg.j2", planned(role, type=gtype, os=os)))
    assert (found[-2], found[-1]) == ('on_reboot = "destroy"', 'on_crash = "preserve"')
    guest = planned(role, type=gtype, os=os, on_crash="coredump-restart")
    assert lines(render(f"xl/{gtype}.cfg.j2", guest))[-1] == 'on_crash = "coredump-restart"'


def test_the_grub_images_of_image_guests_come_from_the_role_settings() -> None:
    role = {"pv_kernel": "/opt/grub/pv.bin", "pvh_kernel": "/opt/grub/pvh.bin"}
    for gtype in ("pv", "pvh"):
        guest = planned(role, type=gtype, os={"image": "/srv/a.raw"})
        assert f'kernel = "/opt/grub/{gtype}.bin"' in lines(render(f"xl/{gtype}.cfg.j2", guest))


def test_the_role_default_tsc_mode_reaches_hvm_guests_only() -> None:
    hvm = planned({"tsc_mode": "always_emulate"}, type="hvm")
    assert 'tsc_mode = "always_emulate"' in lines(render("xl/hvm.cfg.j2", hvm))
    pvh = planned({"tsc_mode": "always_emulate"})
    assert pvh["tsc_mode"] is None
    assert "tsc_mode" not in render("xl/pvh.cfg.j2", pvh)


# --- what the templates read -------------------------------------------------------------
#
# Every variable a template reads is a setting some role declares in its
# meta/argument_specs.yml, or `guest`; and every key it reads of `guest` (also through
# loop variables and {% set %}) is one the planner makes.

TEMPLATE_FILES = sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.j2"))
GuestPath = tuple[str, ...]


def declared_settings() -> dict[str, str]:
    """Every option of every entry point of every role's argument_specs, with its role."""
    declared: dict[str, str] = {}
    for spec in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        entries = (yaml.safe_load(spec.read_text()) or {}).get("argument_specs") or {}
        for entry in entries.values():
            for option in (entry or {}).get("options") or {}:
                declared[option] = spec.parents[1].name
    return declared


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    if "keys" in a or "keys" in b:
        keys = dict(a.get("keys", {}))
        for key, sub in b.get("keys", {}).items():
            keys[key] = _merge(keys.get(key, {}), sub)
        merged["keys"] = keys
    if "items" in a or "items" in b:
        merged["items"] = _merge(a.get("items", {}), b.get("items", {}))
    return merged


def _shape(value: Any) -> dict[str, Any]:
    """The keys a value has, nested: {"keys": {...}} for mappings, {"items": ...} for lists."""
    if isinstance(value, dict):
        return {"keys": {key: _shape(sub) for key, sub in value.items()}}
    if isinstance(value, list):
        items: dict[str, Any] = {}
        for item in value:
            items = _merge(items, _shape(item))
        return {"items": items}
    return {}


def planned_shape() -> dict[str, Any]:
    """Every key the planner makes, over guests of each type, source and address form."""
    guests = [
        planned(),
        planned(type="pv", os={"image": "https://example.org/a.qcow2", "checksum": SHA}),
        planned(type="hvm", os={"iso": "/srv/x.iso"}, tsc_mode="native"),
        planned(type="hvm", interfaces=[{"ipv4": "dhcp", "ipv6": "dhcp"}]),
        *gp.plan_guests([{"name": "old1", "state": "absent", "interfaces": []}], {}),
    ]
    shape: dict[str, Any] = {}
    for guest in guests:
        shape = _merge(shape, _shape(guest))
    return shape


def _path(node: nodes.Node, bound: dict[str, GuestPath]) -> GuestPath | None:
    """The guest path of guest.os.iso, guest['os'] or iface.mac; None for anything else."""
    if isinstance(node, nodes.Name):
        return bound.get(node.name)
    if isinstance(node, nodes.Getattr):
        base = _path(node.node, bound)
        return None if base is None else (*base, node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _path(node.node, bound)
        # guest.interfaces[0] is an element of the list, like a loop variable over it.
        step = "[]" if isinstance(node.arg.value, int) else str(node.arg.value)
        return None if base is None else (*base, step)
    return None


def _walk(node: nodes.Node, bound: dict[str, GuestPath]) -> Iterator[GuestPath]:
    """Every guest path read under NODE; loop and set variables follow what they hold."""
    if isinstance(node, nodes.For):
        yield from _walk(node.iter, bound)
        inner = dict(bound)
        source = _path(node.iter, bound)
        if isinstance(node.target, nodes.Name):
            inner.pop(node.target.name, None)
            if source is not None:
                inner[node.target.name] = (*source, "[]")
        for child in [*node.body, *([node.test] if node.test else [])]:
            yield from _walk(child, inner)
        for child in node.else_:
            yield from _walk(child, bound)
        return
    if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
        yield from _walk(node.node, bound)
        source = _path(node.node, bound)
        bound.pop(node.target.name, None)
        if source is not None:
            bound[node.target.name] = source
        return
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        path = _path(node, bound)
        if path is not None:
            yield path
    for child in node.iter_child_nodes():
        yield from _walk(child, bound)


def template_reads(source: str) -> tuple[set[str], set[GuestPath]]:
    """The variables a template reads, and the paths it reads under `guest`."""
    ast = ENV.parse(source)
    return jinja2.meta.find_undeclared_variables(ast), set(_walk(ast, {"guest": ("guest",)}))


def unknown_guest_keys(paths: set[GuestPath], shape: dict[str, Any]) -> list[str]:
    """The paths that read a key the planner never makes, as guest.interfaces[].mac."""
    unknown = set()
    for path in paths:
        node, shown = shape, path[0]
        for step in path[1:]:
            shown += "[]" if step == "[]" else f".{step}"
            node = node.get("items") if step == "[]" else node.get("keys", {}).get(step)
            if node is None:
                unknown.add(shown)
                break
    return sorted(unknown)


def undeclared(source: str) -> list[str]:
    """What a template reads that no role declares and the planner does not make."""
    names, paths = template_reads(source)
    declared = declared_settings()
    return sorted(names - {"guest"} - set(declared)) + unknown_guest_keys(paths, planned_shape())


@pytest.mark.parametrize("template", TEMPLATE_FILES)
def test_a_template_reads_only_declared_settings_and_planned_guest_keys(template: str) -> None:
    assert undeclared((TEMPLATES / template).read_text()) == []


@pytest.mark.parametrize("template", TEMPLATE_FILES)
def test_each_setting_a_template_reads_has_a_commented_default(template: str) -> None:
    names, _ = template_reads((TEMPLATES / template).read_text())
    declared = declared_settings()
    # A setting nobody declares is the test above's to report.
    for name in sorted(names & set(declared)):
        defaults = (ROOT / "roles" / declared[name] / "defaults" / "main.yml").read_text()
        rows = defaults.splitlines()
        (index,) = [i for i, line in enumerate(rows) if line.startswith(f"{name}:")]
        assert index > 0 and rows[index - 1].startswith("#"), f"{name} has no comment"


def test_the_check_sees_loop_and_set_variables_of_the_real_templates() -> None:
    _, paths = template_reads((TEMPLATES / "cloud-init/network-config.j2").read_text())
    assert ("guest", "interfaces", "[]", "mac") in paths
    assert ("guest", "interfaces", "[]", "ipv4", "dhcp") in paths
    assert ("guest", "nameservers") in paths
    names, paths = template_reads((TEMPLATES / "xl/hvm.cfg.j2").read_text())
    assert names == {"guest", "xen_guests_vnclisten"}
    assert {("guest", "tsc_mode"), ("guest", "os", "iso"), ("guest", "on_crash")} <= paths


def test_the_check_names_a_setting_nobody_declares_and_a_key_the_planner_lacks() -> None:
    source = (TEMPLATES / "xl/pv.cfg.j2").read_text() + (
        "{{ guest.bogus }}{{ guest['os'].mirror }}{{ xen_guests_undeclared }}\n"
        "{% for disk in guest.disks %}{{ disk.lun }}{% endfor %}\n"
        "{% set first = guest.interfaces[0] %}{{ first.bridge }}{{ first.vlan }}\n"
        "{% for iface in guest.interfaces %}{% set v6 = iface.ipv6 %}{{ v6.scope }}{% endfor %}\n"
    )
    assert undeclared(source) == [
        "xen_guests_undeclared",
        "guest.bogus",
        "guest.disks[].lun",
        "guest.interfaces[].ipv6.scope",
        "guest.interfaces[].vlan",
        "guest.os.mirror",
    ]


@pytest.mark.parametrize("name", ["pv1", "pvh1"])
def test_the_rendered_config_matches_the_domain_xl_made_from_it(name: str) -> None:
    """The bookworm end-to-end guests, planned and rendered as the role does,
    against what `xl list -l` reported for them on the lab dom0: no difference,
    so no restart is asked for."""
    guests = yaml.safe_load(
        (ROOT / "tests/e2e/bookworm/group_vars/xen_dom0s/guests.yml").read_text()
    )
    (settings,) = [g for g in guests["xen_guests_list"] if g["name"] == name]
    guest = gp.plan_guests(
        [{**settings, "ssh_authorized_keys": [KEY]}], {}, {"nameservers": ["10.0.2.3"]}
    )[0]
    wanted = ds.wanted_config(ds.parse_xl_cfg(render(f"xl/{guest['type']}.cfg.j2", guest)))
    running = ds.parse_xl_list_long((DATA / "xl-list-l-guests-bookworm.json").read_text())[name]
    assert ds.differences(running, wanted) == []
    assert wanted["nics"] == [{"mac": gp.stable_mac(name, 0), "bridge": "xenbr0"}]
    assert [disk["vdev"] for disk in wanted["disks"]] == ["xvda", "xvdz"]
    # A NIC moved to another bridge is a difference at every run until it is applied.
    moved = {**wanted, "nics": [{**wanted["nics"][0], "bridge": "xenbr1"}]}
    mac = gp.stable_mac(name, 0)
    assert ds.differences(running, moved) == [
        f"nic 0 mac={mac} bridge=xenbr0 -> mac={mac} bridge=xenbr1"
    ]
