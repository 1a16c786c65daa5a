"""xen_files.apply: the xen_files module's folders, files, copies, links and removals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _tree(root: Path) -> dict[str, str]:
    """Every path under ROOT with what it is: a folder's mode, a file's content, a link's target."""
    found = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[name] = f"dir {_mode(path):o}"
        else:
            found[name] = f"{_mode(path):o} {path.read_text()}"
    return found


def _guest_set(root: Path) -> dict[str, list]:
    return {
        "directories": [{"path": str(root / "seed/web1"), "mode": "0700"}],
        "files": [{"path": str(root / "web1.cfg"), "content": "name = 'web1'\n", "mode": "0644"}],
        "secret_files": [
            {
                "path": str(root / "seed/web1/user-data"),
                "content": "password: s3cret\n",
                "mode": "0600",
            }
        ],
        "links": [{"src": str(root / "web1.cfg"), "dest": str(root / "auto-web1.cfg")}],
    }


def test_a_guest_set_is_written_once_then_nothing_changes(tmp_path: Path) -> None:
    first = xen_files.apply(**_guest_set(tmp_path))
    assert first.changed == [
        str(tmp_path / "seed/web1"),
        str(tmp_path / "web1.cfg"),
        str(tmp_path / "seed/web1/user-data"),
        str(tmp_path / "auto-web1.cfg"),
    ]
    assert _tree(tmp_path) == {
        "auto-web1.cfg": f"-> {tmp_path}/web1.cfg",
        "seed": "dir 755",
        "seed/web1": "dir 700",
        "seed/web1/user-data": "600 password: s3cret\n",
        "web1.cfg": "644 name = 'web1'\n",
    }
    again = xen_files.apply(**_guest_set(tmp_path))
    assert (again.changed, again.diff) == ([], [])


def test_check_mode_reports_the_changes_and_makes_none(tmp_path: Path) -> None:
    result = xen_files.apply(**_guest_set(tmp_path), check=True)
    assert len(result.changed) == 4
    assert _tree(tmp_path) == {}


def test_diffs_show_file_content_but_never_a_secret(tmp_path: Path) -> None:
    xen_files.apply(**_guest_set(tmp_path))
    changed = _guest_set(tmp_path)
    changed["files"][0]["content"] = "name = 'web1'\nmemory = 512\n"
    changed["secret_files"][0]["content"] = "password: n3w\n"
    result = xen_files.apply(**changed)
    assert result.diff[0] == {
        "before_header": str(tmp_path / "web1.cfg"),
        "after_header": str(tmp_path / "web1.cfg"),
        "before": "name = 'web1'\n",
        "after": "name = 'web1'\nmemory = 512\n",
    }
    assert "s3cret" not in str(result.diff) and "n3w" not in str(result.diff)
    assert (tmp_path / "seed/web1/user-data").read_text() == "password: n3w\n"


def test_a_wrong_mode_alone_is_a_change_and_is_fixed(tmp_path: Path) -> None:
    xen_files.apply(**_guest_set(tmp_path))
    (tmp_path / "web1.cfg").chmod(0o666)
    (tmp_path / "seed/web1").chmod(0o755)
    result = xen_files.apply(**_guest_set(tmp_path))
    assert result.changed == [str(tmp_path / "seed/web1"), str(tmp_path / "web1.cfg")]
    assert result.diff == []
    assert (_mode(tmp_path / "web1.cfg"), _mode(tmp_path / "seed/web1")) == (0o644, 0o700)


def test_a_file_that_fails_validation_is_not_written_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    config = tmp_path / "web1.cfg"
    config.write_text("old\n")
    seen: list[list[str]] = []

    def refuse(argv: list[str]) -> tuple[int, str]:
        seen.append(argv)
        assert Path(argv[-1]).read_text() == "new\n"
        return 1, "Failed to parse config: syntax error"

    item = {"path": str(config), "content": "new\n", "mode": "0644", "validate": "xl -N create %s"}
    with pytest.raises(ValueError) as error:
        xen_files.apply(files=[item], run=refuse)
    assert str(error.value).startswith(f"{config} was not written: `xl -N create ")
    assert str(error.value).endswith(
        "refused it (exit code 1): Failed to parse config: syntax error"
    )
    assert seen[0][:3] == ["xl", "-N", "create"]
    assert _tree(tmp_path) == {"web1.cfg": "644 old\n"}


def test_a_validated_file_is_written(tmp_path: Path) -> None:
    item = {
        "path": str(tmp_path / "a.cfg"),
        "content": "x\n",
        "mode": "0644",
        "validate": "true %s",
    }
    assert xen_files.apply(files=[item], run=lambda argv: (0, "")).changed == [item["path"]]
    assert (tmp_path / "a.cfg").read_text() == "x\n"


def test_validate_without_a_placeholder_is_refused(tmp_path: Path) -> None:
    item = {
        "path": str(tmp_path / "a.cfg"),
        "content": "x\n",
        "mode": "0644",
        "validate": "xl -N create",
    }
    with pytest.raises(ValueError, match="must contain %s"):
        xen_files.apply(files=[item])
    assert _tree(tmp_path) == {}


def test_a_copy_is_made_once_and_a_newer_source_never_replaces_it(tmp_path: Path) -> None:
    source = tmp_path / "vmlinuz"
    source.write_text("kernel 1\n")
    copy = [{"src": str(source), "dest": str(tmp_path / "boot-vmlinuz"), "mode": "0600"}]
    assert xen_files.apply(copies=copy).changed == [str(tmp_path / "boot-vmlinuz")]
    source.write_text("kernel 2\n")
    assert xen_files.apply(copies=copy).changed == []
    assert (tmp_path / "boot-vmlinuz").read_text() == "kernel 1\n"
    assert _mode(tmp_path / "boot-vmlinuz") == 0o600


def test_a_copy_from_a_missing_source_fails_but_is_a_change_in_check_mode(tmp_path: Path) -> None:
    copy = [{"src": str(tmp_path / "none"), "dest": str(tmp_path / "dest"), "mode": "0600"}]
    assert xen_files.apply(copies=copy, check=True).changed == [str(tmp_path / "dest")]
    with pytest.raises(ValueError, match=r"none does not exist, so .*dest cannot be copied"):
        xen_files.apply(copies=copy)
    assert _tree(tmp_path) == {}


def test_a_link_pointing_elsewhere_is_replaced_but_a_file_is_kept(tmp_path: Path) -> None:
    (tmp_path / "auto").symlink_to("/etc/xen/old.cfg")
    link = [{"src": "/etc/xen/new.cfg", "dest": str(tmp_path / "auto")}]
    assert xen_files.apply(links=link).changed == [str(tmp_path / "auto")]
    assert os.readlink(tmp_path / "auto") == "/etc/xen/new.cfg"
    (tmp_path / "auto").unlink()
    (tmp_path / "auto").write_text("a copy made by hand\n")
    with pytest.raises(ValueError, match="is not a symbolic link"):
        xen_files.apply(links=link)
    assert (tmp_path / "auto").read_text() == "a copy made by hand\n"


def test_removals_take_folders_with_their_content_files_and_links(tmp_path: Path) -> None:
    xen_files.apply(**_guest_set(tmp_path))
    gone = [str(tmp_path / name) for name in ("auto-web1.cfg", "web1.cfg", "seed/web1", "never")]
    assert xen_files.apply(absent=gone).changed == gone[:3]
    assert _tree(tmp_path) == {"seed": "dir 755"}


def test_probes_are_read_before_anything_changes(tmp_path: Path) -> None:
    target = str(tmp_path / "web1.cfg")
    result = xen_files.apply(
        files=[{"path": target, "content": "x\n", "mode": "0644"}], probe=[target, str(tmp_path)]
    )
    assert result.exists == {target: False, str(tmp_path): True}


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ({"directories": [{"path": "FILE", "mode": "0755"}]}, "FILE exists and is not a folder."),
        (
            {"files": [{"path": "DIR", "content": "", "mode": "0644"}]},
            "DIR exists and is not a regular file.",
        ),
        (
            {"copies": [{"src": "FILE", "dest": "DIR", "mode": "0644"}]},
            "DIR exists and is not a regular file.",
        ),
    ],
)
def test_a_path_of_the_wrong_kind_is_refused_and_kept(
    tmp_path: Path, steps: dict[str, list[dict[str, str]]], message: str
) -> None:
    (tmp_path / "FILE").write_text("kept\n")
    (tmp_path / "DIR").mkdir()
    names = {"FILE": str(tmp_path / "FILE"), "DIR": str(tmp_path / "DIR")}
    for items in steps.values():
        for item in items:
            for key, value in item.items():
                item[key] = names.get(value, value)
    expected = message.replace("FILE", names["FILE"]).replace("DIR", names["DIR"])
    with pytest.raises(ValueError) as error:
        xen_files.apply(**steps)
    assert str(error.value) == expected
    assert _tree(tmp_path) == {"DIR": "dir 755", "FILE": "644 kept\n"}
