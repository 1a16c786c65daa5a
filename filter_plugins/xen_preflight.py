"""Jinja filters of the xen_preflight role: findings from raw readings, and their verdict."""

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# Ansible ships the `module_utils` path only to modules that run on hosts; controller
# plugins such as these filters cannot import `ansible.module_utils.<project module>`.
# Import the project's own copy from the repository root instead.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from module_utils.xen_preflight import evaluate, findings_from_raw  # noqa: E402


def xen_preflight_evaluate(
    findings: Mapping[str, Any], plan: Mapping[str, Any]
) -> dict[str, list[str]]:
    """Return {"errors": [...], "warnings": [...]} for the findings and the plan."""
    errors, warnings = evaluate(findings, plan)
    return {"errors": errors, "warnings": warnings}


class FilterModule:
    """xen_preflight filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "xen_preflight_findings": findings_from_raw,
            "xen_preflight_evaluate": xen_preflight_evaluate,
        }
