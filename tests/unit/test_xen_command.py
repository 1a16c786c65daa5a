"""Every xl call of the modules has a deadline: a fake xl that hangs is killed, with what
it started, and the run fails with a message that names the call."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_command, xen_files, xen_read
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_domain_state as ds

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"

# xl as a dom0 without guests answers it, except that the verbs in $XL_HANG hang: the
# shell waits on a sleep it started, which holds the output pipes too.
FAKE_XL = """\
#!/bin/sh
case " $XL_HANG " in
  *" $1 "*) echo $$ > "$XL_PIDS/xl"; sleep 60 & echo $! > "$XL_PIDS/sleep"; wait; exit 0 ;;
esac
case "$1" in
  list) if [ "$2" = -l ]; then echo '[]'; else cat "$XL_LIST"; fi ;;
  info) cat "$XL_INFO" ;;
  *) exit 0 ;;
esac
"""


@pytest.fixture
def xl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake xl on PATH; XL_HANG names the verbs that hang."""
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "xl"
    fake.write_text(FAKE_XL)
    fake.chmod(0o755)
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XL_PIDS", str(pids))
    monkeypatch.setenv("XL_LIST", str(DATA / "xl-list-bookworm.txt"))
    monkeypatch.setenv("XL_INFO", str(DATA / "xl-info-bookworm.txt"))
    monkeypatch.setenv("XL_HANG", "create")
    return fake


def gone(pid_file: Path) -> bool:
    """Whether the process whose pid the fake wrote is gone (or a zombie awaiting init)."""
    pid = int(pid_file.read_text())
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_a_call_that_answers_in_time_gives_its_output(xl: Path) -> None:
    rc, out, err = xen_command.run([str(xl), "list"], 5)
    assert (rc, err) == (0, "")
    assert out == (DATA / "xl-list-bookworm.txt").read_text()


def test_a_call_that_hangs_is_killed_with_what_it_started_and_named(xl: Path) -> None:
    started = time.monotonic()
    with pytest.raises(xen_command.CommandTimeout) as caught:
        xen_command.run([str(xl), "create", "/etc/xen/guest.cfg"], 0.5)
    assert str(caught.value) == "xl create /etc/xen/guest.cfg timed out after 0.5 s"
    # Neither the sleep, which holds the pipes, nor its shell keeps the caller waiting.
    assert time.monotonic() - started < 10
    pids = xl.parent.parent / "pids"
    assert gone(pids / "xl")
    assert gone(pids / "sleep")


def test_each_xl_call_of_the_domain_module_has_its_timeout() -> None:
    assert ds.xl_timeout(["/usr/sbin/xl", "create", "-p", "/etc/xen/a.cfg"], 120, 300) == 120
    assert ds.xl_timeout(["/usr/sbin/xl", "destroy", "a"], 120, 300) == 300
    for verb in (["list", "-l"], ["list", "a"], ["shutdown", "-F", "a"], ["unpause", "a"]):
        assert ds.xl_timeout(["xl", *verb], 120, 300) == ds.XL_TIMEOUT == 60


def test_a_create_that_hangs_fails_the_apply_naming_it(xl: Path) -> None:
    def run(argv: list[str]) -> tuple[int, str, str]:
        return xen_command.run(argv, ds.xl_timeout(argv, 0.5, 5))

    planned = [{"name": "web1", "config": "/etc/xen/web1.cfg", "action": "create", "changed": True}]
    with pytest.raises(ds.ApplyError) as caught:
        ds.apply_all(planned, str(xl), run, 5)
    assert str(caught.value) == "Domain web1: xl create -p /etc/xen/web1.cfg timed out after 0.5 s"


def run_module(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The collection's module NAME run as Ansible runs it on a host, with ARGS."""
    module = ROOT / "plugins" / "modules" / f"{name}.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "collections")}
    proc = subprocess.run(
        [sys.executable, str(module)],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return json.loads(proc.stdout)


def test_the_domain_module_fails_naming_the_create_that_hung(xl: Path, tmp_path: Path) -> None:
    config = tmp_path / "web1.cfg"
    config.write_text('name = "web1"\nmemory = 512\nvcpus = 1\n')
    result = run_module(
        "xen_domain", {"domains": [{"name": "web1", "config": str(config)}], "create_timeout": 1}
    )
    assert result["failed"] is True
    assert result["msg"] == f"Domain web1: xl create -p {config} timed out after 1 s"


def test_a_read_that_hangs_fails_naming_it(xl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {"commands": {"xl_info": [str(xl), "info"]}, "timeout": 1}
    assert xen_read.read(spec)["commands"]["xl_info"]["rc"] == 0
    monkeypatch.setenv("XL_HANG", "info")
    with pytest.raises(xen_command.CommandTimeout, match=r"^xl info timed out after 1 s$"):
        xen_read.read(spec)
    result = run_module("xen_read", spec)
    assert (result["failed"], result["msg"]) == (True, "xl info timed out after 1 s")


def test_a_validate_command_that_hangs_leaves_the_file_unwritten(
    xl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XL_HANG", "-N")
    path = tmp_path / "web1.cfg"
    item = {"path": str(path), "content": 'name = "web1"\n', "mode": "0644"}
    item["validate"] = f"{xl} -N create %s"
    run = functools.partial(xen_files.run_validate, timeout=0.5)
    with pytest.raises(ValueError, match="was not written") as caught:
        xen_files.apply(files=[item], run=run)
    message = str(caught.value)
    assert message.startswith(f"{path} was not written: xl -N create {tmp_path}/.xen-files-")
    assert message.endswith(" timed out after 0.5 s.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "pids"]
