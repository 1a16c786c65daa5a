"""The verifiers' ICMP echo (tests/molecule/icmp_echo.py): packets and checksum."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "molecule"))
import icmp_echo


def test_checksum_of_a_packet_with_its_checksum_is_zero() -> None:
    packet = icmp_echo.echo_request(False, 0x1234, 7, b"xen-lab echo")
    assert icmp_echo.checksum(packet) == 0
    # RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2, checksum 220d
    assert icmp_echo.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_echo_request_types_and_fields() -> None:
    v4 = icmp_echo.echo_request(False, 0xBEEF, 2, b"x")
    v6 = icmp_echo.echo_request(True, 0xBEEF, 2, b"x")
    assert struct.unpack("!BBHHH", v4[:8])[0::3] == (8, 0xBEEF)
    assert struct.unpack("!BBHHH", v6[:8]) == (128, 0, 0, 0xBEEF, 2)


def ipv4(payload: bytes, ihl: int = 5) -> bytes:
    return bytes([0x40 | ihl]) + bytes(ihl * 4 - 1) + payload


@pytest.mark.parametrize(
    ("v6", "packet", "expected"),
    [
        (False, ipv4(struct.pack("!BBHHH", 0, 0, 0, 9, 1)), True),
        (False, ipv4(struct.pack("!BBHHH", 0, 0, 0, 9, 1), ihl=6), True),
        # our own request, seen on the raw socket (loopback)
        (False, ipv4(struct.pack("!BBHHH", 8, 0, 0, 9, 1)), False),
        (False, ipv4(struct.pack("!BBHHH", 0, 0, 0, 10, 1)), False),
        (False, ipv4(struct.pack("!BBHHH", 0, 0, 0, 9, 2)), False),
        (False, ipv4(b"\0\0"), False),
        (True, struct.pack("!BBHHH", 129, 0, 0, 9, 1), True),
        (True, struct.pack("!BBHHH", 128, 0, 0, 9, 1), False),
        (True, struct.pack("!BBHHH", 129, 0, 0, 9, 3), False),
    ],
)
def test_is_reply_matches_only_our_echo_reply(v6: bool, packet: bytes, expected: bool) -> None:
    assert icmp_echo.is_reply(v6, packet, 9, 1) is expected
