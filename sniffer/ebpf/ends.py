"""A TCP socket's two ends as the eBPF programs report them (`struct ends` of ends.h)."""

from __future__ import annotations

import struct

from ..flow import Endpoint, address

ENDS = struct.Struct("=HHHxx16s16s")  # family, local port, remote port, the two addresses
AF_INET6 = 10


def ends(
    family: int, local_port: int, remote_port: int, local: bytes, remote: bytes
) -> tuple[Endpoint, Endpoint]:
    """(local, remote), addresses as the capture's packets write them."""
    return (host(family, local), local_port), (host(family, remote), remote_port)


def host(family: int, raw: bytes) -> str:
    """An address as the packets carry it (an IPv4 one is the first 4 of its 16 bytes)."""
    return address(raw if family == AF_INET6 else raw[:4])
