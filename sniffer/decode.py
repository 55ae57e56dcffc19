"""Decode a captured frame (link layer, IPv4/IPv6, TCP) into a `Segment`, without objects per layer.

Anything that is not TCP over IP returns None and is counted by the caller; a frame cut by the
snap length yields a segment whose `missing` tells how many payload bytes the capture lacks.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# TCP flags
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

# link types (LINKTYPE_* values as written in pcap headers)
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP = 0, 1, 101, 108
LINK_SLL, LINK_SLL2, LINK_IPV4, LINK_IPV6 = 113, 276, 228, 229
LINK_RAW_ALIASES = (12, 14)  # DLT_RAW on some BSDs

ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ = 0x0800, 0x86DD, 0x8100, 0x88A8
IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options
IPV6_FRAGMENT = 44


@dataclass(frozen=True, slots=True)
class Segment:
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes
    missing: int = 0  # payload bytes cut off by the snap length


class Undecodable(Exception):
    """Why a frame carries no TCP segment (the message names a `Stats` counter)."""


def ip_payload(linktype: int, data: bytes) -> tuple[int, int]:
    """(IP version, offset of the IP header) in a frame of the given link type."""
    if linktype == LINK_ETHERNET:
        offset, ethertype = 14, int.from_bytes(data[12:14], "big")
        while ethertype in (ETH_VLAN, ETH_QINQ):
            ethertype = int.from_bytes(data[offset + 2 : offset + 4], "big")
            offset += 4
        return _ethertype_version(ethertype), offset
    if linktype == LINK_SLL:
        return _ethertype_version(int.from_bytes(data[14:16], "big")), 16
    if linktype == LINK_SLL2:
        return _ethertype_version(int.from_bytes(data[0:2], "big")), 20
    if linktype in (LINK_NULL, LINK_LOOP):
        family = int.from_bytes(data[0:4], "big" if linktype == LINK_LOOP else "little")
        if family > 0xFFFF:  # written in the other byte order
            family = int.from_bytes(data[0:4], "big")
        return {2: 4, 24: 6, 28: 6, 30: 6}.get(family, 0), 4
    if linktype in (LINK_RAW, *LINK_RAW_ALIASES, LINK_IPV4, LINK_IPV6):
        return (data[0] >> 4) if data else 0, 0
    raise Undecodable("unsupported_link")


def _ethertype_version(ethertype: int) -> int:
    return {ETH_IPV4: 4, ETH_IPV6: 6}.get(ethertype, 0)


def decode(ts: float, linktype: int, data: bytes, wirelen: int) -> Segment:
    """The TCP segment in a frame; raises Undecodable when there is none."""
    version, offset = ip_payload(linktype, data)
    cut = wirelen - len(data)  # bytes the snap length removed from the end of the frame
    if version == 4:
        if len(data) < offset + 20:
            raise Undecodable("not_tcp")
        vihl, total, frag, proto = data[offset], *struct.unpack_from("!H2xH1xB", data, offset + 2)
        if proto != 6:
            raise Undecodable("not_tcp")
        if frag & 0x3FFF:  # more fragments, or a fragment offset
            raise Undecodable("ip_fragments")
        header = (vihl & 0x0F) * 4
        src = socket.inet_ntoa(data[offset + 12 : offset + 16])
        dst = socket.inet_ntoa(data[offset + 16 : offset + 20])
        end = offset + total if total else len(data)  # 0 under segmentation offload
        tcp = offset + header
    elif version == 6:
        if len(data) < offset + 40:
            raise Undecodable("not_tcp")
        length, proto = struct.unpack_from("!HB", data, offset + 4)
        src = socket.inet_ntop(socket.AF_INET6, data[offset + 8 : offset + 24])
        dst = socket.inet_ntop(socket.AF_INET6, data[offset + 24 : offset + 40])
        end = offset + 40 + length
        tcp = offset + 40
        while proto in IPV6_EXTENSIONS and tcp + 2 <= len(data):
            proto, tcp = data[tcp], tcp + (data[tcp + 1] + 1) * 8
        if proto == IPV6_FRAGMENT:
            raise Undecodable("ip_fragments")
        if proto != 6:
            raise Undecodable("not_tcp")
    else:
        raise Undecodable("not_ip")
    if len(data) < tcp + 20:
        raise Undecodable("snapped_headers")
    sport, dport, seq, ack, off_flags = struct.unpack_from("!HHIIH", data, tcp)
    start = tcp + ((off_flags >> 12) * 4)
    wanted = end - start  # payload length according to the IP header
    payload = data[start:end] if wanted > 0 else b""
    missing = max(0, wanted - len(payload)) if cut > 0 else 0
    return Segment(ts, src, sport, dst, dport, seq, ack, off_flags & 0x3F, payload, missing)
