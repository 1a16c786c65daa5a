"""Jinja filters on xen_read's answers: is a file, or a line of it, already as planned."""

from collections.abc import Callable
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_read import (
    dir_in_place,
    file_in_place,
    files_to_fix,
    line_in_place,
    lines_to_fix,
    missing_packages,
)


class FilterModule:
    """xen_read filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "xen_read_file_in_place": file_in_place,
            "xen_read_line_in_place": line_in_place,
            "xen_read_dir_in_place": dir_in_place,
            "xen_read_lines_to_fix": lines_to_fix,
            "xen_read_files_to_fix": files_to_fix,
            "xen_read_missing_packages": missing_packages,
        }
