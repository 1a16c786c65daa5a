"""Jinja filters on xen_read's answers: is a file, or a line of it, already as planned."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Controller plugins cannot import `ansible.module_utils.<project module>`; see xen_preflight.py.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from module_utils.xen_read import (  # noqa: E402
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
