"""Parse memory sizes as users write them ("512M", "4GiB", 1024) into whole MiB."""

from __future__ import annotations

import re
from fractions import Fraction

# MiB per unit. Units are binary, as in Xen's own dom0_mem=512M syntax; decimal
# "MB"/"GB" are rejected rather than guessed.
_UNIT_MIB: dict[str, int] = {
    "": 1,
    "m": 1,
    "mib": 1,
    "g": 1024,
    "gib": 1024,
    "t": 1024 * 1024,
    "tib": 1024 * 1024,
}

_SIZE_RE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)", re.IGNORECASE)

SIZE_ERROR = (
    "Invalid size '{value}': use a whole number of MiB (1024) or a number with a unit"
    " M, MiB, G, GiB, T or TiB (512M, 4G, 1.5GiB) that comes to a positive whole number of MiB."
)


def parse_size_mib(value: str | int) -> int:
    """Return ``value`` in MiB.

    An int, or a string without a unit, counts MiB. Units are case-insensitive.
    Raise ValueError for zero, negatives, sizes that are not whole MiB, and junk.
    """
    mib: Fraction | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        mib = Fraction(value)
    elif isinstance(value, str):
        match = _SIZE_RE.fullmatch(value.strip())
        if match is not None and match["unit"].lower() in _UNIT_MIB:
            mib = Fraction(match["number"]) * _UNIT_MIB[match["unit"].lower()]
    if mib is None or mib <= 0 or mib.denominator != 1:
        raise ValueError(SIZE_ERROR.format(value=value))
    return int(mib)
