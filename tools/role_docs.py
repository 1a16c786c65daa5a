#!/usr/bin/env python3
"""Write each role's README variable table from its meta/argument_specs.yml.

The table goes between the markers ``<!-- BEGIN VARIABLES -->`` and
``<!-- END VARIABLES -->`` in ``roles/<role>/README.md``; the rest of the README
is left alone. Rows are sorted by name, so the output depends only on the specs.

    python tools/role_docs.py           rewrite the tables that are stale
    python tools/role_docs.py --check   change nothing; exit 1 naming each stale README
"""

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

BEGIN_MARKER = "<!-- BEGIN VARIABLES -->"
END_MARKER = "<!-- END VARIABLES -->"
HEADER = ("Variable", "Type", "Default", "Required", "Description")
NO_VARIABLES = "This role has no variables."
DEFAULT_ROLES_DIR = Path(__file__).resolve().parent.parent / "roles"


class RoleDocsError(Exception):
    """A role's specs or README cannot be turned into a table."""


def _cell(text: str) -> str:
    """Make ``text`` safe inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _description(spec: Mapping[str, Any]) -> str:
    description = spec.get("description", "")
    text = " ".join(description) if isinstance(description, list) else str(description)
    choices = spec.get("choices")
    if choices:
        text = f"{text} Choices: {', '.join(str(choice) for choice in choices)}".strip()
    return text


def _type(spec: Mapping[str, Any]) -> str:
    kind = str(spec.get("type", "str"))
    elements = spec.get("elements")
    return f"{kind}[{elements}]" if kind == "list" and elements else kind


def _default(spec: Mapping[str, Any]) -> str:
    if "default" not in spec:
        return ""
    return f"`{json.dumps(spec['default'], sort_keys=True, default=str)}`"


def _rows(options: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, ...]]:
    """Yield one row per option, each followed by the rows of its sub-options."""
    for name in sorted(options):
        spec = options[name] or {}
        full_name = f"{prefix}{name}"
        yield (
            f"`{full_name}`",
            _type(spec),
            _default(spec),
            "yes" if spec.get("required", False) else "no",
            _description(spec),
        )
        if spec.get("options"):
            separator = "[]." if spec.get("type") == "list" else "."
            yield from _rows(spec["options"], f"{full_name}{separator}")


def render_table(options: Mapping[str, Any]) -> str:
    """Return the Markdown table for an entry point's ``options``."""
    if not options:
        return NO_VARIABLES
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in _rows(options)]
    return "\n".join(lines)


def load_options(spec_path: Path) -> Mapping[str, Any]:
    """Return the options of the ``main`` entry point in ``spec_path``."""
    data = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
    main_spec = (data.get("argument_specs") or {}).get("main")
    if main_spec is None:
        raise RoleDocsError(f"{spec_path}: no 'main' entry point under argument_specs")
    return main_spec.get("options") or {}


def render_readme(readme: str, table: str) -> str:
    """Return ``readme`` with ``table`` between the markers."""
    if readme.count(BEGIN_MARKER) != 1 or readme.count(END_MARKER) != 1:
        raise RoleDocsError(f"needs exactly one {BEGIN_MARKER} and one {END_MARKER}")
    before, _, rest = readme.partition(BEGIN_MARKER)
    if END_MARKER not in rest:
        raise RoleDocsError(f"{END_MARKER} comes before {BEGIN_MARKER}")
    after = rest.partition(END_MARKER)[2]
    return f"{before}{BEGIN_MARKER}\n{table}\n{END_MARKER}{after}"


def update_roles(roles_dir: Path, check: bool) -> int:
    """Bring every README under ``roles_dir`` up to date (or, with ``check``, report it).

    Return the exit status: 1 if a README is stale under ``check`` or a role fails.
    """
    status = 0
    for spec_path in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        readme_path = spec_path.parent.parent / "README.md"
        shown = readme_path.relative_to(roles_dir.parent)
        try:
            readme = readme_path.read_text(encoding="utf-8")
            updated = render_readme(readme, render_table(load_options(spec_path)))
        except (OSError, yaml.YAMLError, RoleDocsError) as err:
            print(f"error: {shown}: {err}", file=sys.stderr)
            status = 1
            continue
        if updated == readme:
            continue
        if check:
            print(f"stale: {shown} (run python tools/role_docs.py)", file=sys.stderr)
            status = 1
        else:
            readme_path.write_text(updated, encoding="utf-8")
            print(f"updated: {shown}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 if a README would change",
    )
    parser.add_argument(
        "--roles-dir",
        type=Path,
        default=DEFAULT_ROLES_DIR,
        help="directory holding the roles (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    return update_roles(args.roles_dir, args.check)


if __name__ == "__main__":
    sys.exit(main())
