"""Everything a role reads on a host, in one pass.

A module run starts Python on the host, which on a dom0 under the lab's
emulated CPU costs about 3 s, and a no-op run of a role is mostly reads. The
xen_read module hands a role's whole list of reads to ``read``: files, paths,
folders, read-only commands, package and unit states, answered in one run.

Nothing here writes or fails on what it finds: a missing file, folder, command or
package is an answer (``exists: false``, ``rc: 127``, not installed), and the role
decides. A command still running after its timeout is no answer: ``run`` kills it
and raises ``CommandTimeout``, which names it.
Text is decoded as UTF-8 with undecodable bytes replaced; ``raw_files`` come
back base64-encoded instead, for binary content such as EFI variables.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_command

# Files and command output the roles parse; a longer one is cut to this many bytes
# (characters, for command output).
MAX_BYTES = 4 * 1024 * 1024
# Seconds a read-only command may take (the module's timeout option).
COMMAND_TIMEOUT = 60

Runner = Callable[[Sequence[str]], tuple[int, str, str]]


def run(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> tuple[int, str, str]:
    """Run a read-only command; a missing program is rc 127, as in a shell.

    CommandTimeout when it still runs after TIMEOUT seconds.
    """
    try:
        rc, out, err = xen_command.run(argv, timeout)
    except FileNotFoundError as exc:
        return 127, "", str(exc)
    return rc, out[:MAX_BYTES], err[:MAX_BYTES]


def path_info(path: str) -> dict[str, Any]:
    """exists, kind and ownership of a path, not following a final symbolic link."""
    try:
        st = os.lstat(path)
    except OSError:
        return {"exists": False}
    return {
        "exists": True,
        "isdir": stat.S_ISDIR(st.st_mode),
        "isreg": stat.S_ISREG(st.st_mode),
        "islnk": stat.S_ISLNK(st.st_mode),
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def file_info(path: str, *, raw: bool = False) -> dict[str, Any]:
    """path_info plus the content of a regular file (followed through links)."""
    info = path_info(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES)
    except OSError as exc:
        return {**info, "readable": False, "error": exc.strerror or str(exc)}
    info.update(readable=True, exists=True)
    if raw:
        info["content_b64"] = base64.b64encode(data).decode("ascii")
    else:
        info["content"] = data.decode("utf-8", "replace")
    return info


def dir_info(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The regular files of one folder (not recursive) that match its patterns,
    by full path, with their content when ``read`` is set."""
    path = spec["path"]
    patterns = spec.get("patterns") or ["*"]
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return {"exists": False, "files": {}}
    files: dict[str, Any] = {}
    for name in names:
        if name.startswith(".") and not spec.get("hidden", False):
            continue
        if not any(fnmatch.fnmatch(name, p) for p in patterns):
            continue
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        files[full] = file_info(full) if spec.get("read", False) else path_info(full)
    return {"exists": True, "files": files}


def packages(names: Sequence[str], runner: Runner = run) -> dict[str, str]:
    """Installed version of each package, or "" when it is not installed."""
    if not names:
        return {}
    found = dict.fromkeys(names, "")
    _rc, out, _err = runner(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status} ${Version}\n", *names]
    )
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "installed":
            name = parts[0].split(":")[0]  # libfoo:amd64 on multiarch hosts
            if name in found:
                found[name] = parts[2]
    return found


def units(names: Sequence[str], runner: Runner = run) -> dict[str, str]:
    """ActiveState of each systemd unit ("inactive" for one that does not exist)."""
    if not names:
        return {}
    states = dict.fromkeys(names, "")
    _rc, out, _err = runner(["systemctl", "show", "--property=Id,ActiveState", *names])
    # One block per unit, in the order asked, separated by blank lines.
    blocks = [b for b in out.strip().split("\n\n") if b.strip()]
    for name, block in zip(names, blocks, strict=False):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        states[name] = fields.get("ActiveState", "")
    return states


def read(spec: Mapping[str, Any], runner: Runner | None = None) -> dict[str, Any]:
    """Answer every read of ``spec`` (the module's options); see the module's docs.

    Commands run with ``run`` and the spec's ``timeout`` unless RUNNER is given.
    """
    if runner is None:
        runner = functools.partial(run, timeout=spec.get("timeout") or COMMAND_TIMEOUT)
    commands = {}
    for name, argv in (spec.get("commands") or {}).items():
        rc, out, err = runner([str(arg) for arg in argv])
        commands[name] = {"rc": rc, "stdout": out, "stderr": err}
    return {
        "paths": {p: path_info(p) for p in spec.get("paths") or []},
        "files": {p: file_info(p) for p in spec.get("files") or []},
        "raw_files": {p: file_info(p, raw=True) for p in spec.get("raw_files") or []},
        "dirs": {d["path"]: dir_info(d) for d in spec.get("dirs") or []},
        "commands": commands,
        "packages": packages(spec.get("packages") or [], runner),
        "units": units(spec.get("units") or [], runner),
    }


# What the roles decide on the controller from these answers, so that a no-op run
# calls no module that writes.


def file_in_place(info: Mapping[str, Any], content: str, mode: str) -> bool:
    """Whether a file read with ``files`` already has this content and mode, owned by root."""
    return bool(
        info.get("isreg")
        and info.get("content") == content
        and info.get("mode") == mode
        and info.get("uid") == 0
        and info.get("gid") == 0
    )


def line_in_place(info: Mapping[str, Any], regexp: str, line: str) -> bool:
    """Whether ansible.builtin.lineinfile with ``regexp`` and ``line`` would leave the
    file read with ``files`` as it is: the last line matching ``regexp`` is ``line``."""
    if not info.get("readable"):
        return False
    pattern = re.compile(regexp)
    matches = [
        text for text in info.get("content", "").splitlines(keepends=True) if pattern.search(text)
    ]
    return bool(matches) and matches[-1] == line + "\n"


def dir_in_place(info: Mapping[str, Any], mode: str) -> bool:
    """Whether a path read with ``paths`` is a folder with this mode, owned by root."""
    return bool(
        info.get("isdir")
        and info.get("mode") == mode
        and info.get("uid") == 0
        and info.get("gid") == 0
    )


def lines_to_fix(lines: Sequence[Mapping[str, str]], files: Mapping[str, Any]) -> list[Any]:
    """The ``{path, regexp, line}`` entries that lineinfile would change, given the
    files read with ``files`` (a file that was not read is never in place)."""
    return [
        entry
        for entry in lines
        if not line_in_place(files.get(entry["path"], {}), entry["regexp"], entry["line"])
    ]


def files_to_fix(wanted: Mapping[str, str], files: Mapping[str, Any], mode: str) -> dict[str, str]:
    """The files of ``wanted`` (path: content) not already in place with this mode."""
    return {
        path: content
        for path, content in wanted.items()
        if not file_in_place(files.get(path, {}), content, mode)
    }


def missing_packages(wanted: Sequence[str], installed: Mapping[str, str]) -> list[str]:
    """The packages of ``wanted`` that ``packages`` found not installed (or did not ask about)."""
    return [name for name in wanted if not installed.get(name)]
