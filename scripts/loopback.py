"""Capture what an action sends over loopback, and save it as a pcap (shared by the labs)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sniffer.afpacket import LiveCapture  # noqa: E402
from sniffer.decode import Undecodable, decode  # noqa: E402
from sniffer.pcapfile import Frame  # noqa: E402


def capture(ports: Iterable[int], action: Callable[[], None], settle: float = 0.3) -> list[Frame]:
    """Run `action` while capturing the TCP packets on `lo` to or from any of `ports`."""
    ports = set(ports)
    live = LiveCapture("lo")

    def ours(data: bytes) -> bool:
        try:
            segment = decode(0.0, 1, data, len(data))
        except (Undecodable, IndexError, ValueError, OSError):
            return False
        return segment.sport in ports or segment.dport in ports

    frames: list[Frame] = []
    reader = threading.Thread(target=lambda: frames.extend(live.frames(ours)))
    reader.start()
    time.sleep(0.2)
    try:
        action()
    finally:
        time.sleep(settle)  # let the last segments and FINs through
        live.stop()
        reader.join()
    return frames


def write_pcap(path: str, frames: list[Frame]) -> None:
    """Write frames as an Ethernet pcap, atomically."""
    temp = path + ".tmp"
    with open(temp, "wb") as out:
        writer = dpkt.pcap.Writer(out, snaplen=262144, linktype=dpkt.pcap.DLT_EN10MB)
        for frame in frames:
            writer.writepkt(frame.data, ts=frame.ts)
    os.replace(temp, path)
