"""Frames from a live interface through an AF_PACKET socket (Linux; needs CAP_NET_RAW).

The socket is SOCK_DGRAM: the kernel strips link headers, so every interface (and `any`) yields
raw IP packets, which the kernel filters with a BPF program before they reach user space. On a
loopback interface each packet is handed to packet sockets twice (outgoing, then incoming); like
libpcap we keep the incoming copy. Timestamps are the kernel's (SO_TIMESTAMPNS), so a busy
analyser does not skew them. Drops are read from the socket's statistics.
"""

from __future__ import annotations

import queue
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Literal

from . import bpf
from .decode import LINK_RAW, Undecodable, decode
from .flow import Endpoint
from .pcapfile import Frame
from .procnet import SocketOwners

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
SOL_PACKET, PACKET_STATISTICS = 263, 6
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = SCM_TIMESTAMPNS = 35
SNAPLEN = 262144
BUFFER = 256 << 20  # kernel receive buffer: room for bursts of 64 KiB loopback segments


class CaptureUnavailable(Exception):
    """The interface cannot be opened (no privilege, no such interface, no libpcap)."""


class LiveCapture:
    """Iterate frames from an interface until `stop()` is called (checked every `poll` s)."""

    def __init__(
        self,
        interface: str,
        filter_text: str | None = None,
        buffer: int = BUFFER,
        poll: float = 0.1,
        content_only: bool = True,
    ) -> None:
        self.interface = interface
        text = bpf.expression(filter_text) if content_only else filter_text or "tcp"
        try:
            code = bpf.compile_filter(text)
        except bpf.FilterError as error:
            raise CaptureUnavailable(str(error)) from None
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise CaptureUnavailable(
                "live capture needs root or the CAP_NET_RAW capability (try sudo)"
            ) from None
        try:
            bpf.attach(self.sock, code)  # (what came before it is discarded, below)
            try:  # past rmem_max, which needs CAP_NET_ADMIN
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if interface != "any":
                self.sock.bind((interface, 0))
        except OSError as error:
            self.sock.close()
            reason = "no such interface" if error.errno == 19 else error.strerror
            raise CaptureUnavailable(f"{interface}: {reason}") from None
        self._discard_unfiltered()
        self.sock.settimeout(poll)
        self.stopped = self.closed = False
        self.drain_until: float | None = None
        self.packets = self.drops = 0

    def stop(self, drain: bool = False) -> None:
        """Stop reading; with `drain`, first read what the kernel had queued by now (packets it
        captured before the user asked to stop are theirs: a backlog is not dropped)."""
        if drain and not self.stopped:
            self.drain_until = time.time()
        self.stopped = True

    def _discard_unfiltered(self) -> None:
        """A packet socket receives from its creation: what it queued before the filter was in
        place is anything at all (another port's traffic). The capture starts now."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(1)
        except (BlockingIOError, InterruptedError):
            pass
        self._read_statistics()  # (and counts nothing of it)

    def _read_statistics(self) -> tuple[int, int]:
        """The kernel's (packets, drops) since the last read; reading resets them."""
        return struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))

    def statistics(self) -> tuple[int, int]:
        """Packets the filter passed and packets the kernel dropped, so far."""
        if not self.closed:
            packets, drops = self._read_statistics()
            self.packets += packets
            self.drops += drops
        return self.packets, self.drops

    def frames(self) -> Iterator[Frame | None]:
        """Frames as they come; None when `poll` seconds passed without one (a clock tick)."""
        recvmsg, space = self.sock.recvmsg, socket.CMSG_SPACE(16)
        try:
            while not self.stopped:
                try:
                    data, ancillary, _, address = recvmsg(SNAPLEN, space)
                except TimeoutError:
                    yield None
                    continue
                except InterruptedError:
                    continue
                if not _outgoing_copy(address):
                    yield Frame(_timestamp(ancillary), LINK_RAW, data, len(data))
            if self.drain_until is not None:
                yield from self._queued(self.drain_until)
        finally:
            self.statistics()
            self.closed = self.stopped = True
            self.sock.close()

    def _queued(self, until: float) -> Iterator[Frame]:
        """The frames waiting in the socket that the kernel took before `until`."""
        self.sock.setblocking(False)
        space = socket.CMSG_SPACE(16)
        while True:
            try:
                data, ancillary, _, address = self.sock.recvmsg(SNAPLEN, space)
            except BlockingIOError:
                return
            ts = _timestamp(ancillary)
            if ts > until:
                return
            if not _outgoing_copy(address):
                yield Frame(ts, LINK_RAW, data, len(data))

    def read_ahead(self, owners: SocketOwners | None) -> Iterator[Frame | None]:
        """`frames()` read by a thread, which asks for the owners of a connection's sockets the
        moment its SYN arrives (a short-lived client may be gone by the time the SYN is
        analysed)."""
        frames: queue.SimpleQueue[Frame | None | Literal[False]] = queue.SimpleQueue()

        def read() -> None:
            try:
                for frame in self.frames():
                    if frame is not None and owners is not None:
                        opening = syn(frame)
                        if opening is not None:
                            owners.prefetch(*opening)
                    frames.put(frame)
            finally:
                frames.put(False)

        sys.setswitchinterval(0.0005)  # let the reader and the lookups in quickly
        threading.Thread(target=read, daemon=True).start()
        while True:
            try:
                frame = frames.get(timeout=0.2)
            except queue.Empty:
                continue
            if frame is False:
                return
            yield frame


def syn(frame: Frame) -> tuple[Endpoint, Endpoint] | None:
    """The two ends of a connection opening (SYN without ACK), else None."""
    data = frame.data
    tcp = (data[0] & 0x0F) * 4 if data[0] >> 4 == 4 else 40
    if len(data) < tcp + 14 or data[tcp + 13] & 0x12 != 0x02:
        return None
    try:
        segment = decode(frame.ts, LINK_RAW, data, frame.wirelen)
    except (Undecodable, IndexError, ValueError, OSError):
        return None
    return (segment.src, segment.sport), (segment.dst, segment.dport)


def _outgoing_copy(address: tuple) -> bool:
    """On loopback every packet is seen twice: the incoming copy of this one follows."""
    return address[2] == PACKET_OUTGOING and address[3] == ARPHRD_LOOPBACK


def _timestamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", value[:16])
            return seconds + nanoseconds / 1e9
    return time.time()
