"""HTTP/1.1 over a reassembled TCP connection: requests paired with their responses, passively.

Theory of operation. Each direction has its own Framer (framing.py: plain messages read directly,
the rest by h11): one reads the client's bytes (requests), the other the server's (responses).
When a request is complete, its framer moves on to the next (pipelined) request at once; before
the response framer reads a response, it is told the method of the oldest unanswered request
(an answer to HEAD has no body, whatever its headers say). Response bytes that arrive before any
request is known wait in a buffer.

A response is paired with the oldest unanswered request, unless its Requestshook id names another
one or its TCP acknowledgement shows the server had not yet received that request (then it is the
tail of an exchange whose request was not captured, and is skipped). A gap inside a body of known
length keeps the framing (the message is marked incomplete); any other gap or unparsable byte puts
the direction in *hunting* mode: bytes are skipped until something that looks like the start of
a message (a request line, or a status line) and parsing resumes there with a fresh parser.
A connection whose first client bytes are not HTTP is skipped and counted.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

from .flow import EMPTY, Body, Endpoint, Exchange, Headers, Request, Response, header
from .framing import (
    CLOSED,
    NEED_DATA,
    Data,
    End,
    Framer,
    FramingError,
    Informational,
    RequestStart,
    ResponseStart,
)
from .stats import Stats
from .tcp import ConnectionInfo, relative

MAX_BODY = 1 << 20
MAX_HEAD = 256 << 10  # largest request or status line plus headers
MAX_FILLER = 64 << 20  # largest gap inside a sized body that is bridged rather than hunted over
HUNT_KEEP = 4096  # bytes kept while hunting, so a start line split across segments is found
REQUEST_START = re.compile(rb"(?:^|\n)([A-Z][A-Z_-]{1,19} [!-~]+ HTTP/1\.[01]\r?\n)")
RESPONSE_START = re.compile(rb"(?:^|\n)(HTTP/1\.[01] [1-5]\d\d[ \r\n])")
TLS_HANDSHAKE = b"\x16\x03"  # a TLS record of the handshake: a ClientHello opens the stream
ID_HEADER = "x-requestshook-request-id"


@dataclass(frozen=True, slots=True, eq=False)
class RequestHead:
    """A request as soon as its head is parsed: enough to name and nest its call. Each head is
    one event, equal only to itself (and so a cheap key)."""

    client: Endpoint
    server: Endpoint
    method: str
    target: str
    version: str
    headers: Headers
    ts: float
    client_name: str | None = None  # the processes owning the two sockets, when known (live)
    server_name: str | None = None
    tls: bool = False  # read from inside TLS
    # the first value of each header by lower-case name, made at the first lookup: naming and
    # nesting a call looks up a dozen headers
    _index: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        index = self._index
        if index is None:
            index = {key.lower(): value for key, value in reversed(self.headers)}
            object.__setattr__(self, "_index", index)
        return index.get(name.lower())

    def bare_request(self) -> Request:
        """The request as far as its head: no body, incomplete."""
        return Request(
            self.method, self.target, self.version, self.headers, EMPTY, self.ts, self.ts, False
        )


class ExchangeConsumer(Protocol):
    def request_started(self, head: RequestHead) -> None: ...
    def request_done(self, head: RequestHead, request: Request) -> None: ...
    def exchange_done(self, head: RequestHead, exchange: Exchange) -> None: ...


def _looks_like(start: re.Pattern[bytes], payload: bytes) -> bool:
    """Could these bytes begin an HTTP message? (A start line may still be incomplete.)"""
    found = start.match(payload[:MAX_HEAD])
    return found is not None or (len(payload) < 64 and b"\n" not in payload)


class _BodyBuffer:
    """Keeps a body up to a bound while counting all of it."""

    __slots__ = ("chunks", "kept", "size", "limit", "damaged")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.kept = 0
        self.size = 0
        self.limit = limit
        self.damaged = False  # a gap inside: what follows it is not kept

    def add(self, data: bytes) -> None:
        self.size += len(data)
        room = self.limit - self.kept
        if room > 0 and not self.damaged:
            piece = data[:room]
            self.chunks.append(piece)
            self.kept += len(piece)

    def body(self, encoding: str) -> Body:
        if not self.size:
            return EMPTY
        return Body(b"".join(self.chunks), self.size, encoding, self.size - self.kept)


# the head a direction's messages start with: RequestHead (requests) or ResponseStart
H = TypeVar("H", RequestHead, ResponseStart)


class _Partial(Generic[H]):
    """A message being read: its head, where it started, its body so far."""

    __slots__ = ("head", "headers", "ts", "seq", "ack", "body", "complete", "length", "trailers")

    def __init__(
        self,
        head: H,
        headers: Headers,
        start: tuple[float, int, int],
        limit: int,
    ) -> None:
        self.head: H = head
        self.headers = headers
        self.ts, self.seq, self.ack = start
        self.body = _BodyBuffer(limit)
        self.complete = True
        self.trailers: Headers = ()
        length = header(headers, "content-length")
        self.length = int(length) if length and length.isdigit() else None


class _Pending:
    """A request whose response is awaited."""

    __slots__ = ("head", "seq", "request", "response", "request_id")

    def __init__(self, head: RequestHead, seq: int) -> None:
        self.head = head
        self.seq = seq
        self.request: Request | None = None  # set once the request is complete
        self.response: Response | None = None  # an answer that came before the request ended
        self.request_id = head.header(ID_HEADER)


class _Direction(Generic[H]):
    """One direction's parser state: its framer, where the next message starts, hunting."""

    __slots__ = ("parser", "hunting", "hunt", "start", "partial", "ended", "informational")

    def __init__(self) -> None:
        self.parser: Framer | None = None
        self.hunting = False
        self.hunt = b""
        self.start: tuple[float, int, int] | None = None  # (ts, seq, ack) of the next message
        self.partial: _Partial[H] | None = None
        self.ended = False
        self.informational: list[int] = []  # 1xx statuses before the coming final response

    def resync(self) -> None:
        """Drop the parser: skip to the next message start and parse afresh from there."""
        self.parser = None
        self.hunting = True
        self.hunt = b""


_AnyDirection = _Direction[RequestHead] | _Direction[ResponseStart]


class HttpConnection:
    """StreamHandler that turns one TCP connection into exchanges for an ExchangeConsumer."""

    def __init__(
        self,
        info: ConnectionInfo,
        consumer: ExchangeConsumer,
        stats: Stats,
        max_body: int = MAX_BODY,
        names: dict[Endpoint, str | None] | None = None,
    ) -> None:
        self.info = info
        self.names = names or {}
        self.consumer = consumer
        self.stats = stats
        self.max_body = max_body
        self.client_side = info.client_side
        self.http = True
        self.encrypted = False  # not HTTP: TLS (its plaintext unread, unless read elsewhere)
        self.requests: _Direction[RequestHead] = _Direction()
        self.responses: _Direction[ResponseStart] = _Direction()
        # without the handshake, the capture may begin mid-message: hunt for a message start
        self.requests.hunting = self.responses.hunting = info.client_side is None
        self.started = False  # some bytes of this connection were recognised as HTTP
        self.pending: deque[_Pending] = deque()
        self.waiting = b""  # response bytes that arrived before any request
        self.waiting_mark: tuple[float, int, int] | None = None
        # answered before their request ended (an early 413, say): head -> request
        self.answered: dict[RequestHead, _Pending] = {}

    # -- StreamHandler ---------------------------------------------------------------------

    def data(self, side: int, ts: float, seq: int, ack: int, payload: bytes) -> None:
        if not self.http:
            return
        if self.client_side is None and not self._decide_roles(side, payload):
            return
        if side == self.client_side:
            self._feed_requests(ts, seq, ack, payload)
        else:
            self._feed_responses(ts, seq, ack, payload)

    def gap(self, side: int, ts: float, size: int) -> None:
        if not self.http or self.client_side is None:
            return
        direction = self.requests if side == self.client_side else self.responses
        partial = direction.partial
        if partial is not None:
            partial.complete = False  # whether the framing is bridged or not
            partial.body.damaged = True
            remaining = partial.length - partial.body.size if partial.length is not None else -1
            if 0 <= size <= remaining and size <= MAX_FILLER and direction.parser is not None:
                # the gap is inside a body of known length: bridge it and keep the framing
                direction.parser.receive(b"\0" * size)
                self._drain(direction, ts, 0, 0)
                return
            self._abandon(direction, ts)
        elif side != self.client_side and not direction.parser and self.waiting:
            self.waiting = b""
        direction.resync()

    def fin(self, side: int, ts: float) -> None:
        if not self.http or self.client_side is None:
            return
        direction = self.requests if side == self.client_side else self.responses
        direction.ended = True
        if direction.parser is not None:
            direction.parser.receive(b"")
            self._drain(direction, ts, 0, 0)

    def close(self, ts: float) -> None:
        if not self.http or self.client_side is None:
            return
        for side in (self.client_side, 1 - self.client_side):
            direction = self.requests if side == self.client_side else self.responses
            if not direction.ended:
                self.fin(side, ts)
            if direction.partial is not None:
                self._abandon(direction, ts)
        while self.pending:
            self._finish(self.pending.popleft(), None)
        for answered in self.answered.values():
            self._finish(answered, answered.response)
        self.answered.clear()

    # -- roles -----------------------------------------------------------------------------

    def _decide_roles(self, side: int, payload: bytes) -> bool:
        """Without a handshake, the side that sends a request line is the client."""
        if REQUEST_START.search(payload[:MAX_HEAD]):
            self.client_side = side
        elif RESPONSE_START.search(payload[:MAX_HEAD]):
            self.client_side = 1 - side
        else:
            return False  # mid-message bytes: wait for a recognisable start
        return True

    # -- requests --------------------------------------------------------------------------

    def _feed_requests(self, ts: float, seq: int, ack: int, payload: bytes) -> None:
        direction = self.requests
        if direction.parser is None:
            if direction.hunting:
                payload, seq = self._hunt(direction, REQUEST_START, payload, seq)
                if not payload:
                    return
            elif not self.started and not _looks_like(REQUEST_START, payload):
                self._not_http(payload)
                return
            direction.parser = Framer(True, MAX_HEAD)
        if direction.start is None:
            direction.start = (ts, seq, ack)
        direction.parser.receive(payload)
        self._drain(direction, ts, seq, len(payload))

    def _not_http(self, payload: bytes = b"") -> None:
        self.http = False
        self.encrypted = payload[:2] == TLS_HANDSHAKE  # a TLS client's first record
        self.stats.count("encrypted_streams" if self.encrypted else "non_http_streams")

    def _hunt(
        self, direction: _AnyDirection, pattern: re.Pattern[bytes], payload: bytes, seq: int
    ) -> tuple[bytes, int]:
        """Skip to the next message start; returns the bytes from there (empty: not found yet)."""
        data = direction.hunt + payload
        base = (seq - len(direction.hunt)) & 0xFFFFFFFF
        found = pattern.search(data)
        if found is None:
            keep = data[-HUNT_KEEP:]
            self.stats.count("skipped_bytes", len(data) - len(keep))
            direction.hunt = keep
            return b"", seq
        start = found.start(1)
        self.stats.count("skipped_bytes", start)
        direction.hunt = b""
        direction.hunting = False
        return data[start:], (base + start) & 0xFFFFFFFF

    # -- responses -------------------------------------------------------------------------

    def _feed_responses(self, ts: float, seq: int, ack: int, payload: bytes) -> None:
        direction = self.responses
        if direction.parser is None and direction.hunting:
            payload, seq = self._hunt(direction, RESPONSE_START, payload, seq)
            if not payload:
                return
        elif not self.started and not self.waiting and not _looks_like(RESPONSE_START, payload):
            self._not_http()  # the server spoke first, and not HTTP
            return
        parser = direction.parser
        if parser is None:
            parser = self._arm_response_parser(ts, seq, ack, payload)
            if parser is None:
                return
        if direction.start is None:
            direction.start = (ts, seq, ack)
        parser.receive(payload)
        self._drain(direction, ts, seq, len(payload))

    def _arm_response_parser(self, ts: float, seq: int, ack: int, payload: bytes) -> Framer | None:
        """Give the response parser a request to answer (the parser), or park the bytes until
        there is one (None)."""
        if not self.pending:
            if self.waiting_mark is None:
                self.waiting_mark = (ts, seq, ack)
            self.waiting += payload
            if len(self.waiting) > MAX_HEAD + self.max_body:  # nothing will claim it: drop
                self.stats.count("skipped_bytes", len(self.waiting))
                self.waiting, self.waiting_mark = b"", None
                self.responses.resync()
            return None
        parser = Framer(False, MAX_HEAD)
        parser.expect(self.pending[0].head.method)
        self.responses.parser = parser
        return parser

    def _release_waiting(self) -> None:
        """Response bytes that arrived before their request: feed them now that it is known."""
        if not self.waiting or self.responses.parser is not None:
            return
        data, mark = self.waiting, self.waiting_mark
        self.waiting, self.waiting_mark = b"", None
        assert mark is not None
        self._feed_responses(mark[0], mark[1], mark[2], data)

    # -- framing events --------------------------------------------------------------------

    def _drain(self, direction: _AnyDirection, ts: float, seq: int, fed: int) -> None:
        parser = direction.parser
        while parser is not None and direction.parser is parser:
            try:
                event = parser.next_event()
            except FramingError:
                if not self.started:  # the very first message failed: not an HTTP stream
                    self._not_http()
                    return
                self.stats.count("http_errors")
                if direction.partial is not None:
                    self._abandon(direction, ts)
                direction.resync()
                return
            if event is NEED_DATA:
                return
            if event is CLOSED:
                direction.parser = None
                return
            self._on_event(direction, parser, event, ts, seq, fed)

    def _on_event(
        self, direction: _AnyDirection, parser: Framer, event, ts: float, seq: int, fed: int
    ) -> None:
        kind = type(event)
        if kind is Data:
            if direction.partial is not None:
                direction.partial.body.add(event.data)
        elif kind is End:
            if direction.partial is not None:
                direction.partial.trailers = event.trailers
            ack = direction.start[2] if direction.start else 0
            self._complete(direction, ts)
            direction.start = self._next_start(parser, ts, seq, fed, ack)
            if direction is self.requests:
                self._next_request_cycle(parser)
            else:
                self._next_response_cycle(parser)
        elif kind is RequestStart:
            self._on_request_head(event, ts, seq)
        elif kind is ResponseStart:
            start = direction.start or (ts, seq, 0)
            direction.partial = _Partial(event, event.headers, start, self.max_body)
            self.started = True
        elif kind is Informational:
            if event.status == 101:
                self._not_http()  # switched protocols: the rest is not HTTP/1.1
            direction.informational.append(event.status)
            ack = direction.start[2] if direction.start else 0
            direction.start = self._next_start(parser, ts, seq, fed, ack)

    def _next_start(
        self, parser: Framer, ts: float, seq: int, fed: int, ack: int
    ) -> tuple[float, int, int] | None:
        """Where the following message begins: in this segment's leftover bytes, or later."""
        left = parser.unread
        if not left:
            return None
        return ts, (seq + fed - left) & 0xFFFFFFFF, ack

    def _on_request_head(self, event: RequestStart, ts: float, seq: int) -> None:
        direction = self.requests
        start = direction.start or (ts, seq, 0)
        client, server = self._endpoints()
        headers = event.headers
        head = RequestHead(
            client,
            server,
            event.method,
            event.target,
            event.version,
            headers,
            start[0],
            self.names.get(client),
            self.names.get(server),
            self.info.tls,
        )
        direction.partial = _Partial(head, headers, start, self.max_body)
        self.started = True
        self.pending.append(_Pending(head, start[1]))
        self.stats.count("requests")
        self.consumer.request_started(head)
        if len(self.pending) == 1:
            self._release_waiting()

    def _next_request_cycle(self, parser: Framer) -> None:
        """Move the request framer on to the next request."""
        if not parser.next_cycle():
            self.requests.resync()  # the client said close: nothing more to read here

    def _complete_request(self, ts: float) -> None:
        direction = self.requests
        partial = direction.partial
        direction.partial = None
        if partial is None:
            return
        head: RequestHead = partial.head
        request = Request(
            head.method,
            head.target,
            head.version,
            head.headers,
            partial.body.body(head.header("content-encoding") or ""),
            partial.ts,
            ts,
            partial.complete,
            partial.trailers,
        )
        answered = self.answered.pop(head, None)
        if answered is not None:
            answered.request = request
            self._finish(answered, answered.response)
            return
        for pending in self.pending:
            if pending.head is head:
                pending.request = request
                self.consumer.request_done(head, request)
                break

    def _next_response_cycle(self, parser: Framer) -> None:
        """Tell the response framer the next request to answer, or park what follows."""
        direction = self.responses
        if not parser.next_cycle():
            direction.resync()  # the server closes after this response
            return
        if self.pending:
            parser.expect(self.pending[0].head.method)
        else:  # nothing to answer yet: keep what follows until a request arrives
            self.waiting = parser.take_unread()
            self.waiting_mark = direction.start
            direction.parser = None

    def _complete_response(self, ts: float) -> None:
        direction = self.responses
        partial = direction.partial
        direction.partial = None
        if partial is None:
            return
        event: ResponseStart = partial.head
        headers = partial.headers
        response = Response(
            event.status,
            event.reason,
            event.version,
            headers,
            partial.body.body(header(headers, "content-encoding") or ""),
            partial.ts,
            ts,
            partial.complete,
            partial.trailers,
            tuple(direction.informational),
        )
        direction.informational = []
        self.stats.count("responses")
        owner = self._owner(response, partial.ack)
        if owner is None:
            self.stats.count("orphan_responses")
            return
        self.pending.remove(owner)
        if owner.request is None:  # answered before the request ended: finish with it
            owner.response = response
            self.answered[owner.head] = owner
            return
        self._finish(owner, response)

    def _owner(self, response: Response, ack: int) -> _Pending | None:
        """The pending request a response answers (see the module docstring)."""
        request_id = response.header(ID_HEADER)
        if request_id:
            for pending in self.pending:
                if pending.request_id == request_id:
                    while self.pending[0] is not pending:  # older requests lost their responses
                        self._finish(self.pending.popleft(), None)
                    return pending
        if not self.pending:
            return None
        oldest = self.pending[0]
        if ack and relative(ack, oldest.seq) <= 0:
            return None  # sent before the server had this request: an older, unseen exchange
        return oldest

    def _complete(self, direction: _AnyDirection, ts: float) -> None:
        if direction is self.requests:
            self._complete_request(ts)
        else:
            self._complete_response(ts)

    def _abandon(self, direction: _AnyDirection, ts: float) -> None:
        """Finish the message in progress as incomplete."""
        if direction.partial is not None:
            direction.partial.complete = False
        self._complete(direction, ts)
        direction.start = None

    def _finish(self, pending: _Pending, response: Response | None) -> None:
        head = pending.head
        request = pending.request or head.bare_request()  # or the request never completed
        exchange = Exchange(head.client, head.server, request, response, head.tls)
        self.consumer.exchange_done(head, exchange)

    def _endpoints(self) -> tuple[Endpoint, Endpoint]:
        ends = self.info.endpoints
        client = cast(int, self.client_side)  # known: a request head was read
        return ends[client], ends[1 - client]
