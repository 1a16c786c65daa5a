"""The e2e fixture for this scenario's test modules."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "molecule"))
from e2e_checks import e2e  # noqa: F401  (a fixture)
