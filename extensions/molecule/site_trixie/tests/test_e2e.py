"""site.yml end to end on a trixie VM: the checks both releases share
(tests/molecule/e2e_checks.py). The hypervisor's and the bridges' own checks
live with their roles (roles/xen_hypervisor/molecule/dom0_checks/,
roles/xen_network/molecule/dom0_checks/); molecule.yml adds them to this
verifier."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests" / "molecule"))
from e2e_checks import *  # noqa: F403  (the shared end-to-end tests)
