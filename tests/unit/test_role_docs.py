"""Tests for tools/role_docs.py on a temporary role tree."""

from pathlib import Path

import pytest
import yaml

from tools.role_docs import BEGIN_MARKER, END_MARKER, main, render_table

SPECS = """\
---
argument_specs:
  main:
    short_description: Demo role.
    options:
      demo_size:
        type: raw
        default: "1G"
        description: Memory | size for the demo.
      demo_bridges:
        type: list
        elements: dict
        default: []
        description:
          - Bridges to build.
          - One dict each.
        options:
          name:
            type: str
            required: true
            description: Bridge name.
          stp:
            type: bool
            default: false
            description: Spanning tree.
      demo_mode:
        type: str
        choices: [fast, safe]
        default: safe
        description: How to run.
      demo_network:
        type: dict
        description: Network settings.
        options:
          mtu:
            type: int
            default: 1500
            description: MTU.
"""

TABLE = """\
| Variable | Type | Default | Required | Description |
|---|---|---|---|---|
| `demo_bridges` | list[dict] | `[]` | no | Bridges to build. One dict each. |
| `demo_bridges[].name` | str |  | yes | Bridge name. |
| `demo_bridges[].stp` | bool | `false` | no | Spanning tree. |
| `demo_mode` | str | `"safe"` | no | How to run. Choices: fast, safe |
| `demo_network` | dict |  | no | Network settings. |
| `demo_network.mtu` | int | `1500` | no | MTU. |
| `demo_size` | raw | `"1G"` | no | Memory \\| size for the demo. |"""

README = f"""\
# demo

Intro.

{BEGIN_MARKER}
old table
{END_MARKER}

## Example
"""


def make_role(roles_dir: Path, name: str = "demo", readme: str = README) -> Path:
    role = roles_dir / name
    (role / "meta").mkdir(parents=True)
    (role / "meta" / "argument_specs.yml").write_text(SPECS, encoding="utf-8")
    (role / "README.md").write_text(readme, encoding="utf-8")
    return role / "README.md"


def test_render_table_sorts_rows_and_nests_options() -> None:
    options = yaml.safe_load(SPECS)["argument_specs"]["main"]["options"]
    assert render_table(options) == TABLE


def test_render_table_without_options() -> None:
    assert render_table({}) == "This role has no variables."


def test_write_replaces_only_the_marked_section(tmp_path: Path) -> None:
    readme = make_role(tmp_path)
    assert main(["--roles-dir", str(tmp_path)]) == 0
    assert readme.read_text(encoding="utf-8") == (
        f"# demo\n\nIntro.\n\n{BEGIN_MARKER}\n{TABLE}\n{END_MARKER}\n\n## Example\n"
    )


def test_output_is_stable(tmp_path: Path) -> None:
    readme = make_role(tmp_path)
    main(["--roles-dir", str(tmp_path)])
    first = readme.read_text(encoding="utf-8")
    main(["--roles-dir", str(tmp_path)])
    assert readme.read_text(encoding="utf-8") == first


def test_check_fails_when_stale_and_names_the_readme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = make_role(tmp_path)
    make_role(tmp_path, "other")
    assert main(["--roles-dir", str(tmp_path), "--check"]) == 1
    assert readme.read_text(encoding="utf-8") == README  # --check writes nothing
    err = capsys.readouterr().err
    assert f"stale: {tmp_path.name}/demo/README.md" in err
    assert f"stale: {tmp_path.name}/other/README.md" in err


def test_check_passes_when_fresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_role(tmp_path)
    assert main(["--roles-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["--roles-dir", str(tmp_path), "--check"]) == 0
    assert capsys.readouterr() == ("", "")


def test_readme_without_markers_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_role(tmp_path, readme="# demo\n")
    assert main(["--roles-dir", str(tmp_path)]) == 1
    assert "demo/README.md: needs exactly one" in capsys.readouterr().err


def test_roles_without_specs_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "plain" / "tasks").mkdir(parents=True)
    assert main(["--roles-dir", str(tmp_path), "--check"]) == 0
