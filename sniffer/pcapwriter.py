"""Write frames as a pcap file (nanosecond timestamps), whole or not at all.

Packets are raw by nature: what `-w` writes holds every token and password as captured.
"""

from __future__ import annotations

import struct

from .atomic import AtomicFile
from .pcapfile import Frame

NANOSECOND_MAGIC = 0xA1B23C4D
SNAPLEN = 262144


class PcapWriter:
    """Streams frames of one link type into a temporary file, renamed into place on close."""

    def __init__(self, path: str, linktype: int) -> None:
        self.out = AtomicFile(path, binary=True)
        self.out.write(struct.pack("<IHHiIII", NANOSECOND_MAGIC, 2, 4, 0, 0, SNAPLEN, linktype))
        self.record = struct.Struct("<IIII")

    def write(self, frame: Frame) -> None:
        seconds = int(frame.ts)
        nanoseconds = min(999_999_999, round((frame.ts - seconds) * 1e9))
        self.out.write(self.record.pack(seconds, nanoseconds, len(frame.data), frame.wirelen))
        self.out.write(frame.data)

    def close(self) -> None:
        self.out.commit()
