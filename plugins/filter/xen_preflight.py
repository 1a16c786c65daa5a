"""Jinja filters of the xen_preflight role: findings from raw readings, and their verdict."""

from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_preflight import (
    evaluate,
    findings_from_raw,
)


def xen_preflight_evaluate(findings: Mapping[str, Any]) -> dict[str, list[str]]:
    """Return {"errors": [...], "warnings": [...]} for the findings."""
    errors, warnings = evaluate(findings)
    return {"errors": errors, "warnings": warnings}


class FilterModule:
    """xen_preflight filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "xen_preflight_findings": findings_from_raw,
            "xen_preflight_evaluate": xen_preflight_evaluate,
        }
