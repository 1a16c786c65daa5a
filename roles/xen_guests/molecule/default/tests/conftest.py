"""The end-to-end scenario's fixtures: ``e2e`` (tests/molecule/e2e_checks.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "molecule"))
from e2e_checks import e2e

__all__ = ["e2e"]
