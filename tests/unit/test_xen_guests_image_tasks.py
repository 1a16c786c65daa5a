"""The xen_guests role's tasks for images users bring (os.image), as they stand in
roles/xen_guests/tasks/provision.yml, run by ansible-playbook on localhost against
images in a temporary folder: downloads with ansible.builtin.get_url from an HTTP
server of the test's own on 127.0.0.1, local images with ansible.builtin.stat, and
qemu-img through xen_lab.dom0.xen_read. What a user sees is the message of the task
that fails, and what stays on disk.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.filter import xen_guests as fg
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp
from unit.keys import ED25519
from unit.playbooks import run_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "xen_guests"
MIB = 1024 * 1024
# The role's tasks from the downloads to the check of every image, in its order.
TASKS = (
    "User-supplied images are downloaded, and only a download that matches its checksum is kept",
    "Local images with a checksum are read with it",
    "User-supplied images are read by qemu-img",
    "User-supplied images match their checksum, are raw or qcow2 and fit their guest's root disk",
)

pytestmark = [
    pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed"),
    # get_url makes each download root's, as on a dom0.
    pytest.mark.skipif(os.geteuid() != 0, reason="the tasks set root as the images' owner"),
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder and the http:// URL it is served at, for the test's run only."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def raw(path: Path, size_mib: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
        f.write(b"\xebc\x90 boot sector")
        f.seek(2 * MIB)
        f.write(b"root filesystem")
    return path


def qcow2(path: Path, size_mib: int) -> Path:
    source = raw(path.with_suffix(".source"), size_mib)
    subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", source, path], check=True)
    source.unlink()
    return path


def guest(name: str, image: str | Path, checksum: str | None = None, size: str = "16M") -> dict:
    os_source: dict[str, Any] = {"image": str(image)}
    if checksum:
        os_source["checksum"] = checksum
    return {
        "name": name,
        "disks": [{"size": size}],
        "interfaces": [{}],
        "os": os_source,
        "ssh_authorized_keys": [ED25519],
    }


def run_tasks(tmp_path: Path, guests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Runs the role's image tasks for GUESTS; returns each task's result by name."""
    role = tmp_path / "roles" / "guests_images"
    for folder in ("defaults", "vars"):
        (role / folder).mkdir(parents=True)
        (role / folder / "main.yml").symlink_to(ROLE / folder / "main.yml")
    (role / "tasks").mkdir()
    provision = yaml.safe_load((ROLE / "tasks" / "provision.yml").read_text())
    tasks = [
        {
            "name": "The guests are planned",
            "ansible.builtin.set_fact": {
                "__xen_guests_plan": "{{ xen_guests_list | xen_lab.dom0.xen_guests_plan({},"
                " __xen_guests_settings) }}"
            },
        },
        # The role's xen_files task makes this folder before the downloads.
        {
            "name": "The downloads folder is there",
            "ansible.builtin.file": {
                "path": "{{ xen_guests_image_dir }}/downloads",
                "state": "directory",
                "mode": "0700",
            },
        },
        *[task for name in TASKS for task in provision if task["name"] == name],
    ]
    assert [t["name"] for t in tasks[2:]] == list(TASKS)
    (role / "tasks" / "main.yml").write_text(json.dumps(tasks))
    play = [
        {
            "name": "The role's image tasks",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {
                "xen_guests_list": guests,
                "xen_guests_image_dir": str(tmp_path / "golden"),
                "ansible_python_interpreter": sys.executable,
            },
            "roles": ["guests_images"],
        }
    ]
    env = {
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
        "no_proxy": "127.0.0.1",
    }
    proc = run_playbook(play, tmp_path, env=env, timeout=180)
    assert proc.stdout.startswith("{"), proc.stdout + proc.stderr
    output = json.loads(proc.stdout)
    return {
        task["task"]["name"].removeprefix("guests_images : "): task["hosts"]["localhost"]
        for task in output["plays"][0]["tasks"]
        if "localhost" in task["hosts"]
    }


def fetched(tmp_path: Path, url: str) -> Path:
    """Where the role downloads URL to."""
    planned = [{"os": {"source": "image", "image": url}}]
    (source,) = fg.xen_guests_sources(planned, str(tmp_path / "golden"))
    return Path(source["fetched"])


def test_images_that_match_their_checksum_and_fit_pass_and_a_download_stays(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    remote = qcow2(served[0] / "debian.qcow2", 12)
    local = raw(tmp_path / "local.raw", 8)
    local_qcow2 = qcow2(tmp_path / "local.img", 16)
    url = f"{served[1]}/debian.qcow2"
    results = run_tasks(
        tmp_path,
        [
            guest("web1", url, sha256(remote)),
            guest("web2", local, sha256(local)),
            guest("web3", local_qcow2),
        ],
    )
    check = results[TASKS[3]]
    assert not check.get("failed"), check
    download = fetched(tmp_path, url)
    assert download.read_bytes() == remote.read_bytes()
    assert oct(download.stat().st_mode & 0o777) == "0o600"
    # Nothing else: get_url's temporary file went into the downloads folder, and away.
    assert list(download.parent.iterdir()) == [download]


def test_a_download_that_differs_from_its_checksum_is_deleted_and_its_guests_named(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    remote = qcow2(served[0] / "debian.qcow2", 12)
    url = f"{served[1]}/debian.qcow2"
    wrong = "sha256:" + "ab" * 32
    # What an earlier run downloaded under the name, for another checksum.
    download = fetched(tmp_path, url)
    download.parent.mkdir(parents=True)
    download.write_bytes(b"an older image")
    results = run_tasks(tmp_path, [guest("web1", url, wrong), guest("web2", url, wrong)])
    failed = results[
        "The guests whose image could not be downloaded are named, and no disk is written"
    ]
    assert failed["failed"] is True
    actual = sha256(remote)
    assert failed["msg"] == "\n".join(
        gp.MSG_IMAGE_DOWNLOAD_CHECKSUM.format(name=name, image=url, actual=actual, checksum=wrong)
        for name in ("web1", "web2")
    )
    assert not download.exists()
    assert list(download.parent.iterdir()) == []
    assert TASKS[1] not in results


def test_local_images_missing_differing_too_large_or_backed_are_refused_before_any_disk(
    tmp_path: Path,
) -> None:
    local = raw(tmp_path / "local.raw", 8)
    large = qcow2(tmp_path / "large.img", 12)
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", local, "-F", "raw", overlay], check=True
    )
    wrong = "sha256:" + "ab" * 32
    results = run_tasks(
        tmp_path,
        [
            guest("web1", local, wrong),
            guest("web2", tmp_path / "missing.raw"),
            guest("web3", large, size="8M"),
            guest("web4", overlay),
            guest("web5", local),
        ],
    )
    check = results[TASKS[3]]
    assert check["failed"] is True
    assert check["msg"] == "\n".join(
        [
            gp.MSG_IMAGE_CHECKSUM.format(
                name="web1", image=local, actual=sha256(local), checksum=wrong
            ),
            gp.MSG_IMAGE_MISSING.format(name="web2", image=tmp_path / "missing.raw"),
            gp.MSG_IMAGE_LARGE.format(name="web3", mib=8, image_mib=12, image=large),
            gp.MSG_IMAGE_BACKING.format(
                name="web4", image=overlay, format="qcow2", other=f"backing file {local}"
            ),
        ]
    )
