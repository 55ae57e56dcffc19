"""Wire a frame source to sinks: decode, reassemble, parse HTTP, correlate, render.

Nothing here knows whether frames come from files or an interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .apiref import OperationIndex
from .commands import Grouping, Processes
from .correlate import MAX_WAIT, SLACK, Correlator
from .decode import Undecodable, decode
from .filters import Selection
from .flow import Call, FlowMessage
from .http import MAX_BODY, HttpConnection, RequestHead
from .pcapfile import Frame
from .procnet import SocketOwners
from .render.selecting import SelectingSink
from .render.sink import FanOut, Sink
from .services import ServiceMap
from .stats import Stats
from .tcp import ConnectionInfo, Reassembler, key_of
from .tls import Decrypted, Plaintext


@dataclass
class Options:
    max_body: int = MAX_BODY
    services: ServiceMap | None = None
    slack: float = SLACK  # seconds a message waits for earlier ones still being parsed
    max_wait: float = MAX_WAIT  # seconds an unanswered call holds back the calls after it
    owners: SocketOwners | None = None  # live: name the processes behind each connection
    progress: Callable[[str, Call, int, RequestHead], None] | None = None  # live view
    selection: Selection | None = None  # which calls the outputs show


class Grouped(FanOut):
    """Gives each call its command (see `commands`) before the sinks see it."""

    def __init__(self, sinks: Iterable[Sink], processes: Processes | None = None) -> None:
        super().__init__(sinks)
        self.grouping = Grouping(processes)

    def message(self, message: FlowMessage) -> None:
        call = message.call
        if message.is_request:
            call.command = self.grouping.request(call)
        else:
            self.grouping.response(call)
        super().message(message)

    def call(self, call: Call) -> None:
        self.grouping.ended(call)
        super().call(call)


class Pipeline:
    """Feed frames in; sinks receive numbered messages and finished calls (as captured: the
    outputs mask what they show, see `outputs`)."""

    def __init__(self, sinks: Iterable[Sink], options: Options | None = None) -> None:
        options = options or Options()
        out: Sink = FanOut(sinks)
        if options.selection:
            out = SelectingSink([out], options.selection)
        out = Grouped([out], options.owners.process if options.owners is not None else None)
        self.out = out
        self.stats = Stats()
        self.correlator = Correlator(
            options.services or ServiceMap(),
            OperationIndex.default(),
            self.stats,
            out.message,
            out.call,
            options.slack,
            options.progress,
            options.max_wait,
        )
        max_body, owners = options.max_body, options.owners

        def connection(info: ConnectionInfo) -> HttpConnection:
            names = None
            if owners is not None:  # now, while the sockets still exist
                one, other = info.endpoints
                names = {one: owners.lookup(one, other), other: owners.lookup(other, one)}
            return HttpConnection(info, self.correlator, self.stats, max_body, names)

        self.reassembler = Reassembler(connection, self.stats)
        self.decrypted = Decrypted(Reassembler(connection, self.stats, tls=True))

    def feed(self, frame: Frame) -> None:
        stats = self.stats
        stats.packets += 1
        stats.bytes += frame.wirelen
        try:
            segment = decode(frame.ts, frame.linktype, frame.data, frame.wirelen)
        except Undecodable as reason:
            stats.count(str(reason))
            return
        except (IndexError, ValueError, OSError):  # a frame too short for its own headers
            stats.count("not_ip")
            return
        if self.decrypted.covers(segment):  # ciphertext: its plaintext comes by `plaintext`
            self.decrypted.packet(segment)
            return
        self.reassembler.feed(segment)

    def plaintext(self, piece: Plaintext) -> None:
        """Bytes sent inside a TLS connection, read from its TLS library (live)."""
        if self.decrypted.plaintext(piece):  # a new one: its packets' payload is ciphertext
            handler = self.reassembler.forget(key_of(piece.src, piece.dst))
            if isinstance(handler, HttpConnection) and handler.encrypted:
                self.stats.count("encrypted_streams", -1)  # (taken for unread: it is read now)
            self.stats.count("tls_connections")

    def run(self, frames: Iterable[Frame]) -> None:
        for frame in frames:
            self.feed(frame)

    def tick(self, now: float) -> None:
        """Time passed without packets (live): emit what no longer has to wait."""
        self.correlator.advance(now)
        self.out.tick(now)

    def finish(self) -> Stats:
        """End of input: close connections, emit what is left, close the sinks."""
        self.reassembler.flush()
        self.decrypted.twins.flush()
        self.correlator.flush()
        self.out.close(self.stats)
        return self.stats

    def abort(self) -> None:
        """An output failed: drop every output's partial file."""
        self.out.abort()

    def warnings(self) -> list[str]:
        """What the outputs could not do (after `finish`)."""
        return self.out.warnings()
