"""Connections read from inside TLS: the plaintext a TLS library wrote or read, as the bytes of a
twin connection, in place of the ciphertext the packets carry.

The plaintext comes from outside the packets (uprobes on libssl, see `ebpf`): each piece names
the connection's two ends and which one sent it. Here it becomes TCP segments with sequence
numbers of its own, which a second `Reassembler` follows as it follows packets, so the HTTP
framing, the pairing and everything after are the same as in clear. The packets of such a
connection still say when it opens and ends (FIN, RST): those are passed on to the twin.

HTTP's client speaks first: the sender of a connection's first plaintext is its client, which
is what the twin's handshake says.
"""

from __future__ import annotations

from dataclasses import dataclass

from .decode import ACK, FIN, RST, SYN, Segment
from .flow import Endpoint
from .recent import Recent
from .tcp import Reassembler, key_of

MASK = 0xFFFFFFFF  # sequence numbers wrap at 32 bits
ISN = 1  # the twin's initial sequence numbers: its own, nothing to do with the packets'
MAX_PIECE = 1 << 16  # a larger piece is fed in parts, as segments are


@dataclass(frozen=True, slots=True)
class Plaintext:
    """Bytes one end of a TLS connection sent, as its TLS library handled them."""

    ts: float  # seconds since the epoch, the packets' clock
    src: Endpoint  # the end that sent them
    dst: Endpoint
    data: bytes
    missing: int = 0  # bytes sent after `data` that could not be read (a snap length)


Key = tuple[Endpoint, Endpoint]


class Decrypted:
    """The twins of the connections whose plaintext is known; `covers` tells the packets to
    leave alone (their payload is ciphertext)."""

    def __init__(self, twins: Reassembler) -> None:
        self.twins = twins
        # each twin's next sequence numbers, by end; the most recent twins only (one that ends
        # unseen, with no FIN or RST, is forgotten in time)
        self.next_seq: Recent[Key, dict[Endpoint, int]] = Recent()

    def covers(self, seg: Segment) -> bool:
        if not self.next_seq:  # (every packet asks: offline, and mostly live, nothing is TLS)
            return False
        return key_of((seg.src, seg.sport), (seg.dst, seg.dport)) in self.next_seq

    def plaintext(self, piece: Plaintext) -> bool:
        """Feed a piece to its connection's twin; True when it opened the twin."""
        key = key_of(piece.src, piece.dst)
        sequences = self.next_seq.get(key)
        opened = sequences is None
        if sequences is None:
            sequences = self._open(piece)
            self.next_seq.remember(key, sequences)
        for start in range(0, len(piece.data), MAX_PIECE):
            data = piece.data[start : start + MAX_PIECE]
            self._send(piece.ts, piece.src, piece.dst, sequences, ACK, data)
        if piece.missing:
            self._send(piece.ts, piece.src, piece.dst, sequences, ACK, b"", piece.missing)
        return opened

    def packet(self, seg: Segment) -> None:
        """A packet of a covered connection: its end (FIN, RST) ends the twin too."""
        if not seg.flags & (FIN | RST):
            return
        src, dst = (seg.src, seg.sport), (seg.dst, seg.dport)
        key = key_of(src, dst)
        sequences = self.next_seq[key]
        self._send(seg.ts, src, dst, sequences, seg.flags & (FIN | RST) | ACK, b"")
        sequences[src] = -1  # this end is done; the twin is, once both are (or at a reset)
        if seg.flags & RST or all(seq < 0 for seq in sequences.values()):
            del self.next_seq[key]

    def _open(self, piece: Plaintext) -> dict[Endpoint, int]:
        """The twin's handshake, the first piece's sender as the client."""
        client, server = piece.src, piece.dst
        sequences = {client: ISN, server: ISN}
        self._send(piece.ts, client, server, sequences, SYN, b"")
        self._send(piece.ts, server, client, sequences, SYN | ACK, b"")
        return sequences

    def _send(
        self,
        ts: float,
        src: Endpoint,
        dst: Endpoint,
        sequences: dict[Endpoint, int],
        flags: int,
        data: bytes,
        missing: int = 0,
    ) -> None:
        seq = sequences[src]
        if seq < 0:  # this end has ended
            return
        ack = sequences[dst] if flags & ACK and sequences[dst] >= 0 else 0
        segment = Segment(ts, src[0], src[1], dst[0], dst[1], seq, ack, flags, data, missing)
        self.twins.feed(segment)
        sequences[src] = (seq + len(data) + missing + (1 if flags & (SYN | FIN) else 0)) & MASK
