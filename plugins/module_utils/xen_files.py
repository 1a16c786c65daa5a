"""Many files, folders and links on a host brought to their wanted state in one pass.

The xen_files module hands a whole set of files (a guest set's, a network
plan's) to ``apply``: one module run instead of one per file, which is what a
run costs on a dom0 (each module run starts Python on the host; on the lab's
emulated CPU about 3 s).

``apply`` plans every step first and, unless ``check`` is set, carries them out
in order: folders, files, copies, links, removals. Files and copies are written
to a temporary file beside their destination, validated there when asked, and
renamed into place, so a destination is either its old or its complete new
content. Everything is owned by the user running it (root on a dom0).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_command

MSG_NOT_A_DIRECTORY = "{path} exists and is not a folder."
MSG_NOT_A_LINK = "{path} exists and is not a symbolic link; remove it or rename it first."
MSG_NOT_A_FILE = "{path} exists and is not a regular file."
MSG_NO_SOURCE = "{src} does not exist, so {dest} cannot be copied from it."
MSG_INVALID = "{path} was not written: `{command}` refused it (exit code {rc}): {output}"
MSG_LOCKED = "{path} is held by another process: {message}"
MSG_BAD_VALIDATE = "validate for {path} must contain %s where the file's path goes: {validate}"
MSG_VALIDATE_TIMEOUT = "{path} was not written: {error}."
# Seconds a validate command may take (the module's validate_timeout option).
VALIDATE_TIMEOUT = 60

Runner = Callable[[list[str]], tuple[int, str]]


@dataclass
class Result:
    """What changed (or would change) by path, with diffs of the files that may be shown."""

    changed: list[str] = field(default_factory=list)
    diff: list[dict[str, str]] = field(default_factory=list)
    exists: dict[str, bool] = field(default_factory=dict)


def run_validate(argv: list[str], timeout: float = VALIDATE_TIMEOUT) -> tuple[int, str]:
    """Exit code and output of a validate command; CommandTimeout when it hangs."""
    rc, out, err = xen_command.run(argv, timeout)
    return rc, (out + err).strip()


def _mode(value: str | int) -> int:
    return int(value, 8) if isinstance(value, str) else value


def _mode_differs(path: str, mode: int) -> bool:
    return stat.S_IMODE(os.lstat(path).st_mode) != mode


def _read(path: str) -> str | None:
    if not os.path.lexists(path):
        return None
    if not os.path.isfile(path) or os.path.islink(path):
        raise ValueError(MSG_NOT_A_FILE.format(path=path))
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return handle.read()


def _write(
    path: str, write: Callable[[Any], None], mode: int, validate: str | None, run: Runner
) -> None:
    """Writes through a temporary file beside PATH; PATH changes only when all went well."""
    folder = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(prefix=".xen-files-", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.chmod(temporary, mode)
        if validate:
            command = shlex.split(validate.replace("%s", shlex.quote(temporary)))
            try:
                rc, output = run(command)
            except xen_command.CommandTimeout as exc:
                raise ValueError(MSG_VALIDATE_TIMEOUT.format(path=path, error=exc)) from exc
            if rc != 0:
                raise ValueError(
                    MSG_INVALID.format(path=path, command=" ".join(command), rc=rc, output=output)
                )
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def hold(path: str | None, message: str) -> Iterator[None]:
    """Holds an exclusive flock(2) on PATH, created if need be, or raises ValueError.

    Never waits: another holder means another run is changing the same files.
    The lock is the one shell scripts take with ``flock`` on the same path.
    """
    if not path:
        yield
        return
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(MSG_LOCKED.format(path=path, message=message)) from None
        yield
    finally:
        os.close(handle)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def apply(
    *,
    directories: Sequence[Mapping[str, Any]] = (),
    files: Sequence[Mapping[str, Any]] = (),
    secret_files: Sequence[Mapping[str, Any]] = (),
    copies: Sequence[Mapping[str, Any]] = (),
    links: Sequence[Mapping[str, Any]] = (),
    absent: Sequence[str] = (),
    probe: Sequence[str] = (),
    check: bool = False,
    run: Runner = run_validate,
) -> Result:
    """Brings every listed path to its wanted state.

    Raises ValueError, naming the path, for the first one that cannot be.
    """
    result = Result(exists={path: os.path.lexists(path) for path in probe})

    for item in directories:
        path, mode = item["path"], _mode(item["mode"])
        if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
            raise ValueError(MSG_NOT_A_DIRECTORY.format(path=path))
        if os.path.isdir(path) and not _mode_differs(path, mode):
            continue
        result.changed.append(path)
        if not check:
            os.makedirs(path, mode=mode, exist_ok=True)
            os.chmod(path, mode)

    for item, secret in [(item, False) for item in files] + [(item, True) for item in secret_files]:
        path, mode, content = item["path"], _mode(item["mode"]), item["content"]
        validate = item.get("validate")
        if validate and "%s" not in validate:
            raise ValueError(MSG_BAD_VALIDATE.format(path=path, validate=validate))
        before = _read(path)
        if before == content and not _mode_differs(path, mode):
            continue
        result.changed.append(path)
        if before != content:
            hidden = "(content not shown: it may hold secrets)\n"
            result.diff.append(
                {
                    "before_header": path,
                    "after_header": path,
                    "before": hidden if secret and before is not None else before or "",
                    "after": hidden if secret else content,
                }
            )
        if check:
            continue
        if before == content:
            os.chmod(path, mode)
        else:
            data = content.encode("utf-8", errors="surrogateescape")
            _write(path, lambda out, data=data: out.write(data), mode, validate, run)

    for item in copies:
        src, dest, mode = item["src"], item["dest"], _mode(item["mode"])
        if os.path.lexists(dest):
            if os.path.islink(dest) or not os.path.isfile(dest):
                raise ValueError(MSG_NOT_A_FILE.format(path=dest))
            # A copy is made once: a newer source never replaces it.
            if not _mode_differs(dest, mode):
                continue
            result.changed.append(dest)
            if not check:
                os.chmod(dest, mode)
            continue
        result.changed.append(dest)
        if check:
            continue
        if not os.path.isfile(src):
            raise ValueError(MSG_NO_SOURCE.format(src=src, dest=dest))

        def copy(out: Any, src: str = src) -> None:
            with open(src, "rb") as source:
                shutil.copyfileobj(source, out, 1024 * 1024)

        _write(dest, copy, mode, None, run)

    for item in links:
        src, dest = item["src"], item["dest"]
        if os.path.islink(dest) and os.readlink(dest) == src:
            continue
        if os.path.lexists(dest) and not os.path.islink(dest):
            raise ValueError(MSG_NOT_A_LINK.format(path=dest))
        result.changed.append(dest)
        if not check:
            temporary = os.path.join(os.path.dirname(dest), f".xen-files-{os.path.basename(dest)}")
            if os.path.lexists(temporary):
                os.unlink(temporary)
            os.symlink(src, temporary)
            os.replace(temporary, dest)

    for path in absent:
        if not os.path.lexists(path):
            continue
        result.changed.append(path)
        if not check:
            _remove(path)

    return result
