"""Jinja filter ``xen_size_mib``: a memory size such as "4G" or 512 as whole MiB."""

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_sizes import parse_size_mib


def xen_size_mib(value: str | int, name: str = "") -> int:
    """Return ``value`` in MiB, or fail the task with the parser's message.

    ``name``, the variable the value came from, leads the message when given:
    ``{{ xen_preflight_dom0_mem | xen_size_mib('xen_preflight_dom0_mem') }}``.
    """
    try:
        return parse_size_mib(value)
    except ValueError as err:
        raise AnsibleFilterError(f"{name}: {err}" if name else str(err)) from err


class FilterModule:
    """Memory size filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"xen_size_mib": xen_size_mib}
