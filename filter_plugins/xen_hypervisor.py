"""Jinja filters of the xen_hypervisor role: its plan and what grub.cfg holds."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Controller plugins cannot import project module_utils through
# ansible.module_utils; import the repository's own copy.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from module_utils.xen_hypervisor_plan import (  # noqa: E402
    linux_entry_id,
    plan,
    xen_entry_has_cmdline,
    xen_entry_id,
)
from module_utils.xen_xl import parse_xl_info, parse_xl_list  # noqa: E402


def xen_hypervisor_plan(settings: dict[str, Any], ram_mib: int, host_vcpus: int) -> dict[str, Any]:
    """Validated dom0 limits and command lines, or the errors that stop the role."""
    return plan(settings, int(ram_mib), int(host_vcpus))


class FilterModule:
    """xen_hypervisor filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "xen_hypervisor_plan": xen_hypervisor_plan,
            "xen_grub_entry_id": xen_entry_id,
            "xen_grub_entry_has_cmdline": xen_entry_has_cmdline,
            "xen_grub_linux_entry_id": linux_entry_id,
            "xen_xl_info": parse_xl_info,
            "xen_xl_list": parse_xl_list,
        }
