"""Parsers for the text that `xl info` and `xl list` print."""

from __future__ import annotations


def parse_xl_info(text: str) -> dict[str, str]:
    """`xl info` prints "key : value" lines; values may contain colons."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            info[key.strip()] = value.strip()
    return info


def parse_xl_list(text: str) -> list[dict[str, str | int | float]]:
    """Rows of `xl list`: name, id, mem (MiB), vcpus, state, time."""
    rows: list[dict[str, str | int | float]] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 6 or words[0] == "Name":
            continue
        # The name may hold no blanks in xl, so the last five columns are fixed.
        name = " ".join(words[:-5])
        domid, mem, vcpus, state, cputime = words[-5:]
        rows.append(
            {
                "name": name,
                "id": int(domid),
                "mem": int(mem),
                "vcpus": int(vcpus),
                "state": state,
                "time": float(cputime),
            }
        )
    return rows
