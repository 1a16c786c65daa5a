"""Running a small play with the project's ansible.cfg, for unit tests of tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_playbook(
    play: list[dict[str, Any]],
    tmp_path: Path,
    *,
    inventory: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Writes the play (and an inventory) into tmp_path and runs ansible-playbook
    from the checkout, output captured and not checked."""
    (tmp_path / "play.yml").write_text(json.dumps(play))
    command = [str(Path(sys.executable).parent / "ansible-playbook")]
    if inventory is not None:
        (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
        command += ["-i", str(tmp_path / "hosts.yml")]
    environ = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        **(env or {}),
    }
    return subprocess.run(
        [*command, str(tmp_path / "play.yml")],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
