"""Frames from a live interface through a raw AF_PACKET socket (Linux, needs CAP_NET_RAW).

On loopback the kernel hands every packet to a packet socket twice, once outgoing and once
incoming; like libpcap we keep only the incoming copy.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

from .decode import LINK_ETHERNET
from .pcapfile import Frame

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_STATISTICS = 263, 6
SO_RCVBUFFORCE = 33
SNAPLEN = 262144
BUFFER = 256 << 20  # kernel receive buffer: bursts of 64 KiB loopback segments need room


class LiveCapture:
    """Iterate frames from an interface until `stop()` is called (checked every `poll` seconds)."""

    def __init__(self, interface: str, poll: float = 0.1) -> None:
        self.interface = interface
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:  # past rmem_max, which needs CAP_NET_ADMIN
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        self.packets = self.drops = 0
        self.sock.bind((interface, 0))
        self.sock.settimeout(poll)
        self.loopback = interface == "lo"
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def _read_statistics(self) -> None:
        """Add the kernel's counts since the last read (reading resets them)."""
        packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self.packets += packets
        self.drops += drops

    def frames(self, keep: Callable[[bytes], bool] | None = None) -> Iterator[Frame]:
        try:
            while not self.stopped:
                try:
                    data, address = self.sock.recvfrom(SNAPLEN)
                except TimeoutError:
                    continue
                if self.loopback and address[2] == PACKET_OUTGOING:
                    continue
                if keep is None or keep(data):
                    yield Frame(time.time(), LINK_ETHERNET, data, len(data))
        finally:
            self._read_statistics()
            self.sock.close()
