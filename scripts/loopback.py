"""Capture what an action sends over loopback into a pcap (shared by the labs)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sniffer.afpacket import LiveCapture  # noqa: E402

ETHERNET = {4: b"\0" * 12 + b"\x08\x00", 6: b"\0" * 12 + b"\x86\xdd"}


def _capture(ports: set[int], path: str, ready, stop, result) -> None:
    """Child process: capture every TCP packet of the ports to a pcap (Ethernet framed, as
    tcpdump -i lo writes) until told to stop, then report the kernel's drops."""
    expression = " or ".join(f"tcp port {port}" for port in sorted(ports))
    live = LiveCapture("lo", expression, content_only=False)
    threading.Thread(target=lambda: (stop.wait(), live.stop()), daemon=True).start()
    temp = path + ".tmp"
    with open(temp, "wb") as out:
        writer = dpkt.pcap.Writer(out, snaplen=262144, linktype=dpkt.pcap.DLT_EN10MB)
        ready.set()
        for frame in live.frames():
            if frame is not None:
                writer.writepkt(ETHERNET[frame.data[0] >> 4] + frame.data, ts=frame.ts)
    os.replace(temp, path)
    result.put(live.drops)


def capture(
    ports: Iterable[int], action: Callable[[], None], path: str, settle: float = 0.3
) -> None:
    """Run `action` while a child process (no GIL shared with the traffic) captures the TCP
    packets on `lo` to or from any of `ports` into `path`. Kernel drops are an error."""
    context = multiprocessing.get_context("fork")
    ready, stop, result = context.Event(), context.Event(), context.Queue()
    child = context.Process(target=_capture, args=(set(ports), path, ready, stop, result))
    child.start()
    ready.wait(10)
    time.sleep(0.2)
    try:
        action()
    finally:
        time.sleep(settle)  # let the last segments and FINs through
        stop.set()
        drops = result.get(timeout=60)
        child.join()
    if drops:
        raise RuntimeError(f"the kernel dropped {drops} packets: {path} is not a faithful capture")
