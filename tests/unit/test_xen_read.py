"""xen_read: one pass of reads on real files, folders and commands, and the controller's
verdicts on them (is a file, or a line of it, already as planned)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_read

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"


def test_files_paths_and_folders_are_read_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "interfaces.d").mkdir()
    (tmp_path / "interfaces.d" / "xen-xenbr0").write_text("auto xenbr0\n")
    (tmp_path / "interfaces.d" / ".hidden").write_text("x\n")
    (tmp_path / "interfaces.d" / "sub").mkdir()
    (tmp_path / "efi-var").write_bytes(b"\x06\x00\x00\x00\x01")
    (tmp_path / "xl.conf").write_text('#autoballoon="auto"\n')
    (tmp_path / "xl.conf").chmod(0o640)
    got = xen_read.read(
        {
            "paths": [str(tmp_path / "interfaces.d"), str(tmp_path / "missing")],
            "files": [str(tmp_path / "xl.conf"), str(tmp_path / "missing")],
            "raw_files": [str(tmp_path / "efi-var")],
            "dirs": [
                {"path": str(tmp_path / "interfaces.d"), "hidden": True, "read": True},
                {"path": str(tmp_path / "netplan"), "patterns": ["*.yaml"]},
            ],
        }
    )
    assert got["paths"][str(tmp_path / "interfaces.d")]["isdir"] is True
    assert got["paths"][str(tmp_path / "missing")] == {"exists": False}
    conf = got["files"][str(tmp_path / "xl.conf")]
    assert (conf["content"], conf["mode"], conf["isreg"]) == ('#autoballoon="auto"\n', "0640", True)
    assert got["files"][str(tmp_path / "missing")]["readable"] is False
    raw = got["raw_files"][str(tmp_path / "efi-var")]["content_b64"]
    assert base64.b64decode(raw) == b"\x06\x00\x00\x00\x01"
    listed = got["dirs"][str(tmp_path / "interfaces.d")]
    assert sorted(listed["files"]) == [
        str(tmp_path / "interfaces.d" / ".hidden"),
        str(tmp_path / "interfaces.d" / "xen-xenbr0"),
    ]
    assert listed["files"][str(tmp_path / "interfaces.d" / "xen-xenbr0")]["content"] == (
        "auto xenbr0\n"
    )
    assert got["dirs"][str(tmp_path / "netplan")] == {"exists": False, "files": {}}


def test_hidden_files_and_other_patterns_are_left_out_unless_asked(tmp_path: Path) -> None:
    for name in ("01-netcfg.yaml", "02-extra.yml", ".hidden.yaml", "README"):
        (tmp_path / name).write_text("")
    got = xen_read.dir_info({"path": str(tmp_path), "patterns": ["*.yaml", "*.yml"]})
    assert sorted(Path(p).name for p in got["files"]) == ["01-netcfg.yaml", "02-extra.yml"]


def test_commands_report_their_exit_code_and_a_missing_program_is_127() -> None:
    got = xen_read.read(
        {
            "commands": {
                "ok": ["sh", "-c", "echo out; echo err >&2"],
                "fails": ["sh", "-c", "exit 3"],
                "missing": ["xen-read-no-such-program"],
            }
        }
    )
    assert got["commands"]["ok"] == {"rc": 0, "stdout": "out\n", "stderr": "err\n"}
    assert got["commands"]["fails"]["rc"] == 3
    assert got["commands"]["missing"]["rc"] == 127


def _fixed(out: str) -> xen_read.Runner:
    def runner(argv: Sequence[str]) -> tuple[int, str, str]:
        return 0, out, ""

    return runner


def test_package_versions_come_from_dpkg_query() -> None:
    # Real output of the dpkg-query call, on a Debian 12 host, for these three names:
    # dpkg-query lists the known ones sorted, and says nothing of the unknown one on stdout.
    out = "libc6 installed 2.36-9+deb12u14\nqemu-utils installed 1:7.2+dfsg-7+deb12u18+b3\n"
    got = xen_read.packages(["qemu-utils", "xen-read-no-such-package", "libc6"], _fixed(out))
    assert got == {
        "qemu-utils": "1:7.2+dfsg-7+deb12u18+b3",
        "xen-read-no-such-package": "",
        "libc6": "2.36-9+deb12u14",
    }


def test_a_removed_package_with_its_config_left_is_not_installed() -> None:
    out = "ifenslave config-files 2.13\nbridge-utils installed 1.7.1-1\n"
    got = xen_read.packages(["bridge-utils", "ifenslave"], _fixed(out))
    assert got == {"bridge-utils": "1.7.1-1", "ifenslave": ""}


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a Debian host")
def test_packages_of_this_host_are_read() -> None:
    got = xen_read.packages(["dpkg", "xen-read-no-such-package"])
    assert got["dpkg"]
    assert got["xen-read-no-such-package"] == ""


def test_unit_states_come_from_systemctl_show() -> None:
    # Captured on the trixie lab VM, where ifupdown runs the network.
    out = (DATA / "systemctl-show-network-units.txt").read_text()
    got = xen_read.units(["NetworkManager.service", "systemd-networkd.service"], _fixed(out))
    assert got == {"NetworkManager.service": "inactive", "systemd-networkd.service": "inactive"}
    # The same output with networkd running: each block belongs to its unit.
    running = out.replace(
        "systemd-networkd.service\nActiveState=inactive",
        "systemd-networkd.service\nActiveState=active",
    )
    got = xen_read.units(["NetworkManager.service", "systemd-networkd.service"], _fixed(running))
    assert got == {"NetworkManager.service": "inactive", "systemd-networkd.service": "active"}


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"isreg": True, "content": "a\n", "mode": "0644", "uid": 0, "gid": 0}, True),
        ({"isreg": True, "content": "b\n", "mode": "0644", "uid": 0, "gid": 0}, False),
        ({"isreg": True, "content": "a\n", "mode": "0600", "uid": 0, "gid": 0}, False),
        ({"isreg": True, "content": "a\n", "mode": "0644", "uid": 1000, "gid": 0}, False),
        ({"exists": False, "readable": False}, False),
    ],
)
def test_a_file_is_in_place_only_with_its_content_mode_and_root_owner(
    info: dict[str, object], expected: bool
) -> None:
    assert xen_read.file_in_place(info, "a\n", "0644") is expected


LINE_CASES = {
    "commented default": ('## x ##\n#autoballoon="auto"\n', False),
    "already set": ('## x ##\nautoballoon="off"\n', True),
    "set, then set again differently": ('autoballoon="off"\nautoballoon="on"\n', False),
    "set differently, then as planned": ('autoballoon="on"\nautoballoon="off"\n', True),
    "absent": ("## x ##\n", False),
    "as planned without a final newline": ('autoballoon="off"', False),
}


@pytest.mark.parametrize("case", sorted(LINE_CASES))
def test_a_line_is_in_place_exactly_when_lineinfile_changes_nothing(
    case: str, tmp_path: Path
) -> None:
    """Each verdict is checked against ansible.builtin.lineinfile itself, in check mode."""
    content, expected = LINE_CASES[case]
    path = tmp_path / "xl.conf"
    path.write_text(content)
    info = xen_read.file_info(str(path))
    regexp, line = r"^#?\s*autoballoon\s*=", 'autoballoon="off"'
    assert xen_read.line_in_place(info, regexp, line) is expected
    args = json.dumps({"path": str(path), "regexp": regexp, "line": line})
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "localhost",
            "-c",
            "local",
            "-m",
            "ansible.builtin.lineinfile",
            "-a",
            args,
            "--check",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={
            **os.environ,
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true",
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # profile_tasks (ansible.cfg) prints its timer lines around the JSON.
    report, _end = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["changed"] is not expected


def test_a_line_of_an_unreadable_file_is_not_in_place(tmp_path: Path) -> None:
    info = xen_read.file_info(str(tmp_path / "missing"))
    assert xen_read.line_in_place(info, "^x", "x") is False


def test_only_the_lines_and_files_not_in_place_are_left_to_fix(tmp_path: Path) -> None:
    (tmp_path / "xl.conf").write_text('autoballoon="off"\n#vif.default.bridge="xenbr0"\n')
    (tmp_path / "xen-xenbr0").write_text("auto xenbr0\n")
    (tmp_path / "xen-xenbr0").chmod(0o644)
    read = xen_read.read({"files": [str(tmp_path / "xl.conf"), str(tmp_path / "xen-xenbr0")]})
    conf = str(tmp_path / "xl.conf")
    lines = [
        {"path": conf, "regexp": r"^#?\s*autoballoon\s*=", "line": 'autoballoon="off"'},
        {
            "path": conf,
            "regexp": r"^#?\s*vif\.default\.bridge\s*=",
            "line": 'vif.default.bridge="xenbr0"',
        },
        {"path": str(tmp_path / "unread"), "regexp": "^x", "line": "x"},
    ]
    assert xen_read.lines_to_fix(lines, read["files"]) == lines[1:]
    wanted = {
        str(tmp_path / "xen-xenbr0"): "auto xenbr0\n",
        str(tmp_path / "xen-xenbr20"): "auto xenbr20\n",
    }
    owned_by_root = os.geteuid() == 0
    assert xen_read.files_to_fix(wanted, read["files"], "0644") == (
        {str(tmp_path / "xen-xenbr20"): "auto xenbr20\n"} if owned_by_root else wanted
    )


def test_a_folder_is_in_place_only_with_its_mode_and_root_owner() -> None:
    folder = {"exists": True, "isdir": True, "mode": "0755", "uid": 0, "gid": 0}
    assert xen_read.dir_in_place(folder, "0755") is True
    assert xen_read.dir_in_place({**folder, "mode": "0700"}, "0755") is False
    assert xen_read.dir_in_place({**folder, "isdir": False}, "0755") is False
    assert xen_read.dir_in_place({"exists": False}, "0755") is False


def test_missing_packages_are_those_without_a_version() -> None:
    installed = {"bridge-utils": "1.7.1-1", "ifenslave": ""}
    assert xen_read.missing_packages(["bridge-utils", "ifenslave", "vlan"], installed) == [
        "ifenslave",
        "vlan",
    ]
