"""A reader for ifupdown's interfaces(5) files that keeps every line.

The xen_network role edits /etc/network/interfaces by lines: it rewrites the
stanzas of the NICs it moves into bridges and leaves every other line, comment
and blank as the admin wrote it. So the parser records, for each stanza and
each option, which raw lines it came from.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass, field

INTERFACES = "/etc/network/interfaces"
INTERFACES_D = "/etc/network/interfaces.d"

# Top-level words of ifupdown 0.8; any other first word is an option of the
# stanza above it. "allow-*" lines (allow-hotplug, allow-auto, ...) count too.
KEYWORDS = frozenset(
    {
        "iface",
        "mapping",
        "auto",
        "source",
        "source-directory",
        "no-auto-down",
        "no-scripts",
        "rename",
    }
)
# run-parts' naming rule, which source-directory applies to file names.
_RUN_PARTS_NAME = re.compile(r"[A-Za-z0-9_-]+")

MSG_MISPLACED = (
    "{path} line {line}: option {key!r} is outside any iface stanza; ifupdown refuses this "
    "file too."
)
MSG_SHORT_IFACE = "{path} line {line}: an iface line needs a name, a family and a method."


@dataclass
class Option:
    """One option line of a stanza: `key value...`, from raw lines [first, end)."""

    key: str
    value: str
    first: int
    end: int

    @property
    def norm(self) -> str:
        """ifupdown treats bridge_ports and bridge-ports alike."""
        return self.key.lower().replace("_", "-")


@dataclass
class Stanza:
    """`iface NAME FAMILY METHOD` and its options, from raw lines [first, end)."""

    name: str
    family: str
    method: str
    options: list[Option]
    path: str
    first: int
    end: int

    def values(self, key: str) -> list[str]:
        """Words of an option (bridge-ports, bond-slaves, ...), by its normalized key."""
        words: list[str] = []
        for option in self.options:
            if option.norm == key:
                words += option.value.split()
        return words

    def signature(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What ifupdown acts on: the method and the options, not the formatting."""
        return (
            self.family,
            self.method,
            tuple((o.norm, " ".join(o.value.split())) for o in self.options),
        )


@dataclass
class Mark:
    """An `auto` or `allow-CLASS` line: the class and the interfaces it names."""

    kind: str
    names: list[str]
    line: int


@dataclass
class ParsedFile:
    path: str
    lines: list[str]
    stanzas: list[Stanza] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    # ("source", pattern) or ("source-directory", directory), as written.
    sources: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def marked(self, name: str) -> list[str]:
        """The classes (auto, allow-hotplug, ...) that name this interface."""
        return [mark.kind for mark in self.marks if name in mark.names]


def _logical_lines(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first raw line, end raw line, text) with backslash continuations joined."""
    out: list[tuple[int, int, str]] = []
    index = 0
    while index < len(lines):
        first = index
        text = lines[index]
        while text.endswith("\\") and index + 1 < len(lines):
            index += 1
            text = text[:-1].rstrip() + " " + lines[index].lstrip()
        index += 1
        out.append((first, index, text))
    return out


def parse(path: str, content: str) -> ParsedFile:
    """Parse one interfaces(5) file. Problems ifupdown would refuse go to `errors`."""
    parsed = ParsedFile(path=path, lines=content.splitlines())
    current: Stanza | None = None
    in_mapping = False
    for first, end, text in _logical_lines(parsed.lines):
        words = text.split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0]
        if keyword in KEYWORDS or keyword.startswith("allow-"):
            current, in_mapping = None, keyword == "mapping"
        if keyword == "iface":
            if len(words) < 4:
                parsed.errors.append(MSG_SHORT_IFACE.format(path=path, line=first + 1))
                continue
            current = Stanza(words[1], words[2], words[3], [], path, first, end)
            parsed.stanzas.append(current)
        elif keyword == "auto" or keyword.startswith("allow-"):
            parsed.marks.append(Mark(keyword, words[1:], first))
        elif keyword in ("source", "source-directory"):
            parsed.sources += [(keyword, word) for word in words[1:]]
        elif keyword in KEYWORDS or in_mapping:
            # mapping (and its script/map lines), no-auto-down, no-scripts, rename: kept as written.
            continue
        elif current is None:
            parsed.errors.append(MSG_MISPLACED.format(path=path, line=first + 1, key=keyword))
        else:
            value = text.split(None, 1)[1].strip() if len(words) > 1 else ""
            current.options.append(Option(keyword, value, first, end))
            current.end = end
    return parsed


def sourced_paths(parsed: ParsedFile, candidates: list[str]) -> list[str]:
    """Which of `candidates` (paths of files that exist) this file's source lines read."""
    base = posixpath.dirname(parsed.path)
    chosen: list[str] = []
    for kind, target in parsed.sources:
        target = target if target.startswith("/") else posixpath.join(base, target)
        for path in sorted(candidates):
            name = posixpath.basename(path)
            if kind == "source":
                hit = fnmatch.fnmatchcase(path, target) and not name.startswith(".")
            else:
                hit = posixpath.dirname(path) == target.rstrip("/") and bool(
                    _RUN_PARTS_NAME.fullmatch(name)
                )
            if hit and path not in chosen:
                chosen.append(path)
    return chosen


def load_config(files: dict[str, str]) -> list[ParsedFile]:
    """/etc/network/interfaces and every file it sources, in ifupdown's reading order."""
    if INTERFACES not in files:
        return []
    order: list[ParsedFile] = []
    pending = [INTERFACES]
    seen: set[str] = set()
    while pending:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.add(path)
        parsed = parse(path, files[path])
        order.append(parsed)
        pending += sourced_paths(parsed, [p for p in files if p != INTERFACES])
    return order


def definitions(config: list[ParsedFile]) -> dict[str, tuple]:
    """Per interface, everything ifupdown reads about it: stanzas and auto/allow classes."""
    defs: dict[str, list] = {}
    for parsed in config:
        for stanza in parsed.stanzas:
            if stanza.method != "mapping":
                defs.setdefault(stanza.name, []).append(stanza.signature())
    marks: dict[str, set[str]] = {}
    for parsed in config:
        for mark in parsed.marks:
            for name in mark.names:
                marks.setdefault(name, set()).add(mark.kind)
    names = set(defs) | set(marks)
    return {
        name: (tuple(sorted(marks.get(name, set()))), tuple(defs.get(name, []))) for name in names
    }
