"""A TCP socket's two ends as the eBPF programs report them (`struct ends` of ends.h)."""

from __future__ import annotations

import socket
import struct

from ..flow import Endpoint

ENDS = struct.Struct("=HHHxx16s16s")  # family, local port, remote port, the two addresses
AF_INET6 = 10
MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:a.b.c.d, an IPv4 peer of an IPv6 socket


def ends(
    family: int, local_port: int, remote_port: int, local: bytes, remote: bytes
) -> tuple[Endpoint, Endpoint]:
    """(local, remote), addresses as the capture's packets write them."""
    return (host(family, local), local_port), (host(family, remote), remote_port)


def host(family: int, raw: bytes) -> str:
    """An address (an IPv4-mapped IPv6 one as IPv4, as the packets carry it)."""
    if family != AF_INET6:
        return socket.inet_ntoa(raw[:4])
    if raw.startswith(MAPPED):
        return socket.inet_ntoa(raw[12:])
    return socket.inet_ntop(socket.AF_INET6, raw)
