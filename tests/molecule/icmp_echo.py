"""ICMP echo without kernel timestamps: ``python3 icmp_echo.py ADDRESS [TRIES]``.

Exit 0 as soon as ADDRESS (IPv4, or IPv6 with an optional %scope) answers one
of TRIES echo requests, else 1. The verifiers run this on the lab's dom0
instead of ping(8): ping asks for packet timestamps (SO_TIMESTAMP), which
makes the kernel patch its receive path (the netstamp static key) when ping
starts and again after it ends. Under QEMU's emulation that live patching can
crash a PV dom0 ("Oops: int3" in netif_receive_skb_list_internal), taking the
whole lab host down with it. Standard library only; needs root (raw sockets).
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time

WAIT = 5.0  # seconds for each reply


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(v6: bool, ident: int, seq: int, payload: bytes) -> bytes:
    """An echo request; for ICMPv6 the kernel fills in the checksum."""
    kind = 128 if v6 else 8
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return header + payload
    return struct.pack("!BBHHH", kind, 0, checksum(header + payload), ident, seq) + payload


def is_reply(v6: bool, packet: bytes, ident: int, seq: int) -> bool:
    """Whether a received packet is the echo reply to (ident, seq)."""
    if not v6:  # a raw IPv4 socket hands over the IP header too
        packet = packet[(packet[0] & 0x0F) * 4 :]
    if len(packet) < 8:
        return False
    kind, _, _, got_ident, got_seq = struct.unpack("!BBHHH", packet[:8])
    return kind == (129 if v6 else 0) and (got_ident, got_seq) == (ident, seq)


def answers(address: str, tries: int = 3) -> bool:
    v6 = ":" in address
    family = socket.AF_INET6 if v6 else socket.AF_INET
    target = socket.getaddrinfo(address, None, family, socket.SOCK_RAW)[0][4]
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    ident = os.getpid() & 0xFFFF
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        for seq in range(1, tries + 1):
            sock.sendto(echo_request(v6, ident, seq, b"xen-lab echo"), target)
            deadline = time.monotonic() + WAIT
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                if is_reply(v6, sock.recv(4096), ident, seq):
                    return True
    return False


if __name__ == "__main__":
    sys.exit(0 if answers(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3) else 1)
