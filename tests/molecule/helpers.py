"""Helpers for Molecule verifiers: run playbooks against the scenario's VM."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))


def playbook(
    path: str | Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook against the Molecule inventory; output is returned, not checked."""
    run_env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **(env or {})}
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(path), *args]
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, check=False)
    print(proc.stdout[-4000:])
    print(proc.stderr[-2000:], file=sys.stderr)
    return proc


def scenario_file(name: str) -> Path:
    return Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / name


def tree_digest(host: Any, *paths: str) -> str:
    """A digest of every file's content and mode under the given paths on the host."""
    listing = host.run(
        "find %s -xdev -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum; "
        "find %s -xdev -printf '%%p %%m %%s\\n' 2>/dev/null | sort",
        " ".join(paths),
        " ".join(paths),
    ).stdout
    return hashlib.sha256(listing.encode()).hexdigest()
