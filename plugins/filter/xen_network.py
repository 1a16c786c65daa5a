"""Jinja filters of the xen_network role: its plan, the files it read, and its verdict."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_network_plan import (
    host_interfaces,
    outcome_message,
    plan,
)

INTERFACES = "/etc/network/interfaces"
INTERFACES_D = "/etc/network/interfaces.d"


def xen_network_files(read: Mapping[str, Any]) -> dict[str, str]:
    """{path: text} of /etc/network/interfaces and /etc/network/interfaces.d/* from
    xen_read's answers; files that could not be read are left out."""
    found = dict(read.get("files") or {})
    for folder in (read.get("dirs") or {}).values():
        found.update(folder.get("files") or {})
    return {
        str(path): str(info["content"])
        for path, info in found.items()
        if (path == INTERFACES or str(path).startswith(INTERFACES_D + "/"))
        and info.get("readable")
        and "content" in info
    }


def xen_network_plan(
    settings: Mapping[str, Any],
    facts: Mapping[str, Any],
    files: Mapping[str, str],
    managers: Mapping[str, Any],
) -> dict[str, Any]:
    """Validated bridges and the ifupdown files that build them, or the errors."""
    host = {
        "managers": dict(managers),
        # The NIC behind the default route; an IPv6-only host has only default_ipv6.
        "default_interface": (facts.get("default_ipv4") or {}).get("interface")
        or (facts.get("default_ipv6") or {}).get("interface", ""),
        "interfaces": host_interfaces(dict(facts)),
        "files": dict(files),
    }
    return plan(dict(settings), host)


# What ifupdown must accept in a staged file before the apply script may use it.
STAGE_VALIDATE = "ifquery --interfaces=%s --list --all"


def xen_network_staged(plan: Mapping[str, Any], stage_dir: str) -> list[dict[str, str]]:
    """The xen_files module's files for the apply script: each planned ifupdown
    file under its base name (validated by ifquery) and the manifest, which
    names the files it installs and where."""
    staged = [
        {
            "path": f"{stage_dir}/{Path(path).name}",
            "content": str(content),
            "mode": "0644",
            "validate": STAGE_VALIDATE,
        }
        for path, content in (plan.get("files") or {}).items()
    ]
    staged.append(
        {"path": f"{stage_dir}/manifest", "content": str(plan["manifest"]), "mode": "0600"}
    )
    return staged


def xen_network_outcome(state: Mapping[str, Any] | None, timeout: int, waited: int) -> str:
    """Empty when the host confirmed the change; otherwise what went wrong."""
    return outcome_message(dict(state or {}), int(timeout), int(waited))


class FilterModule:
    """xen_network filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "xen_network_files": xen_network_files,
            "xen_network_plan": xen_network_plan,
            "xen_network_staged": xen_network_staged,
            "xen_network_outcome": xen_network_outcome,
        }
