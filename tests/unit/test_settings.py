"""One owner per setting: each variable is declared by one role, under that role's prefix.

Reads every entry point of every roles/*/meta/argument_specs.yml, the file Ansible
validates a role's input against and its README table is generated from.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
SPECS = sorted(ROLES.glob("*/meta/argument_specs.yml"))


def declarations(specs: list[Path]) -> dict[str, dict[str, set[str]]]:
    """Each top-level option name: the roles that declare it, with their entry points."""
    declared: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for spec in specs:
        role = spec.parents[1].name
        entries = (yaml.safe_load(spec.read_text()) or {}).get("argument_specs") or {}
        for entry, body in entries.items():
            for option in (body or {}).get("options") or {}:
                declared[option][role].add(entry)
    return declared


def shared(specs: list[Path]) -> list[str]:
    """One line per option that two or more roles declare."""
    return [
        f"{option}: {', '.join(sorted(roles))}"
        for option, roles in sorted(declarations(specs).items())
        if len(roles) > 1
    ]


def misnamed(specs: list[Path]) -> list[str]:
    """One line per option whose name does not start with its role's name and '_'."""
    return [
        f"{option} in {role}"
        for option, roles in sorted(declarations(specs).items())
        for role in sorted(roles)
        if not option.startswith(f"{role}_")
    ]


def test_every_role_has_specs_to_check() -> None:
    roles = sorted(path.name for path in ROLES.iterdir() if (path / "tasks").is_dir())
    assert roles
    assert [spec.parents[1].name for spec in SPECS] == roles


def test_no_setting_is_declared_by_two_roles() -> None:
    assert shared(SPECS) == []


def test_every_setting_carries_its_roles_prefix() -> None:
    assert misnamed(SPECS) == []


def write_spec(tmp_path: Path, role: str, entries: dict[str, list[str]]) -> Path:
    spec = tmp_path / role / "meta" / "argument_specs.yml"
    spec.parent.mkdir(parents=True)
    body = {
        entry: {"options": {option: {"type": "str"} for option in options}}
        for entry, options in entries.items()
    }
    spec.write_text(yaml.safe_dump({"argument_specs": body}))
    return spec


@pytest.mark.parametrize(
    ("second", "found"),
    [
        # The same name in another role's main entry point.
        (
            {"main": ["xen_network_default_bridge"]},
            ["xen_network_default_bridge: a_b, xen_network"],
        ),
        # ... or in another entry point of it.
        (
            {"main": ["a_b_x"], "images": ["xen_network_bridges"]},
            ["xen_network_bridges: a_b, xen_network"],
        ),
    ],
)
def test_a_setting_two_roles_declare_is_found(
    tmp_path: Path, second: dict[str, list[str]], found: list[str]
) -> None:
    specs = [
        write_spec(
            tmp_path, "xen_network", {"main": ["xen_network_bridges", "xen_network_default_bridge"]}
        ),
        write_spec(tmp_path, "a_b", second),
    ]
    assert shared(specs) == found


def test_a_setting_without_its_roles_prefix_is_found(tmp_path: Path) -> None:
    specs = [
        # xen_guests_x is not under the prefix xen_guest_ of a role named xen_guest.
        write_spec(tmp_path, "xen_guest", {"main": ["xen_guest_ok", "xen_guests_x"]}),
        write_spec(tmp_path, "xen_network", {"main": ["xen_networkbridges"], "other": ["bridges"]}),
    ]
    assert misnamed(specs) == [
        "bridges in xen_network",
        "xen_guests_x in xen_guest",
        "xen_networkbridges in xen_network",
    ]
