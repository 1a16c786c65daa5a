"""Guests as inventory hosts: module_utils/xen_guests_inventory.py, the filters of
filter_plugins/xen_guests_inventory.py, the inventory plugin inventory_plugins/xen_guests.py
(through ansible-inventory) and the add_host task of playbooks/guests.yml."""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.filter import xen_guests as fg
from ansible_collections.xen_lab.dom0.plugins.filter import xen_guests_inventory as fi
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_inventory as gi
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SSH = shutil.which("ssh")

# The lab dom0 as the harness writes it into inventory/lab/hosts.yml.
LAB_KEY = "/home/admin/.cache/xen-lab/ssh/id_ed25519"
LAB_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
LAB_DOM0 = {
    "ansible_host": "127.0.0.1",
    "ansible_port": 58543,
    "ansible_user": "root",
    "ansible_ssh_private_key_file": LAB_KEY,
    "ansible_ssh_common_args": LAB_ARGS,
}
LAB_JUMP = (
    "-o ProxyCommand=\"ssh -W '[%h]:%p' -q -p 58543 -i /home/admin/.cache/xen-lab/ssh/id_ed25519"
    " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    ' root@127.0.0.1"'
)
# A real public key, made by ssh-keygen.
KEY = next(
    line
    for line in (Path(__file__).parent / "data" / "authorized_keys").read_text().splitlines()
    if line.startswith("ssh-ed25519 ")
)
PLAIN_JUMP = (
    "-o ProxyCommand=\"ssh -W '[%h]:%p' -q -o StrictHostKeyChecking=accept-new root@192.0.2.10\""
)


def eui64_link_local(mac: str, bridge: str) -> str:
    """MAC's IPv6 link-local address (RFC 4291, appendix A), worked out apart from gi.link_local."""
    value = int(mac.replace(":", ""), 16)
    # ff:fe between the OUI and the rest, then the universal/local bit flipped.
    interface_id = (value >> 24) << 40 | 0xFFFE << 24 | value & 0xFFFFFF
    interface_id ^= 1 << 57
    return f"{ipaddress.IPv6Address(0xFE80 << 112 | interface_id)}%{bridge}"


def fact(name: str = "web1", **kw: Any) -> dict[str, Any]:
    """A guest fact as the role's xen_guests_fact filter makes it."""
    base: dict[str, Any] = {
        "name": name,
        "type": "pvh",
        "state": "running",
        "memory_mib": 512,
        "vcpus": 1,
        "bridge": "xenbr0",
        "mac": "00:16:3e:00:00:01",
        "ipv4": "192.0.2.21",
        "ipv6": None,
        "dhcp": False,
        # 00:16:3e:00:00:01 with the U/L bit flipped and ff:fe in the middle.
        "link_local": "fe80::216:3eff:fe00:1%xenbr0",
        "config": f"/etc/xen/{name}.cfg",
        "disks": [f"/var/lib/xen/images/{name}-root.img"],
        "console_only": False,
    }
    base.update(kw)
    base.setdefault("address", base["ipv4"] or base["ipv6"] or base["link_local"])
    return base


def setting(name: str = "web1", address: str | None = "192.0.2.21/24", **kw: Any) -> dict:
    """One entry of xen_guests_list as a user writes it."""
    iface: dict[str, Any] = {"bridge": "xenbr0"}
    if address:
        iface["ipv4"] = {"address": address, "gateway": "192.0.2.1"}
    base: dict[str, Any] = {
        "name": name,
        "type": "pv",
        "memory": "1G",
        "disks": [{"size": "10G"}],
        "interfaces": [iface],
        "os": {"release": "trixie"},
    }
    base.update(kw)
    return base


# --- the jump through the dom0 -------------------------------------------------------


def test_jump_of_the_lab_dom0_uses_its_port_key_and_own_args() -> None:
    assert gi.jump_args("lab", LAB_DOM0) == LAB_JUMP


def test_jump_of_a_plain_dom0_accepts_a_new_host_key() -> None:
    assert gi.jump_args("dom0-a.example.org", {"ansible_host": "192.0.2.10"}) == PLAIN_JUMP


def test_jump_without_ansible_host_or_user_uses_the_inventory_name_and_root() -> None:
    assert gi.proxy_command("dom0-a.example.org", {}) == (
        "ssh -W '[%h]:%p' -q -o StrictHostKeyChecking=accept-new root@dom0-a.example.org"
    )


@pytest.mark.parametrize(
    "own",
    ["-o StrictHostKeyChecking=yes", "-oStrictHostKeyChecking=no", "-o stricthostkeychecking=no"],
)
def test_the_dom0s_own_host_key_policy_wins(own: str) -> None:
    command = gi.proxy_command("d", {"ansible_ssh_common_args": own})
    assert "accept-new" not in command
    assert command.endswith(f"{own} root@d")


def test_ansible_private_key_file_is_the_fallback_key() -> None:
    command = gi.proxy_command("d", {"ansible_private_key_file": "/k/a"})
    assert " -i /k/a " in command
    both = {"ansible_private_key_file": "/k/a", "ansible_ssh_private_key_file": "/k/b"}
    assert " -i /k/b " in gi.proxy_command("d", both)


def test_a_key_with_spaces_quotes_and_percent_survives_every_layer() -> None:
    key = "/tmp/my keys/id 50% \"q\" $HOME 'x'"
    args = gi.jump_args("d", {"ansible_ssh_private_key_file": key, "ansible_user": "adm"})
    # Ansible splits ansible_ssh_common_args with shlex ...
    words = shlex.split(args)
    assert words[0] == "-o"
    assert len(words) == 2
    assert words[1].startswith("ProxyCommand=")
    command = words[1].removeprefix("ProxyCommand=")
    # ... ssh turns %% into % and the dom0's shell splits the command.
    assert shlex.split(command.replace("%%", "%")) == [
        "ssh",
        "-W",
        "[%h]:%p",
        "-q",
        "-i",
        key,
        "-o",
        "StrictHostKeyChecking=accept-new",
        "adm@d",
    ]


@pytest.mark.skipif(SSH is None, reason="needs the OpenSSH client")
def test_real_ssh_runs_the_jump_command_with_the_intended_words(tmp_path: Path) -> None:
    """OpenSSH runs the ProxyCommand; a stand-in `ssh` on PATH records its arguments."""
    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir()
    log = tmp_path / "argv.json"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(log)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    dom0 = {
        "ansible_host": "127.0.0.1",
        "ansible_port": 2222,
        "ansible_ssh_private_key_file": f"{tmp_path}/my key %d",
        "ansible_ssh_common_args": "-o 'UserKnownHostsFile=/dev/null' -o ControlPath=/c/%r@%h",
    }
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}

    def jump_argv(guest: str) -> list[str]:
        """The arguments the jump ssh gets when ssh connects to GUEST through the dom0."""
        log.unlink(missing_ok=True)
        command = [str(SSH), "-F", "/dev/null", *shlex.split(gi.jump_args("lab", dom0))]
        command += ["-o", "BatchMode=yes", "-p", "22", f"root@{guest}", "true"]
        subprocess.run(command, env=env, capture_output=True, check=False, timeout=30)
        return json.loads(log.read_text())

    # A DHCP guest's link-local address keeps its %bridge scope, apart from the port.
    assert jump_argv("fe80::216:3eff:fe12:3456%xenbr0")[:2] == [
        "-W",
        "[fe80::216:3eff:fe12:3456%xenbr0]:22",
    ]
    assert jump_argv("10.0.2.50") == [
        "-W",
        "[10.0.2.50]:22",
        "-q",
        "-p",
        "2222",
        "-i",
        f"{tmp_path}/my key %d",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ControlPath=/c/%r@%h",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "root@127.0.0.1",
    ]


# --- guest hosts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dom0", "group"),
    [
        ("dom0-a.example.org", "xen_guests_dom0_a_example_org"),
        ("lab", "xen_guests_lab"),
        ("Rack_2", "xen_guests_Rack_2"),
        ("10.0.0.1", "xen_guests_10_0_0_1"),
    ],
)
def test_the_dom0_group_name_keeps_only_word_characters(dom0: str, group: str) -> None:
    assert gi.dom0_group(dom0) == group
    assert gi.guest_hosts(dom0, {}, [fact()])[0]["groups"] == ["xen_guests", group]


def test_a_running_guest_with_a_static_address_is_a_host_reached_through_the_dom0() -> None:
    hosts = gi.guest_hosts("lab", LAB_DOM0, [fact("lab-pv1", type="pv", ipv4="10.0.2.50")])
    assert hosts == [
        {
            "name": "lab-pv1",
            "groups": ["xen_guests", "xen_guests_lab"],
            "vars": LAB_PV1,
        }
    ]


def test_stopped_absent_addressless_and_console_only_guests_are_left_out_not_dhcp_ones() -> None:
    guests = [
        fact("up"),
        fact("off", state="stopped", ipv4="192.0.2.22"),
        fact("gone", state="absent", ipv4="192.0.2.23"),
        fact("leased", ipv4=None, dhcp=True),
        # No interface: no MAC, so not even a link-local address.
        fact("nonic", ipv4=None, bridge=None, mac=None, link_local=None),
        # No SSH key to log in with.
        fact("console", console_only=True),
    ]
    hosts = gi.guest_hosts("d", {}, guests)
    assert [(h["name"], h["vars"]["ansible_host"]) for h in hosts] == [
        ("up", "192.0.2.21"),
        ("leased", "fe80::216:3eff:fe00:1%xenbr0"),
    ]


def test_a_dhcp_guest_is_a_host_at_its_link_local_address_reached_through_the_dom0() -> None:
    leased = fact(
        "leased1",
        type="pv",
        ipv4=None,
        dhcp=True,
        mac="00:16:3e:12:34:56",
        link_local="fe80::216:3eff:fe12:3456%xenbr0",
    )
    assert gi.guest_hosts("lab", LAB_DOM0, [leased]) == [
        {
            "name": "leased1",
            "groups": ["xen_guests", "xen_guests_lab"],
            "vars": {**LAB_PV1, "ansible_host": "fe80::216:3eff:fe12:3456%xenbr0"},
        }
    ]


def test_a_guest_with_only_a_static_ipv6_is_a_host_at_that_address() -> None:
    (host,) = gi.guest_hosts("d", {}, [fact("v6", ipv4=None, ipv6="2001:db8::10")])
    assert host["vars"]["ansible_host"] == "2001:db8::10"


def test_an_address_the_caller_filled_in_is_used_and_wins_over_ipv4() -> None:
    guests = [fact("leased", ipv4=None, dhcp=True, address="10.0.2.15"), fact(address="10.9.9.9")]
    hosts = gi.guest_hosts("d", {}, guests)
    assert [(h["name"], h["vars"]["ansible_host"]) for h in hosts] == [
        ("leased", "10.0.2.15"),
        ("web1", "10.9.9.9"),
    ]


def test_the_login_user_is_xen_guests_user_not_the_dom0s_user() -> None:
    dom0 = {"ansible_user": "admin", "xen_guests_user": "debian"}
    host = gi.guest_hosts("d", dom0, [fact()])[0]
    assert host["vars"]["ansible_user"] == "debian"
    assert host["vars"]["ansible_ssh_common_args"].endswith(' admin@d"')
    assert gi.guest_hosts("d", {"ansible_user": "admin"}, [fact()])[0]["vars"]["ansible_user"] == (
        "root"
    )


def test_a_guest_never_takes_the_dom0s_name_or_another_host() -> None:
    guests = [fact("d"), fact("db1"), fact("web1")]
    assert [h["name"] for h in gi.guest_hosts("d", {}, guests, taken={"db1"})] == ["web1"]
    assert gi.guest_host_warnings("d", {}, guests, taken={"db1"}) == [
        gi.MSG_NAME_TAKEN.format(dom0="d", name="d"),
        gi.MSG_NAME_TAKEN.format(dom0="d", name="db1"),
    ]


def test_a_dom0_that_is_itself_a_guest_is_never_a_jump_host() -> None:
    nested = {"xen_guest_dom0": "outer", "ansible_ssh_common_args": PLAIN_JUMP}
    assert gi.guest_hosts("inner", nested, [fact()]) == []
    assert gi.guest_host_warnings("inner", nested, [fact()]) == [
        gi.MSG_DOM0_IS_GUEST.format(dom0="inner", parent="outer")
    ]


def test_a_dom0_that_is_the_controller_needs_no_jump() -> None:
    host = gi.guest_hosts("d", {"ansible_connection": "local"}, [fact()])[0]
    assert host["vars"]["ansible_ssh_common_args"] == ""


# --- guests from xen_guests_list -------------------------------------------------------


def test_guests_from_settings_have_the_role_facts_shape() -> None:
    settings = yaml.safe_load(
        (ROOT / "inventory/sample/group_vars/xen_dom0s/guests.yml").read_text()
    )["xen_guests_list"]
    facts = gi.guests_from_settings(settings)
    # The plugin reads no SSH keys, so it does not ask whether a guest has one.
    unknown_keys = {"ssh_authorized_keys": None}
    assert facts == [fg.xen_guests_fact(g) for g in gp.plan_guests(settings, {}, unknown_keys)]
    web1, build1 = facts
    # The facts these tests make up have the same keys.
    assert set(fact()) == set(web1)
    assert (web1["name"], web1["ipv4"], web1["dhcp"], web1["type"]) == (
        "web1",
        "192.0.2.21",
        False,
        "pvh",
    )
    assert web1["address"] == "192.0.2.21"
    assert (build1["ipv4"], build1["ipv6"], build1["dhcp"]) == (None, None, True)
    assert build1["mac"] == gp.stable_mac("build1", 0)
    expected = eui64_link_local(build1["mac"], "xenbr0")
    assert build1["link_local"] == build1["address"] == expected


# --- the link-local address of a MAC ----------------------------------------------------


@pytest.mark.parametrize(
    ("mac", "bridge", "address"),
    [
        # 00 -> 02 (U/L bit set), ff:fe between 00:16:3e and 12:34:56.
        ("00:16:3e:12:34:56", "xenbr0", "fe80::216:3eff:fe12:3456%xenbr0"),
        # The U/L bit is set already (QEMU's 52:54:00): 52 -> 50.
        ("52:54:00:12:34:56", "br0", "fe80::5054:ff:fe12:3456%br0"),
        ("00:16:3e:ab:cd:ef", "br-lan", "fe80::216:3eff:feab:cdef%br-lan"),
    ],
)
def test_link_local_is_the_modified_eui64_of_the_mac_scoped_to_the_bridge(
    mac: str, bridge: str, address: str
) -> None:
    assert gi.link_local(mac, bridge) == address
    assert eui64_link_local(mac, bridge) == address


def test_link_local_of_the_stable_macs_agrees_with_rfc_4291() -> None:
    macs = {gp.stable_mac(f"guest{n}", i) for n in range(50) for i in range(2)}
    for mac in macs:
        assert gi.link_local(mac, "xenbr0") == eui64_link_local(mac, "xenbr0"), mac


def test_guests_from_settings_uses_the_given_default_type() -> None:
    entry = setting()
    del entry["type"]
    assert gi.guests_from_settings([entry])[0]["type"] == "pvh"
    assert gi.guests_from_settings([entry], {"type": "pv"})[0]["type"] == "pv"


def test_guests_from_settings_refuses_an_invalid_list() -> None:
    with pytest.raises(ValueError, match="Guest web1: type 'xen'"):
        gi.guests_from_settings([setting(type="xen")])


def test_valid_guests_are_kept_when_others_are_invalid() -> None:
    settings = [
        setting("ok1", "192.0.2.21/24"),
        setting("bad", "192.0.2.22/24", memory="lots"),
        "not a guest",
        setting("twin", "192.0.2.21/24"),
        setting("ok2", "192.0.2.23/24"),
    ]
    facts, problems = gi.valid_guests_from_settings(settings)
    assert [f["name"] for f in facts] == ["ok1", "ok2"]
    assert problems == gp.validate_guests(settings, {}, {"ssh_authorized_keys": None})
    assert any(p.startswith("Guest bad: memory") for p in problems)
    assert any(p.startswith("Guest twin: ipv4 address 192.0.2.21") for p in problems)


def test_valid_guests_of_a_valid_list_and_of_no_list() -> None:
    facts, problems = gi.valid_guests_from_settings([setting()])
    assert ([f["name"] for f in facts], problems) == (["web1"], [])
    assert gi.valid_guests_from_settings("{{ guests }}") == (
        [],
        ["xen_guests_list must be a list of guests."],
    )


# --- the filters of playbooks/guests.yml ----------------------------------------------


def test_the_filter_keeps_guests_off_hosts_that_are_not_guests() -> None:
    hostvars = {
        **LAB_DOM0,
        "groups": {"all": ["lab", "db1", "web1"], "xen_guests": ["web1"]},
    }
    hosts = fi.xen_guests_inventory_hosts([fact("db1"), fact("web1")], "lab", hostvars)
    # web1 came from the inventory plugin and is updated; db1 is someone else.
    assert [h["name"] for h in hosts] == ["web1"]
    assert hosts[0]["vars"]["ansible_ssh_common_args"] == LAB_JUMP
    assert fi.xen_guests_inventory_hosts(None, "lab", hostvars) == []


def test_the_batch_filter_adds_the_guests_of_every_dom0_once() -> None:
    groups = {"all": ["a", "b", "c", "old"], "xen_guests": ["old"]}
    hostvars = {
        "a": {"groups": groups, "xen_guests_facts": [fact("w1"), fact("twin", ipv4="10.0.0.1")]},
        "b": {
            "groups": groups,
            "ansible_host": "192.0.2.10",
            "xen_guests_facts": [fact("twin", ipv4="10.0.0.2"), fact("old"), fact("w2")],
        },
        "c": {"groups": groups},
        "old": {"xen_guest_dom0": "c"},
    }
    hosts = fi.xen_guests_inventory_batch(["a", "b", "c"], hostvars)
    assert [(h["name"], h["vars"]["xen_guest_dom0"]) for h in hosts] == [
        ("w1", "a"),
        ("twin", "a"),
        ("w2", "b"),
    ]
    assert hosts[2]["vars"]["ansible_ssh_common_args"] == PLAIN_JUMP


# --- ansible-inventory and ansible-playbook ---------------------------------------------

HOSTS_YML = f"""\
---
all:
  children:
    xen_dom0s:
      hosts:
        lab:
          ansible_host: 127.0.0.1
          ansible_port: 58543
          ansible_user: root
          ansible_ssh_private_key_file: {LAB_KEY}
          ansible_ssh_common_args: {LAB_ARGS}
    others:
      hosts:
        db1:
          ansible_host: 192.0.2.99
"""

DOM0_A = """\
        dom0-a.example.org:
          ansible_host: 192.0.2.10
    others:
"""

GUESTS_YML = """\
---
# A lookup that fails when templated: the plugin must not need it.
xen_guests_ssh_authorized_keys:
  - "{{ lookup('ansible.builtin.file', '/nonexistent/key.pub') }}"
xen_guests_list:
  - name: lab-pv1
    type: pv
    memory: 384M
    disks: [{size: 3G}]
    interfaces:
      - ipv4: {address: 10.0.2.50/24, gateway: 10.0.2.2}
    os: {release: trixie}
  - name: leased1
    type: pv
    disks: [{size: 3G}]
    os: {release: trixie}
  - name: off1
    type: pv
    state: stopped
    disks: [{size: 3G}]
    interfaces:
      - ipv4: {address: 10.0.2.51/24}
    os: {release: trixie}
"""

LEASED1_LINK_LOCAL = eui64_link_local(gp.stable_mac("leased1", 0), "xenbr0")
LAB_PV1 = {
    "ansible_host": "10.0.2.50",
    "ansible_user": "root",
    "xen_guest_dom0": "lab",
    "xen_guest_type": "pv",
    "ansible_ssh_common_args": LAB_JUMP,
    # the key that reaches the dom0 reaches its guests
    "ansible_ssh_private_key_file": LAB_KEY,
}


def inventory_dir(
    tmp_path: Path, guests: str = GUESTS_YML, hosts: str = HOSTS_YML, plugin: str = ""
) -> Path:
    """An inventory directory like inventory/lab, the plugin's file sorting last."""
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "xen_dom0s").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts.yml").write_text(hosts)
    (inv / "group_vars" / "xen_dom0s" / "guests.yml").write_text(guests)
    source = f"---\n# guests\nplugin: xen_lab.dom0.xen_guests\n{plugin}"
    (inv / "zz-guests.xen_guests.yml").write_text(source)
    return inv


def run(tool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "COLUMNS": "1000",
    }
    return subprocess.run(
        [str(BIN / tool), *map(str, args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def plain(value: Any) -> Any:
    """ansible-inventory's JSON without its {"__ansible_unsafe": ...} wrappers."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def inventory_list(inv: Path) -> tuple[dict[str, Any], str]:
    """The --list of an inventory directory, and its warnings on one line."""
    proc = run("ansible-inventory", "-i", inv, "--list")
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout)), " ".join(proc.stderr.split())


def hosts_of(data: dict[str, Any], group: str) -> list[str]:
    return sorted(data.get(group, {}).get("hosts", []))


def test_the_plugin_adds_the_running_guests_static_and_dhcp(tmp_path: Path) -> None:
    data, stderr = inventory_list(inventory_dir(tmp_path))
    assert "WARNING" not in stderr
    assert hosts_of(data, "xen_guests") == ["lab-pv1", "leased1"]
    assert hosts_of(data, "xen_guests_lab") == ["lab-pv1", "leased1"]
    assert data["_meta"]["hostvars"]["lab-pv1"] == LAB_PV1
    # leased1 takes its address by DHCP: it is reached at its stable MAC's link-local address.
    assert data["_meta"]["hostvars"]["leased1"] == {**LAB_PV1, "ansible_host": LEASED1_LINK_LOCAL}
    assert "off1" not in data["_meta"]["hostvars"]
    assert data["_meta"]["hostvars"]["lab"]["ansible_host"] == "127.0.0.1"


def test_the_plugin_reads_host_vars_and_extra_vars_of_the_dom0(tmp_path: Path) -> None:
    # lab-pv1 sets no type: the dom0's xen_guests_default_type decides, as in the role.
    inv = inventory_dir(tmp_path, guests=GUESTS_YML.replace("    type: pv\n", "", 1))
    (inv / "host_vars" / "lab.yml").write_text(
        "---\nxen_guests_user: debian\nxen_guests_default_type: hvm\n"
    )
    data, _ = inventory_list(inv)
    assert data["_meta"]["hostvars"]["lab-pv1"]["ansible_user"] == "debian"
    assert data["_meta"]["hostvars"]["lab-pv1"]["xen_guest_type"] == "hvm"
    proc = run("ansible-inventory", "-i", inv, "--host", "lab-pv1", "-e", "xen_guests_user=adm")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ansible_user"] == "adm"


def test_guests_never_take_over_dom0s_or_other_hosts(tmp_path: Path) -> None:
    inv = inventory_dir(tmp_path, hosts=HOSTS_YML.replace("    others:\n", DOM0_A))
    # dom0-a sorts first and gets the group's guests; lab's of the same name stay out.
    (inv / "host_vars" / "lab.yml").write_text(
        "---\nxen_guests_list:\n"
        "  - {name: db1, disks: [{size: 3G}], os: {release: trixie},"
        " interfaces: [{ipv4: {address: 10.0.2.60/24}}]}\n"
        "  - {name: dom0-a-example, disks: [{size: 3G}], os: {release: trixie},"
        " interfaces: [{ipv4: {address: 10.0.2.61/24}}]}\n"
        "  - {name: lab-pv1, disks: [{size: 3G}], os: {release: trixie},"
        " interfaces: [{ipv4: {address: 10.0.2.62/24}}]}\n"
    )
    data, stderr = inventory_list(inv)
    assert hosts_of(data, "xen_guests") == ["dom0-a-example", "lab-pv1", "leased1"]
    assert hosts_of(data, "xen_guests_dom0_a_example_org") == ["lab-pv1", "leased1"]
    assert hosts_of(data, "xen_guests_lab") == ["dom0-a-example"]
    assert data["_meta"]["hostvars"]["lab-pv1"]["ansible_ssh_common_args"] == PLAIN_JUMP
    assert data["_meta"]["hostvars"]["db1"] == {"ansible_host": "192.0.2.99"}
    assert "dom0 lab: guest db1 is not added to the inventory" in stderr
    assert "dom0 lab: guest lab-pv1 is not added to the inventory" in stderr


@pytest.mark.parametrize(
    ("guests", "problem", "listed"),
    [
        (
            GUESTS_YML.replace("    memory: 384M\n", "    memory: lots\n"),
            "- Guest lab-pv1: memory: Invalid size 'lots'",
            ["leased1"],
        ),
        (
            "---\nxen_guests_list: {name: lab-pv1}\n",
            "- xen_guests_list must be a list of guests.",
            [],
        ),
    ],
)
def test_invalid_guest_settings_warn_and_leave_the_inventory_standing(
    tmp_path: Path, guests: str, problem: str, listed: list[str]
) -> None:
    data, stderr = inventory_list(inventory_dir(tmp_path, guests=guests))
    assert "[WARNING]: xen_guests inventory, dom0 lab: guests with invalid settings" in stderr
    assert problem in stderr
    assert hosts_of(data, "xen_guests") == listed
    assert hosts_of(data, "xen_dom0s") == ["lab"]


def test_one_invalid_guest_does_not_hide_the_others(tmp_path: Path) -> None:
    bad = "  - {name: bad1, type: xen, os: {release: trixie}}\n"
    data, stderr = inventory_list(inventory_dir(tmp_path, guests=GUESTS_YML + bad))
    assert (
        "dom0 lab: guests with invalid settings are not added: - Guest bad1: type 'xen'" in stderr
    )
    assert data["_meta"]["hostvars"]["lab-pv1"] == LAB_PV1


def test_a_jinja_guest_list_is_skipped_with_a_warning(tmp_path: Path) -> None:
    guests = "---\nxen_guests_list: \"{{ lookup('ansible.builtin.file', '/nonexistent') }}\"\n"
    data, stderr = inventory_list(inventory_dir(tmp_path, guests=guests))
    assert "dom0 lab: xen_guests_list is a Jinja template" in stderr
    assert "xen_guests" not in data


def test_templated_connection_variables_are_evaluated(tmp_path: Path) -> None:
    hosts = HOSTS_YML.replace("ansible_port: 58543", 'ansible_port: "{{ 58000 + 543 }}"')
    data, stderr = inventory_list(inventory_dir(tmp_path, hosts=hosts))
    assert "WARNING" not in stderr
    assert data["_meta"]["hostvars"]["lab-pv1"] == LAB_PV1


def test_without_the_dom0_group_the_plugin_warns(tmp_path: Path) -> None:
    inv = inventory_dir(tmp_path, plugin="dom0_group: hypervisors\n")
    data, stderr = inventory_list(inv)
    assert "no group hypervisors in the sources before it" in stderr
    assert "xen_guests" not in data


def test_keyed_groups_apply_to_the_guests(tmp_path: Path) -> None:
    plugin = "keyed_groups:\n  - prefix: xen_guest_type\n    key: xen_guest_type\n"
    data, _ = inventory_list(inventory_dir(tmp_path, plugin=plugin))
    assert hosts_of(data, "xen_guest_type_pv") == ["lab-pv1", "leased1"]


def test_the_plugin_reads_only_files_named_for_it(tmp_path: Path) -> None:
    from ansible_collections.xen_lab.dom0.plugins.inventory.xen_guests import InventoryModule

    for name, wanted in [
        ("zz-guests.xen_guests.yml", True),
        ("xen_guests.yaml", True),
        ("guests.yml", False),
        ("xen_guests.yml.bak", False),
    ]:
        path = tmp_path / name
        path.write_text("plugin: xen_lab.dom0.xen_guests\n")
        assert InventoryModule().verify_file(str(path)) is wanted, name
    assert InventoryModule().verify_file(str(tmp_path / "missing.xen_guests.yml")) is False


def test_the_sample_and_lab_inventories_have_a_plugin_file_that_sorts_last() -> None:
    for inv in ("inventory/sample", "inventory/lab"):
        source = ROOT / inv / "zz-guests.xen_guests.yml"
        assert yaml.safe_load(source.read_text()) == {"plugin": "xen_lab.dom0.xen_guests"}
        assert sorted(p.name for p in source.parent.iterdir() if p.is_file())[-1] == source.name


def test_the_sample_inventory_lists_web1_at_its_ipv4_and_dhcp_build1_at_its_link_local() -> None:
    data, stderr = inventory_list(ROOT / "inventory" / "sample")
    assert "WARNING" not in stderr
    assert hosts_of(data, "xen_guests_dom0_a_example_org") == ["build1", "web1"]
    web1, build1 = (data["_meta"]["hostvars"][name] for name in ("web1", "build1"))
    assert web1["ansible_host"] == "192.0.2.21"
    assert build1["ansible_host"] == eui64_link_local(gp.stable_mac("build1", 0), "xenbr0")
    assert web1["ansible_ssh_common_args"] == build1["ansible_ssh_common_args"] == PLAIN_JUMP


def test_ansible_doc_documents_the_plugin() -> None:
    proc = run("ansible-doc", "-t", "inventory", "xen_lab.dom0.xen_guests")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "Running guests are listed at the static IPv4 address of their first interface" in text
    assert "else at its static IPv6 address" in text
    assert "by DHCP - at the IPv6 link-local address of the first NIC's stable MAC" in text
    assert "dom0_group" in text


def test_the_guests_playbook_adds_the_guests_of_every_dom0_of_the_batch(tmp_path: Path) -> None:
    """The add_host task of playbooks/guests.yml, without the role, on made-up facts."""
    play = yaml.safe_load((ROOT / "playbooks" / "guests.yml").read_text())[0]
    tasks = play["post_tasks"]
    assert [t for t in tasks if "ansible.builtin.add_host" in t]
    inv = tmp_path / "inventory"
    (inv / "host_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(HOSTS_YML.replace("    others:\n", DOM0_A))
    for dom0, guests in {
        "lab": [fact("lab-pv1", type="pv", ipv4="10.0.2.50"), fact("db1", ipv4="10.0.2.9")],
        "dom0-a.example.org": [
            fact(),
            fact(
                "build1",
                type="pv",
                ipv4=None,
                dhcp=True,
                mac="00:16:3e:12:34:56",
                link_local="fe80::216:3eff:fe12:3456%xenbr0",
            ),
        ],
    }.items():
        (inv / "host_vars" / f"{dom0}.yml").write_text(yaml.safe_dump({"xen_guests_facts": guests}))
    out = tmp_path / "guests.json"
    show = {
        "name": "The guests are in the inventory",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Their groups and variables are written down",
                "ansible.builtin.copy": {
                    "dest": str(out),
                    "mode": "0600",
                    "content": "{{ dict(groups['xen_guests'] | zip(groups['xen_guests']"
                    " | map('extract', hostvars) | map('dict2items')"
                    " | map('selectattr', 'key', 'in', ['group_names', 'ansible_host',"
                    " 'ansible_user', 'ansible_ssh_common_args', 'xen_guest_dom0',"
                    " 'xen_guest_type', 'ansible_ssh_private_key_file']) | map('items2dict')))"
                    " | to_json }}",
                },
            }
        ],
    }
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Guests are added",
                    "hosts": "xen_dom0s",
                    "gather_facts": False,
                    "tasks": tasks,
                },
                show,
            ]
        )
    )
    proc = run("ansible-playbook", "-i", inv, playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "guest db1 is not added" in " ".join(proc.stderr.split())
    guests = json.loads(out.read_text())
    assert guests == {
        "web1": {
            "group_names": ["xen_guests", "xen_guests_dom0_a_example_org"],
            "ansible_host": "192.0.2.21",
            "ansible_user": "root",
            "ansible_ssh_common_args": PLAIN_JUMP,
            "xen_guest_dom0": "dom0-a.example.org",
            "xen_guest_type": "pvh",
        },
        "build1": {
            "group_names": ["xen_guests", "xen_guests_dom0_a_example_org"],
            "ansible_host": "fe80::216:3eff:fe12:3456%xenbr0",
            "ansible_user": "root",
            "ansible_ssh_common_args": PLAIN_JUMP,
            "xen_guest_dom0": "dom0-a.example.org",
            "xen_guest_type": "pv",
        },
        "lab-pv1": {"group_names": ["xen_guests", "xen_guests_lab"], **LAB_PV1},
    }


# --- the bridge of a DHCP guest: the inventory plugin and the role agree -----------------

# A dom0 whose DHCP guest names no bridge, and one that does.
BRIDGE_GUESTS_YML = (
    f'---\nxen_guests_ssh_authorized_keys: ["{KEY}"]\n'
    + """\
xen_guests_list:
  - name: leased1
    type: pv
    disks: [{size: 3G}]
    os: {release: trixie}
  - name: pinned1
    type: pvh
    disks: [{size: 3G}]
    interfaces: [{bridge: xenbr9}]
    os: {release: trixie}
"""
)

# The role's own defaults and vars, under a role whose only task plans the guests as
# roles/xen_guests/tasks/main.yml does (without the host: no xl, no bridges to check).
PLAN_TASKS = [
    {
        "name": "The guests are planned with the role's settings",
        "ansible.builtin.set_fact": {
            "xen_guests_facts": "{{ (xen_guests_list | xen_lab.dom0.xen_guests_plan({},"
            " __xen_guests_settings)).guests | map('xen_lab.dom0.xen_guests_fact') | list }}"
        },
    }
]
SHOWN_VARS = [
    "ansible_host",
    "ansible_user",
    "ansible_ssh_common_args",
    "xen_guest_dom0",
    "xen_guest_type",
    "ansible_ssh_private_key_file",
]


def guests_added_by_the_playbook(tmp_path: Path, inv: Path) -> dict[str, Any]:
    """The guests of playbooks/guests.yml's add_host task, after the role's plan of them."""
    role = tmp_path / "roles" / "guests_planned"
    for folder in ("defaults", "vars"):
        (role / folder).mkdir(parents=True)
        (role / folder / "main.yml").symlink_to(ROOT / "roles" / "xen_guests" / folder / "main.yml")
    (role / "tasks").mkdir()
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump(PLAN_TASKS))
    post_tasks = yaml.safe_load((ROOT / "playbooks" / "guests.yml").read_text())[0]["post_tasks"]
    out = tmp_path / "added.json"
    shown = ", ".join(repr(name) for name in SHOWN_VARS)
    plays = [
        {
            "name": "Guests are planned by the role and added",
            "hosts": "xen_dom0s",
            "gather_facts": False,
            "roles": ["guests_planned"],
            "post_tasks": post_tasks,
        },
        {
            "name": "The guests are in the inventory",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Their variables are written down",
                    "ansible.builtin.copy": {
                        "dest": str(out),
                        "mode": "0600",
                        "content": "{{ dict(groups['xen_guests'] | zip(groups['xen_guests']"
                        " | map('extract', hostvars) | map('dict2items')"
                        f" | map('selectattr', 'key', 'in', [{shown}])"
                        " | map('items2dict'))) | to_json }}",
                    },
                }
            ],
        },
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(plays))
    proc = run("ansible-playbook", "-i", inv, playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize(
    ("dom0_vars", "bridge"),
    [
        ({}, "xenbr0"),
        ({"xen_guests_default_bridge": "xenbr-int"}, "xenbr-int"),
        # Unset: the xen_network role's default bridge, from its settings.
        (
            {"xen_network_bridges": [{"name": "br-lan"}, {"name": "br-wan", "primary": True}]},
            "br-wan",
        ),
        (
            {
                "xen_guests_default_bridge": "{{ xen_network_default_bridge }}",
                "xen_network_default_bridge": "xenbr20",
            },
            "xenbr20",
        ),
    ],
    ids=["unset", "set", "network-primary", "template"],
)
def test_the_plugin_and_the_playbook_put_a_dhcp_guest_on_the_dom0s_default_bridge(
    tmp_path: Path, dom0_vars: dict[str, Any], bridge: str
) -> None:
    inv = inventory_dir(tmp_path, guests=BRIDGE_GUESTS_YML)
    (inv / "host_vars" / "lab.yml").write_text(yaml.safe_dump(dom0_vars))
    data, stderr = inventory_list(inv)
    assert "WARNING" not in stderr
    listed = {
        name: {k: v for k, v in data["_meta"]["hostvars"][name].items() if k in SHOWN_VARS}
        for name in hosts_of(data, "xen_guests")
    }
    leased = eui64_link_local(gp.stable_mac("leased1", 0), bridge)
    pinned = eui64_link_local(gp.stable_mac("pinned1", 0), "xenbr9")
    assert (listed["leased1"]["ansible_host"], listed["pinned1"]["ansible_host"]) == (
        leased,
        pinned,
    )
    # Without the plugin's source, the run's own add_host gives each guest the same variables.
    (inv / "zz-guests.xen_guests.yml").unlink()
    assert guests_added_by_the_playbook(tmp_path, inv) == listed
