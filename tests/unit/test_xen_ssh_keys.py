"""SSH public keys read as sshd reads a line of authorized_keys, on keys made by ssh-keygen."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_ssh_keys as sk
from unit.keys import ED25519, KEYS

DATA = Path(__file__).parent / "data"


def fields(line: str) -> list[bytes]:
    blob = base64.b64decode(line.split()[1])
    found = sk._fields(blob)
    assert found is not None
    return found


def wire(*values: bytes) -> str:
    """A key blob in SSH wire format, as base64: each value with its 32-bit length."""
    return base64.b64encode(b"".join(struct.pack(">I", len(v)) + v for v in values)).decode()


# Security-key types, laid out as OpenSSH's PROTOCOL.u2f gives them: the key of the
# plain type, then the application ("ssh:" unless the user chose another).
SK_ED25519 = (
    "sk-ssh-ed25519@openssh.com "
    + wire(b"sk-ssh-ed25519@openssh.com", fields(ED25519)[1], b"ssh:")
    + " admin@example.org"
)
SK_ECDSA = (
    "sk-ecdsa-sha2-nistp256@openssh.com "
    + wire(
        b"sk-ecdsa-sha2-nistp256@openssh.com",
        b"nistp256",
        fields(KEYS["ecdsa-sha2-nistp256"])[2],
        b"ssh:",
    )
    + " admin@example.org"
)


def test_the_test_keys_are_one_of_each_plain_type() -> None:
    assert set(KEYS) | {"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"} == (
        set(sk.KEY_TYPES)
    )


@pytest.mark.parametrize(
    "line", [*KEYS.values(), SK_ED25519, SK_ECDSA], ids=lambda line: line.split()[0]
)
def test_every_key_type_sshd_accepts_by_default_is_accepted(line: str) -> None:
    assert sk.key_problem(line) is None
    # The comment is optional.
    assert sk.key_problem(" ".join(line.split()[:2])) is None


@pytest.mark.parametrize(
    "options",
    [
        "no-pty",
        "restrict,pty",
        'from="192.0.2.0/24,198.51.100.7",no-agent-forwarding,NO-X11-FORWARDING',
        'command="uptime -p",environment="LANG=C"',
        'command="echo \\"a b\\"",no-port-forwarding',
        'expiry-time="20300101",principals="ops",permitopen="192.0.2.1:80"',
        'cert-authority,permitlisten="localhost:8080",tunnel="0",no-user-rc',
        "no-touch-required,verify-required",
    ],
)
def test_authorized_keys_options_are_accepted(options: str) -> None:
    assert sk.key_problem(f"{options} {ED25519}") is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", sk.PROBLEM_TYPE.format(value="")),
        ("ssh-ed448 AAAA", sk.PROBLEM_TYPE.format(value="ssh-ed448")),
        (f"port-forwarding=yes {ED25519}", sk.PROBLEM_OPTION.format(value="port-forwarding=yes")),
        (f'no-pty,"from" {ED25519}', sk.PROBLEM_OPTION.format(value='"from"')),
        (f'command="x" other {ED25519}', sk.PROBLEM_TYPE.format(value="other")),
        ('command="echo ssh-ed25519 x"', sk.PROBLEM_NO_KEY_TYPE),
        (
            "ssh-ed25519 " + wire(b"ssh-ed25519", b"k" * 31),
            sk.PROBLEM_BLOB.format(type="ssh-ed25519"),
        ),
        (
            "ssh-ed25519 " + wire(b"ssh-ed25519", b"k" * 32, b"more"),
            sk.PROBLEM_BLOB.format(type="ssh-ed25519"),
        ),
        (
            "ecdsa-sha2-nistp384 " + wire(b"ecdsa-sha2-nistp384", b"nistp256", b"\x04q"),
            sk.PROBLEM_BLOB.format(type="ecdsa-sha2-nistp384"),
        ),
        (
            "ssh-rsa " + wire(b"ssh-rsa", b"\x01\x00\x01", b""),
            sk.PROBLEM_BLOB.format(type="ssh-rsa"),
        ),
        (
            "sk-ssh-ed25519@openssh.com " + ED25519.split()[1],
            sk.PROBLEM_MISMATCH.format(type="sk-ssh-ed25519@openssh.com", inner="ssh-ed25519"),
        ),
        (
            "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x02\xff\xfe").decode(),
            sk.PROBLEM_BLOB.format(type="ssh-ed25519"),
        ),
        ("ssh-ed25519 AAAA!AAA", sk.PROBLEM_BASE64.format(type="ssh-ed25519")),
    ],
    ids=[
        "empty",
        "unknown type",
        "flag with a value",
        "quoted option name",
        "a word between options and type",
        "the type only inside an option",
        "ed25519 key one byte short",
        "bytes left over",
        "ecdsa curve of another type",
        "empty rsa modulus",
        "plain key said to be a security key",
        "type string that is not text",
        "not base64",
    ],
)
def test_each_problem_is_found(line: str, problem: str) -> None:
    assert sk.key_problem(line) == problem
