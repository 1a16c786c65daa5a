"""Jinja filter ``xen_size_mib``: a memory size such as "4G" or 512 as whole MiB."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

# Ansible ships the `module_utils` path only to modules that run on hosts; controller
# plugins such as this filter cannot import `ansible.module_utils.<project module>`.
# Import the project's own copy from the repository root instead.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from module_utils.xen_sizes import parse_size_mib  # noqa: E402


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
