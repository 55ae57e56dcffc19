"""TCP reassembly: segments in, ordered bytes per connection and direction out.

Theory of operation. Each connection (keyed by its 4-tuple) has two directions; side 0 is the side
that sent the first segment we saw (or the SYN). A direction delivers bytes strictly in sequence
order to its connection's `StreamHandler`:

* a segment at the expected sequence number is delivered at once, then any buffered segments that
  now follow it; a segment wholly before it is a duplicate (dropped), partly before it is trimmed;
* a segment after it waits in a bounded out-of-order buffer until the hole fills;
* a hole is declared lost (a `gap` event, and delivery resumes after it) when the peer has
  acknowledged past it and it stayed open for `PATIENCE` more packets of the connection (so a
  reordered capture is not mistaken for loss), when the buffer overflows, or when the connection
  closes or the capture ends;
* a direction without a captured SYN starts at its first segment's sequence number; all arithmetic
  is modulo 2**32, so wraparound is harmless;
* FIN ends a direction once all bytes before it arrived; RST, both FINs, idle eviction or the end
  of the capture close the connection. A new SYN on a closed or different connection's 4-tuple
  starts a new connection; late retransmissions after a close are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .decode import ACK, FIN, RST, SYN, Segment
from .stats import Stats

MASK = 0xFFFFFFFF
PATIENCE = 32  # packets a hole may stay open once acknowledged, before it counts as lost
MAX_PENDING = 4 << 20  # out-of-order bytes buffered per direction
IDLE_TIMEOUT = 300.0  # seconds without a packet before a connection is evicted
CLOSED_MEMORY = 60.0  # seconds a closed connection is remembered, to drop late retransmissions

Endpoint = tuple[str, int]


def relative(seq: int, base: int) -> int:
    """Signed distance from base to seq in sequence space."""
    diff = (seq - base) & MASK
    return diff - 0x100000000 if diff & 0x80000000 else diff


class StreamHandler(Protocol):
    """What a connection's consumer receives (the HTTP layer implements it)."""

    def data(self, side: int, ts: float, seq: int, ack: int, payload: bytes) -> None: ...
    def gap(self, side: int, ts: float, size: int) -> None: ...
    def fin(self, side: int, ts: float) -> None: ...
    def close(self, ts: float) -> None: ...


def key_of(one: Endpoint, other: Endpoint) -> tuple[Endpoint, Endpoint]:
    """A connection's key: its two ends, whichever sent."""
    return (one, other) if one <= other else (other, one)


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    endpoints: tuple[Endpoint, Endpoint]  # side 0, side 1
    client_side: int | None  # known from the handshake, else None
    start_ts: float
    tls: bool = False  # its bytes are the plaintext inside TLS (see `tls`), not the packets'


HandlerFactory = Callable[[ConnectionInfo], StreamHandler]


class _Direction:
    __slots__ = (
        "next_seq",
        "pending",
        "pending_bytes",
        "fin_seq",
        "done",
        "hole_since",
        "hole_at",
        "acked",
    )

    def __init__(self) -> None:
        self.next_seq = -1  # the next byte to deliver; -1: none yet (nothing seen from this side)
        self.pending: dict[int, tuple[float, int, bytes]] = {}
        self.pending_bytes = 0
        self.fin_seq: int | None = None
        self.done = False
        self.hole_since = 0  # packet count when the current hole was first acknowledged
        self.hole_at: int | None = None  # where that hole starts
        self.acked: int | None = None  # highest ack the peer sent for this direction


class Connection:
    """The two directions of one TCP connection, feeding one StreamHandler."""

    def __init__(self, info: ConnectionInfo, handler: StreamHandler, stats: Stats) -> None:
        self.info = info
        self.handler = handler
        self.stats = stats
        self.sides = (_Direction(), _Direction())
        self.isn: list[int | None] = [None, None]
        self.packets = 0
        self.last_ts = info.start_ts
        self.closed = False

    def side_of(self, seg: Segment) -> int:
        return 0 if (seg.src, seg.sport) == self.info.endpoints[0] else 1

    def feed(self, seg: Segment) -> None:
        side = self.side_of(seg)
        this, peer = self.sides[side], self.sides[1 - side]
        self.packets += 1
        self.last_ts = seg.ts
        if seg.flags & ACK and (peer.acked is None or relative(seg.ack, peer.acked) > 0):
            peer.acked = seg.ack
        seq = seg.seq
        if seg.flags & SYN:
            self.isn[side] = seq
            seq = (seq + 1) & MASK
            if this.next_seq < 0:
                this.next_seq = seq
        if seg.flags & RST:
            self.close(seg.ts)
            return
        if seg.payload or seg.missing:
            self._segment(side, seg.ts, seq, seg.ack, seg.payload, seg.missing)
        if seg.flags & FIN:
            end = (seq + len(seg.payload) + seg.missing) & MASK
            this.fin_seq = end
            if this.next_seq < 0:
                this.next_seq = end
        self._check_holes(seg.ts)
        self._check_fin(side, seg.ts)

    def _segment(
        self, side: int, ts: float, seq: int, ack: int, payload: bytes, missing: int
    ) -> None:
        this = self.sides[side]
        if missing:  # the snap length cut the end: what we have, then a hole for the rest
            self.stats.count("snapped_packets")
        if this.next_seq < 0:
            this.next_seq = seq
        ahead = relative(seq, this.next_seq)
        if ahead < 0:
            if -ahead >= len(payload) + missing:
                self.stats.count("duplicate_segments")
                return
            self.stats.count("overlapping_segments")
            if -ahead >= len(payload):
                payload, missing = b"", missing + ahead + len(payload)
            else:
                payload = payload[-ahead:]
            seq, ahead = this.next_seq, 0
        if ahead > 0:
            self._buffer(this, ts, seq, ack, payload, missing)
            return
        self._deliver(side, ts, ack, payload, missing)
        self._drain(side)

    def _buffer(
        self, this: _Direction, ts: float, seq: int, ack: int, payload: bytes, missing: int
    ) -> None:
        previous = this.pending.get(seq)
        if previous is not None:
            if len(previous[2]) >= len(payload):
                self.stats.count("duplicate_segments")
                return
            this.pending_bytes -= len(previous[2])
        else:
            self.stats.count("out_of_order_segments")
        # a cut segment is stored as its bytes; the hole after it is found like any other hole
        this.pending[seq] = (ts, ack, payload)
        this.pending_bytes += len(payload)
        if this.pending_bytes > MAX_PENDING:
            self._skip_hole(self.sides.index(this), ts)

    def _deliver(self, side: int, ts: float, ack: int, payload: bytes, missing: int) -> None:
        this = self.sides[side]
        if payload:
            self.handler.data(side, ts, this.next_seq, ack, payload)
            this.next_seq = (this.next_seq + len(payload)) & MASK
        if missing:
            self._lose(side, ts, missing)

    def _lose(self, side: int, ts: float, size: int) -> None:
        this = self.sides[side]
        self.stats.count("gaps")
        self.stats.count("gap_bytes", size)
        self.handler.gap(side, ts, size)
        this.next_seq = (this.next_seq + size) & MASK

    def _drain(self, side: int) -> None:
        """Deliver buffered segments that the expected sequence number has reached."""
        this = self.sides[side]
        while this.pending:
            entry = this.pending.pop(this.next_seq, None)
            if entry is None:
                entry = self._pop_overlapping(this)
                if entry is None:
                    return
            ts, ack, payload = entry
            this.pending_bytes -= len(payload)
            self._deliver(side, ts, ack, payload, 0)

    def _pop_overlapping(self, this: _Direction) -> tuple[float, int, bytes] | None:
        """A buffered segment that starts before the expected byte: trimmed, or dropped if stale."""
        for seq in list(this.pending):
            ahead = relative(seq, this.next_seq)
            if ahead >= 0:
                continue
            ts, ack, payload = this.pending.pop(seq)
            this.pending_bytes -= len(payload)
            if -ahead < len(payload):
                self.stats.count("overlapping_segments")
                trimmed = payload[-ahead:]
                this.pending_bytes += len(trimmed)
                return ts, ack, trimmed
            self.stats.count("duplicate_segments")
        return None

    def _skip_hole(self, side: int, ts: float) -> None:
        """Declare the bytes up to the first buffered segment lost, then go on from there."""
        this = self.sides[side]
        first = min(this.pending, key=lambda seq: relative(seq, this.next_seq))
        self._lose(side, ts, relative(first, this.next_seq))
        self._drain(side)

    def _check_holes(self, ts: float) -> None:
        for side, this in enumerate(self.sides):
            if not this.pending or this.acked is None or this.next_seq < 0:
                continue
            if relative(this.acked, this.next_seq) <= 0:
                continue
            if this.hole_at != this.next_seq:  # a new hole: start counting
                this.hole_at, this.hole_since = this.next_seq, self.packets
            elif self.packets - this.hole_since >= PATIENCE:
                self._skip_hole(side, ts)

    def _check_fin(self, side: int, ts: float) -> None:
        this = self.sides[side]
        if this.done or this.fin_seq is None or this.next_seq != this.fin_seq:
            return
        this.done = True
        self.handler.fin(side, ts)
        if self.sides[1 - side].done:
            self.close(ts)

    def close(self, ts: float) -> None:
        """Deliver what is buffered (holes become gaps), then tell the handler."""
        if self.closed:
            return
        for side, this in enumerate(self.sides):
            while this.pending:
                self._skip_hole(side, ts)
            if this.fin_seq is not None and not this.done and this.next_seq >= 0:
                missing = relative(this.fin_seq, this.next_seq)
                if missing > 0:
                    self._lose(side, ts, missing)
        self.closed = True
        self.handler.close(ts)


class Reassembler:
    """Route segments to connections; create, replace, evict and remember them."""

    def __init__(
        self,
        factory: HandlerFactory,
        stats: Stats,
        idle_timeout: float = IDLE_TIMEOUT,
        tls: bool = False,
    ) -> None:
        self.factory = factory
        self.tls = tls  # it follows the twins of TLS connections
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.connections: dict[tuple[Endpoint, Endpoint], Connection] = {}
        # closed connections: when, and where each sender's stream ended
        self.closed: dict[tuple[Endpoint, Endpoint], tuple[float, dict[Endpoint, int]]] = {}
        self.next_sweep = 0.0

    @staticmethod
    def key(seg: Segment) -> tuple[Endpoint, Endpoint]:
        return key_of((seg.src, seg.sport), (seg.dst, seg.dport))

    def feed(self, seg: Segment) -> None:
        key = self.key(seg)
        conn = self.connections.get(key)
        opening = seg.flags & SYN and not seg.flags & ACK
        if conn is not None and opening and self._is_new_syn(conn, seg):
            self._close(key, conn, seg.ts)
            conn = None
        if conn is None:
            conn = self._open(key, seg, opening)
            if conn is None:
                return
        conn.feed(seg)
        if conn.closed:
            self._retire(key, conn, seg.ts)
        if seg.ts >= self.next_sweep:
            self._sweep(seg.ts)

    @staticmethod
    def _is_new_syn(conn: Connection, seg: Segment) -> bool:
        side = conn.side_of(seg)
        return conn.closed or conn.isn[side] != seg.seq

    def _open(
        self, key: tuple[Endpoint, Endpoint], seg: Segment, opening: int
    ) -> Connection | None:
        if not (seg.payload or seg.missing or seg.flags & (SYN | FIN)):
            return None  # a pure ACK of a connection we never saw: nothing to follow
        remembered = self.closed.pop(key, None)
        if remembered is not None and not opening:
            end = remembered[1].get((seg.src, seg.sport))
            if end is not None and relative((seg.seq + len(seg.payload)) & MASK, end) <= 0:
                self.closed[key] = remembered  # a late retransmission after the close
                self.stats.count("duplicate_segments")
                return None
        src, dst = (seg.src, seg.sport), (seg.dst, seg.dport)
        client = None
        if seg.flags & SYN:
            client = 0 if not seg.flags & ACK else 1
        info = ConnectionInfo((src, dst), client, seg.ts, self.tls)
        conn = Connection(info, self.factory(info), self.stats)
        self.connections[key] = conn
        self.stats.count("connections")
        return conn

    def forget(self, key: tuple[Endpoint, Endpoint]) -> StreamHandler | None:
        """Stop following a connection, unclosed and uncounted: it is followed, and counted,
        elsewhere (its twin, inside TLS). Its handler, if it had one."""
        conn = self.connections.pop(key, None)
        if conn is None:
            return None
        self.stats.count("connections", -1)
        return conn.handler

    def _close(self, key: tuple[Endpoint, Endpoint], conn: Connection, ts: float) -> None:
        conn.close(ts)
        self._retire(key, conn, ts)

    def _retire(self, key: tuple[Endpoint, Endpoint], conn: Connection, ts: float) -> None:
        self.connections.pop(key, None)
        ends = {
            endpoint: side.next_seq
            for endpoint, side in zip(conn.info.endpoints, conn.sides, strict=True)
            if side.next_seq >= 0
        }
        self.closed[key] = (ts, ends)

    def _sweep(self, now: float) -> None:
        """Evict idle connections and forget long-closed ones (bounds memory on long captures)."""
        self.next_sweep = now + 1.0
        for key, conn in list(self.connections.items()):
            if now - conn.last_ts > self.idle_timeout:
                self._close(key, conn, now)
        for key, (ts, _) in list(self.closed.items()):
            if now - ts > CLOSED_MEMORY:
                del self.closed[key]

    def flush(self) -> None:
        """End of capture: close every open connection."""
        for key, conn in list(self.connections.items()):
            self._close(key, conn, conn.last_ts)
