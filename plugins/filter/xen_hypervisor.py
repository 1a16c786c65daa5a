"""Jinja filters of the xen_hypervisor role: its plan and what grub.cfg holds."""

from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_hypervisor_plan import (
    dom0_runs_cmdline,
    linux_entry_id,
    plan,
    xen_entry_has_cmdline,
    xen_entry_id,
    xen_runs_cmdline,
)
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import (
    parse_xl_info,
    parse_xl_list,
)


def xen_hypervisor_plan(
    settings: dict[str, Any],
    ram_mib: int,
    host_vcpus: int,
    grub_probe: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Validated dom0 limits and command lines, or the errors that stop the role."""
    return plan(settings, int(ram_mib), int(host_vcpus), grub_probe)


class FilterModule:
    """xen_hypervisor filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "xen_hypervisor_plan": xen_hypervisor_plan,
            "xen_grub_entry_id": xen_entry_id,
            "xen_grub_entry_has_cmdline": xen_entry_has_cmdline,
            "xen_hypervisor_runs_cmdline": xen_runs_cmdline,
            "xen_dom0_runs_cmdline": dom0_runs_cmdline,
            "xen_grub_linux_entry_id": linux_entry_id,
            "xen_xl_info": parse_xl_info,
            "xen_xl_list": parse_xl_list,
        }
