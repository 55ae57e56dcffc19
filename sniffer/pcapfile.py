"""Read pcap and pcapng files into frames, with plain `struct` (the hot loop of offline analysis).

Theory of operation: `open_capture` sniffs the magic number and returns an iterator of `Frame`s.
A file cut short mid-record ends the iteration and sets `reader.truncated`, so everything before
the cut is still processed; a file that is not a capture raises `CaptureError` at once.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO


class CaptureError(Exception):
    """The input is not a capture this reader understands."""


@dataclass(frozen=True, slots=True)
class Frame:
    ts: float  # seconds since the epoch
    linktype: int
    data: bytes  # as captured (possibly cut by the snap length)
    wirelen: int  # length on the wire


PCAP_MAGICS = {  # magic -> (byte order, ticks per second)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
BYTE_ORDER_MAGIC = 0x1A2B3C4D


class CaptureReader:
    """Iterate the frames of one capture file; `truncated` tells whether it ended mid-record."""

    def __init__(self, path: str, stream: BinaryIO, offset: float = 0.0) -> None:
        self.path = path
        self.stream = stream
        self.truncated = False
        # a host's clock correction, whole seconds kept apart so that whole shifts are exact
        self.offset_seconds = int(offset)
        self.offset_fraction = offset - int(offset)
        magic = stream.read(4)
        if magic in PCAP_MAGICS:
            order, ticks = PCAP_MAGICS[magic]
            header = self._read(20)
            if header is None:
                raise CaptureError(f"{path}: pcap header cut short")
            linktype = struct.unpack(order + "IHHiIII", magic + header)[6] & 0x0FFFFFFF
            self._frames = self._pcap(order, ticks, linktype)
        elif magic == PCAPNG_SHB:
            head = self._read(8)
            if head is None or head[4:] not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                raise CaptureError(f"{path}: not a pcap or pcapng file (bad section header)")
            self._frames = self._pcapng(head)
        else:
            raise CaptureError(f"{path}: not a pcap or pcapng file")

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    def _read(self, n: int) -> bytes | None:
        """Exactly n bytes, or None at a clean end; a short read marks the file truncated."""
        data = self.stream.read(n)
        if len(data) == n:
            return data
        if data:
            self.truncated = True
        return None

    def _pcap(self, order: str, ticks: int, linktype: int) -> Iterator[Frame]:
        record = struct.Struct(order + "IIII")
        read = self.stream.read
        while True:
            head = read(16)
            if len(head) < 16:
                self.truncated = bool(head)
                return
            sec, frac, caplen, wirelen = record.unpack(head)
            if caplen > 0x4000000:
                raise CaptureError(f"{self.path}: corrupt record (caplen {caplen})")
            data = read(caplen)
            if len(data) < caplen:
                self.truncated = True
                return
            ts = (sec + self.offset_seconds) + frac / ticks + self.offset_fraction
            yield Frame(ts, linktype, data, wirelen)

    def _pcapng(self, first: bytes) -> Iterator[Frame]:
        """Blocks to the end; `first`: the first section header's length and byte-order mark."""
        order = "<"
        interfaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
        raw_type: bytes | None = PCAPNG_SHB
        raw_length: bytes | None  # None (as raw_type, bom) where the file ends
        bom: bytes | None
        while raw_type is not None:
            if first:
                raw_length, bom, first = first[:4], first[4:], b""
            else:
                raw_length = self._read(4)
                bom = self._read(4) if raw_type == PCAPNG_SHB else b""
            if raw_type == PCAPNG_SHB:
                if raw_length is None or bom is None:
                    break
                order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                if struct.unpack(order + "I", bom)[0] != BYTE_ORDER_MAGIC:
                    raise CaptureError(f"{self.path}: not a pcap or pcapng file")
                interfaces = []  # interface ids restart in every section
                body = self._block_body(raw_length, order, 12)
            else:
                body = self._block_body(raw_length, order, 8)
            if body is None:
                break
            block_type = struct.unpack(order + "I", raw_type)[0]
            if block_type == 1:  # interface description
                linktype = struct.unpack_from(order + "H", body, 0)[0]
                interfaces.append((linktype, _tsresol(body[8:], order)))
            elif block_type == 6:  # enhanced packet
                iface, hi, lo, caplen, wirelen = struct.unpack_from(order + "IIIII", body, 0)
                if iface >= len(interfaces):
                    raise CaptureError(f"{self.path}: packet for unknown interface {iface}")
                linktype, unit = interfaces[iface]
                ts = ((hi << 32) | lo) * unit + self.offset_seconds + self.offset_fraction
                yield Frame(ts, linktype, body[20 : 20 + caplen], wirelen)
            elif block_type == 3 and interfaces:  # simple packet: no timestamp, interface 0
                wirelen = struct.unpack_from(order + "I", body, 0)[0]
                yield Frame(0.0, interfaces[0][0], body[4 : 4 + wirelen], wirelen)
            raw_type = self._read(4)

    def _block_body(self, raw_length: bytes | None, order: str, consumed: int) -> bytes | None:
        """The rest of a block after `consumed` bytes, without its trailing length."""
        if raw_length is None:
            return None
        length = struct.unpack(order + "I", raw_length)[0]
        if length < 12 or length % 4 or length > 0x4000000:
            raise CaptureError(f"{self.path}: corrupt pcapng block (length {length})")
        body = self._read(length - consumed)
        return None if body is None else body[:-4]


def _tsresol(options: bytes, order: str) -> float:
    """Seconds per timestamp tick from an interface's options (default microseconds)."""
    pos = 0
    while pos + 4 <= len(options):
        code, size = struct.unpack_from(order + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and size >= 1:
            value = options[pos + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        pos += 4 + ((size + 3) & ~3)
    return 1e-6


def read_captures(readers: Iterable[CaptureReader]) -> Iterator[Frame]:
    """Frames of several captures merged in timestamp order (each file is assumed in order)."""
    readers = list(readers)
    if len(readers) == 1:
        return iter(readers[0])
    return heapq.merge(*readers, key=lambda frame: frame.ts)
