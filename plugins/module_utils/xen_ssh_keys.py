"""SSH public keys as a guest's ``authorized_keys`` gets them, checked before they are written.

``key_problem`` reads one line the way sshd(8) reads a line of ``authorized_keys``:
optional options, a key type, the key as base64, an optional comment. It returns
what is wrong with it as the end of a sentence (the caller names the key first), or
None for a key sshd would accept. sshd skips a line it cannot read without a word, so
a guest would boot with nobody able to log in.

- The key type is one OpenSSH 9 accepts by default (``KEY_TYPES``); DSA keys are
  refused by sshd since OpenSSH 7.0.
- The base64 body must decode, with its padding, as sshd decodes it, to the key blob of
  that type: the type string again (the first length-prefixed field), then exactly the
  fields of that type's public key (RFC 4253, RFC 5656, PROTOCOL.u2f). A body cut short
  or with bytes left over is refused.
- Options before the key type (``from="10.0.0.0/8",no-pty ssh-ed25519 ...``) are kept
  as written: each must be one sshd knows, a flag without a value or a name with a
  quoted value as sshd asks for.
"""

from __future__ import annotations

import base64
import binascii
import struct

# Key types and the fields of their public key blob after the type string: a field
# name; "curve" must equal the curve the type names, "ed25519" is 32 bytes.
KEY_TYPES: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ed25519",),
    "ssh-rsa": ("e", "n"),
    "ecdsa-sha2-nistp256": ("curve", "q"),
    "ecdsa-sha2-nistp384": ("curve", "q"),
    "ecdsa-sha2-nistp521": ("curve", "q"),
    "sk-ssh-ed25519@openssh.com": ("ed25519", "application"),
    "sk-ecdsa-sha2-nistp256@openssh.com": ("curve", "q", "application"),
}
# authorized_keys options of sshd(8): flags (those in NEGATABLE also as no-<flag>) and
# options that take a quoted value. sshd compares their names without regard to case.
NEGATABLE = (
    "agent-forwarding",
    "port-forwarding",
    "pty",
    "touch-required",
    "user-rc",
    "verify-required",
    "x11-forwarding",
)
FLAGS = ("cert-authority", "restrict", *NEGATABLE, *(f"no-{flag}" for flag in NEGATABLE))
VALUED = (
    "command",
    "environment",
    "expiry-time",
    "from",
    "permitlisten",
    "permitopen",
    "principals",
    "tunnel",
)

PROBLEM_TYPE = "starts with {value!r}, which is not a key type: use one of " + ", ".join(KEY_TYPES)
PROBLEM_OPTION = "has {value!r} before its key type, which is not an option sshd knows"
PROBLEM_QUOTE = "has options with a double quote that is never closed"
PROBLEM_NO_KEY_TYPE = "has options but no key type after them"
PROBLEM_NO_BODY = "has the key type {type} but no key after it"
PROBLEM_BASE64 = "has an {type} key whose body is not valid base64"
PROBLEM_MISMATCH = "says {type}, but its body is a key of type {inner}"
PROBLEM_BLOB = "is not a whole {type} key: its body is cut short or has bytes left over"

# The longest part of a line that a problem quotes.
_QUOTED_MAX = 40


def _short(text: str) -> str:
    return text if len(text) <= _QUOTED_MAX else text[: _QUOTED_MAX - 3] + "..."


def _fields(blob: bytes) -> list[bytes] | None:
    """The length-prefixed fields of an SSH wire-format blob; None when one is cut short."""
    fields = []
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            return None
        (length,) = struct.unpack_from(">I", blob, offset)
        offset += 4
        if offset + length > len(blob):
            return None
        fields.append(blob[offset : offset + length])
        offset += length
    return fields


def _blob_problem(key_type: str, body: str) -> str | None:
    try:
        blob = base64.b64decode(body.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return PROBLEM_BASE64.format(type=key_type)
    fields = _fields(blob)
    if not fields:
        return PROBLEM_BLOB.format(type=key_type)
    try:
        inner = fields[0].decode("ascii")
    except UnicodeDecodeError:
        return PROBLEM_BLOB.format(type=key_type)
    if inner != key_type:
        if inner in KEY_TYPES or (inner.isprintable() and 0 < len(inner) <= 64):
            return PROBLEM_MISMATCH.format(type=key_type, inner=_short(inner))
        return PROBLEM_BLOB.format(type=key_type)
    layout = KEY_TYPES[key_type]
    values = fields[1:]
    curve = key_type.removesuffix("@openssh.com").rsplit("-", 1)[-1]
    if len(values) != len(layout) or not all(values):
        return PROBLEM_BLOB.format(type=key_type)
    for name, value in zip(layout, values, strict=True):
        if (name == "ed25519" and len(value) != 32) or (
            name == "curve" and value != curve.encode()
        ):
            return PROBLEM_BLOB.format(type=key_type)
    return None


def _split_options(line: str) -> tuple[list[str], str] | None:
    """The options before the first blank outside double quotes, and the rest of the line.

    None when a double quote is never closed. Inside quotes ``\\"`` is a quote.
    """
    options: list[str] = []
    current = ""
    quoted = False
    index = 0
    while index < len(line):
        char = line[index]
        if quoted and char == "\\" and line[index + 1 : index + 2] == '"':
            current += '\\"'
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char in " \t":
            break
        elif not quoted and char == ",":
            options.append(current)
            current = ""
            index += 1
            continue
        current += char
        index += 1
    if quoted:
        return None
    options.append(current)
    return options, line[index:].strip()


def _option_ok(option: str) -> bool:
    name, sep, value = option.partition("=")
    name = name.lower()
    if not sep:
        return name in FLAGS
    return name in VALUED and len(value) >= 2 and value[0] == value[-1] == '"'


def key_problem(line: str) -> str | None:
    """What keeps sshd from using LINE as a key of ``authorized_keys``; None when nothing.

    LINE is one line without its newline.
    """
    words = line.split()
    if not words:
        return PROBLEM_TYPE.format(value="")
    first = words[0]
    if first not in KEY_TYPES:
        # Options come first only on a line that has a key type further on.
        if not any(word in KEY_TYPES for word in words[1:]):
            return PROBLEM_TYPE.format(value=_short(first))
        split = _split_options(line.strip())
        if split is None:
            return PROBLEM_QUOTE
        options, rest = split
        for option in options:
            if not _option_ok(option):
                return PROBLEM_OPTION.format(value=_short(option))
        words = rest.split()
        if not words:
            return PROBLEM_NO_KEY_TYPE
        if words[0] not in KEY_TYPES:
            return PROBLEM_TYPE.format(value=_short(words[0]))
    key_type = words[0]
    if len(words) < 2:
        return PROBLEM_NO_BODY.format(type=key_type)
    return _blob_problem(key_type, words[1])
