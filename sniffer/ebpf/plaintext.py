"""The plaintext of TLS connections on this host, read from OpenSSL by tls.bpf.c's uprobes.

`TlsReader` attaches the uprobes to every libssl it is given (by default the ones the dynamic
linker knows, `ldconfig -p`), and `drain` turns the pieces waiting in the ring buffer into
`tls.Plaintext`, for the capture loop to hand the pipeline before each packet: a piece is in the
ring before the packets that carry it are sent, so nothing of a connection comes after its FIN.

Both ends of a loopback connection may be instrumented: what one end wrote, the other read, and
the two reports of the same bytes arrive in either order (a writer's report is made when its call
returns, by which time the reader may have read them, and even answered). So each direction is
one stream: the writer's reports and the reader's each say where they sit in it (the bytes that
kind of report has covered so far), and whichever report of a range comes first delivers it. An
answer comes after the reader's report of its request (the reader reads, then answers), so the
stream never delivers an answer before its question.
"""

from __future__ import annotations

import struct
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..flow import Endpoint
from ..recent import Recent
from ..tls import Plaintext
from . import build, host
from .ends import ENDS, ends
from .host import Unavailable
from .libbpf import BpfObject, LibbpfError, RingBuffer

SOURCE = Path(__file__).with_name("tls.bpf.c")
PIECE_HEADER = struct.Struct("=QIIIIB7x" + ENDS.format.lstrip("="))  # struct piece, to its data
PIECE, PIECES = 8192, 8  # as tls.bpf.c
WRITTEN = 0
# (program, function, on return): each entry and return of the four calls that move bytes
PROBES = [
    (f"{kind}{ex}_{edge}", f"SSL_{kind}{ex}", edge == "leave")
    for kind in ("write", "read")
    for ex in ("", "_ex")
    for edge in ("enter", "leave")
]
# the handshake (whichever call makes it) ties the socket; SSL_free unties it
PROBES += [
    (f"handshake_{edge}", function, edge == "leave")
    for function in ("SSL_do_handshake", "SSL_connect", "SSL_accept")
    for edge in ("enter", "leave")
]
PROBES.append(("free_enter", "SSL_free", False))
TIES = ("on_send", "on_receive")


def libraries() -> list[str]:
    """The libssl files the dynamic linker knows, each file once."""
    try:
        listing = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        listing = ""
    found: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.startswith(("libssl.so.3", "libssl.so.1.1")) and Path(path).exists():
            found.setdefault(str(Path(path).resolve()), path)
    return list(found)


@dataclass
class Stream:
    """One direction of a TLS connection: how far its bytes were delivered, and how far each
    kind of report (written, read) has covered them."""

    delivered: int = 0
    covered: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0})

    def take(
        self, kind: int, offset: int, data: bytes, total: int, last: bool
    ) -> tuple[int, bytes, int]:
        """A report's piece (at `offset` in its call of `total` bytes): (bytes missing before
        what is new, the new bytes, bytes missing after them)."""
        start = self.covered[kind] + offset
        end = start + len(data)
        if last:
            self.covered[kind] += total
        before = max(start - self.delivered, 0)
        new = data[max(self.delivered - start, 0) :]
        self.delivered = max(self.delivered, end)
        after = 0
        if last and self.covered[kind] > self.delivered:  # the call's bytes it could not read
            after = self.covered[kind] - self.delivered
            self.delivered = self.covered[kind]
        return before, new, after


class TlsReader:
    """The uprobes attached, the pieces they report turned into plaintext; `Unavailable` says
    why they cannot be."""

    def __init__(self, paths: Iterable[str] | None = None) -> None:
        reason = host.unavailable() or host.uprobes_unavailable()
        if reason is not None:
            raise Unavailable(reason)
        paths = list(paths) if paths is not None else libraries()
        if not paths:
            raise Unavailable("no libssl found (ldconfig -p)")
        try:
            self.object = BpfObject(build.compiled(SOURCE), attach=False)
        except (build.BuildError, LibbpfError, OSError) as error:
            raise Unavailable(str(error)) from None
        try:
            for name in TIES:
                self.object.attach(name)
            for path in paths:
                for program, function, returning in PROBES:
                    self.object.attach_uprobe(program, path, function, returning)
            self.ring = RingBuffer(self.object.map_fd("pieces"), self._piece)
        except LibbpfError as error:
            self.object.close()
            raise Unavailable(str(error)) from None
        self.waiting: list[Plaintext] = []
        self.streams: Recent[tuple[Endpoint, Endpoint], Stream] = Recent()
        self.clock = time.time() - time.monotonic()  # ktime (CLOCK_MONOTONIC) -> the epoch

    def _piece(self, record: bytes) -> None:
        fields = PIECE_HEADER.unpack_from(record)
        ktime, _pid, size, total, offset, direction = fields[:6]
        local, remote = ends(*fields[6:])
        src, dst = (local, remote) if direction == WRITTEN else (remote, local)
        stream = self.streams.get((src, dst))
        if stream is None:
            stream = Stream()
            self.streams.remember((src, dst), stream)
        data = record[PIECE_HEADER.size : PIECE_HEADER.size + size]
        last = size == 0 or offset + size >= min(total, PIECE * PIECES)
        before, new, after = stream.take(direction, offset, data, total, last)
        ts = ktime / 1e9 + self.clock
        if before:
            self.waiting.append(Plaintext(ts, src, dst, b"", before))
        if new or after:
            self.waiting.append(Plaintext(ts, src, dst, new, after))

    def drain(self) -> list[Plaintext]:
        """The plaintext reported since the last call, in the order it was reported."""
        self.ring.consume()
        pieces, self.waiting = self.waiting, []
        return pieces

    def lost(self) -> int:
        """Pieces the ring buffer had no room for."""
        return self.object.per_cpu_total("lost")

    def close(self) -> None:
        self.ring.close()
        self.object.close()
