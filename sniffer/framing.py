"""HTTP/1.1 framing of one direction of a connection, read passively: where each message's head
and body begin and end.

Theory of operation. h11 frames every kind of message, but it is built for an endpoint and pays
for that on each one (a state machine per role, validated event objects, a regex per header line).
Most messages between OpenStack services are plain: HTTP/1.1, kept alive, a Content-Length or no
body. A Framer reads those itself: it finds the end of the head as h11 does, checks the head with
patterns that accept a subset of what h11 accepts, and counts the body out by its length. Any
other message (chunked, close-delimited, 1xx, answers to HEAD or CONNECT, Upgrade, Expect,
Connection: close, HTTP/1.0, anything odd or malformed) goes, from its first byte, to a fresh h11
connection, which frames it and gives the verdict on errors; once it ends and the connection stays
open, the Framer reads on by itself. So both ways see whole messages and give the same events
(tests/test_framing.py compares them on every capture and on odd inputs; FAST = False is h11 alone).

h11 is written for one end of a connection; reading one direction passively keeps its state
machine in step with synthetic events: the request reader is handed an empty response once a
request ends, and the response reader a request with the method being answered (answers to HEAD,
and 1xx, 204 and 304, frame differently).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import h11

from .flow import Headers

FAST = True  # False: h11 frames every message (the general path, for comparison)

# the patterns h11 applies, narrowed to HTTP/1.1 and to CRLF line ends (re.ASCII: \s is ASCII
# whitespace, as in h11's bytes patterns; heads are decoded as latin-1, one character per byte)
HEAD_END = re.compile(rb"\n\r?\n")  # h11's end of a head: the first blank line
_TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE = r"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"
REQUEST_LINE = re.compile(rf"({_TOKEN}) ([\x21-\x7e]+) HTTP/1\.1\r\n", re.ASCII)
STATUS_LINE = re.compile(r"HTTP/1\.1 ([0-9]{3})(?: ((?:[ \t]|[^\x00\s])*))?\r\n", re.ASCII)
FIELDS = re.compile(rf"(?:{_TOKEN}:[ \t]*{_VALUE}[ \t]*\r\n)*\r\n", re.ASCII)
FIELD = re.compile(rf"({_TOKEN}):[ \t]*({_VALUE})[ \t]*\r\n", re.ASCII)
DIGITS = re.compile(r"[0-9]{1,18}", re.ASCII)
# headers that change framing or the connection's course: such messages are h11's
REFUSED = frozenset({"transfer-encoding", "upgrade", "expect"})
NO_BODY_STATUS = (204, 304)


@dataclass(slots=True)
class RequestStart:
    method: str
    target: str
    version: str
    headers: Headers


@dataclass(slots=True)
class ResponseStart:
    status: int
    reason: str
    version: str
    headers: Headers


@dataclass(slots=True)
class Informational:
    """A 1xx response before the final one."""

    status: int


@dataclass(slots=True)
class Data:
    # bytes when each piece is read before more is received (http.py); a bytearray only if
    # receive() is called again in the middle of a body
    data: bytes | bytearray


@dataclass(slots=True)
class End:
    trailers: Headers


NEED_DATA = "NEED_DATA"  # nothing more until more bytes arrive
CLOSED = "CLOSED"  # the direction ended cleanly between messages
Event = RequestStart | ResponseStart | Informational | Data | End | str


class FramingError(Exception):
    """The bytes break HTTP/1.1 framing (h11's verdict)."""


# the events that keep h11 in step, built once (h11 validates each event it is given)
SYNTHETIC_RESPONSE = h11.Response(status_code=200, headers=[("Content-Length", "0")])
END_OF_MESSAGE = h11.EndOfMessage()


@functools.lru_cache(maxsize=64)
def _synthetic_request(method: str) -> h11.Request:
    return h11.Request(method=method, target="/", headers=[("Host", "x")])


def _headers(items: Iterable[tuple[bytes, bytes]]) -> Headers:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in items)


def _plain_length(headers: Headers, request: bool) -> int | None:
    """The body length of a plain message, None when h11 must frame it: exactly one Host in a
    request, no framing-changing header, no Connection: close, at most one plain Content-Length
    (required in a response: without it the body runs to the connection's end)."""
    length = None
    hosts = 0
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-length":
            if length is not None or DIGITS.fullmatch(value) is None:
                return None
            length = int(value)
        elif lowered == "host":
            hosts += 1
        elif lowered == "connection":
            if "close" in value.lower():
                return None
        elif lowered in REFUSED:
            return None
    if request:
        return (length or 0) if hosts == 1 else None
    return length


def plain_request(head: bytes | bytearray) -> tuple[RequestStart, int] | None:
    text = head.decode("latin-1")
    line = REQUEST_LINE.match(text)
    if line is None or line[1] == "CONNECT" or FIELDS.fullmatch(text, line.end()) is None:
        return None
    headers = tuple(FIELD.findall(text, line.end()))
    length = _plain_length(headers, True)
    if length is None:
        return None
    return RequestStart(line[1], line[2], "1.1", headers), length


def plain_response(head: bytes | bytearray) -> tuple[ResponseStart, int] | None:
    text = head.decode("latin-1")
    line = STATUS_LINE.match(text)
    if line is None or FIELDS.fullmatch(text, line.end()) is None:
        return None
    status = int(line[1])
    if status < 200 or status in NO_BODY_STATUS:
        return None
    headers = tuple(FIELD.findall(text, line.end()))
    length = _plain_length(headers, False)
    if length is None:
        return None
    return ResponseStart(status, line[2] or "", "1.1", headers), length


class Framer:
    """Frames the messages of one direction: requests (the client's bytes) or responses."""

    __slots__ = (
        "requests",
        "max_head",
        "fast",
        "h11",
        "data",
        "pos",
        "searched",
        "remaining",
        "closed",
        "done",
        "method",
    )

    def __init__(self, requests: bool, max_head: int) -> None:
        self.requests = requests
        self.max_head = max_head
        self.fast = FAST
        self.h11: h11.Connection | None = None  # framing the current message, when not plain
        self.data: bytes | bytearray = b""  # received bytes, unread from pos on
        self.pos = 0
        self.searched = 0  # where the search for the end of a head cut across segments resumes
        self.remaining = -1  # body bytes still to come; -1: between messages
        self.closed = False
        self.done = False  # a message ended: next_cycle() before the next
        self.method: str | None = None  # responses: the method of the request being answered

    # -- input -----------------------------------------------------------------------------

    def expect(self, method: str) -> None:
        """Responses: the next response answers a request with this method."""
        self.method = method
        if self.h11 is not None:
            self.h11.send(_synthetic_request(method))
            self.h11.send(END_OF_MESSAGE)

    def receive(self, data: bytes) -> None:
        """More bytes of the direction; b"" when it ends."""
        if self.h11 is not None:
            self.h11.receive_data(data)
        elif not data:
            self.closed = True
        elif self.pos == len(self.data):
            self.data, self.pos, self.searched = data, 0, 0
        else:  # a head cut across segments: gather it in place (linear however small the pieces)
            if type(self.data) is not bytearray:
                self.data = bytearray(self.data[self.pos :])
                self.searched = max(0, self.searched - self.pos)
                self.pos = 0
            self.data += data

    @property
    def unread(self) -> int:
        if self.h11 is not None:
            return len(self.h11.trailing_data[0])
        return len(self.data) - self.pos

    def take_unread(self) -> bytes:
        """The bytes received and not read (after the end of a message), given up."""
        if self.h11 is not None:
            return self.h11.trailing_data[0]
        data = bytes(self.data[self.pos :])
        self.data, self.pos = b"", 0
        return data

    # -- events ----------------------------------------------------------------------------

    def next_event(self) -> Event:
        """The next event (NEED_DATA when none yet); raises FramingError."""
        if self.h11 is not None:
            return self._h11_event(self.h11)
        if self.remaining > 0:
            return self._body()
        if self.remaining == 0:
            self.remaining = -1
            self.done = True
            return End(())
        if self.done:
            return NEED_DATA
        return self._head()

    def next_cycle(self) -> bool:
        """After a message's End: ready for the next one (False: the connection closes)."""
        self.done = False
        self.method = None
        conn = self.h11
        if conn is None:
            return True
        if self.requests:
            try:
                conn.send(SYNTHETIC_RESPONSE)
                conn.send(END_OF_MESSAGE)
            except h11.LocalProtocolError:  # a CONNECT or Upgrade answered: no longer HTTP
                return False
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return False
        conn.start_next_cycle()
        if self.fast:  # back to reading plain messages here
            self.data, self.closed = conn.trailing_data
            self.pos = 0
            self.h11 = None
        return True

    def _head(self) -> Event:
        data, pos = self.data, self.pos
        if pos == len(data):
            if not self.closed:
                return NEED_DATA
            # a server that closes instead of answering is an error: h11 says which
            return CLOSED if self.requests else self._to_h11()
        if not self.fast or data[pos] < 0x21 or (not self.requests and self.method is None):
            return self._to_h11()  # h11 refuses such a start at once
        found = HEAD_END.search(data, max(pos, self.searched))
        if found is None:
            if self.closed or len(data) - pos > self.max_head:
                return self._to_h11()  # h11 reports the cut or oversized head
            self.searched = len(data) - 2  # a blank line may straddle the next piece
            return NEED_DATA
        self.searched = 0
        if type(data) is bytearray:  # a gathered head: bodies are handed on as bytes
            self.data = data = bytes(data)
        head = data[pos : found.end()]
        plain: tuple[RequestStart | ResponseStart, int] | None
        if self.requests:
            plain = plain_request(head)
        else:
            plain = None if self.method in ("HEAD", "CONNECT") else plain_response(head)
        if plain is None:
            return self._to_h11()
        event, self.remaining = plain
        self.pos = found.end()
        return event

    def _body(self) -> Event:
        data, pos = self.data, self.pos
        unread = len(data) - pos
        if not unread:
            if self.closed:
                raise FramingError("peer closed connection without sending complete message body")
            return NEED_DATA
        if unread <= self.remaining:
            chunk = data if pos == 0 else data[pos:]
            self.data, self.pos = b"", 0
        else:
            chunk = data[pos : pos + self.remaining]
            self.pos = pos + self.remaining
        self.remaining -= len(chunk)
        return Data(chunk)

    # -- h11 -------------------------------------------------------------------------------

    def _to_h11(self) -> Event:
        """Hand the message, from its first byte, to a fresh h11 connection."""
        conn = h11.Connection(h11.SERVER if self.requests else h11.CLIENT, self.max_head)
        if self.method is not None:
            conn.send(_synthetic_request(self.method))
            conn.send(END_OF_MESSAGE)
        if self.pos < len(self.data):
            # h11 annotates bytes but buffers any bytes-like (its receive buffer is a bytearray)
            conn.receive_data(self.data[self.pos :])  # type: ignore[arg-type]
        if self.closed:
            conn.receive_data(b"")
        self.h11, self.data, self.pos = conn, b"", 0
        return self._h11_event(conn)

    def _h11_event(self, conn: h11.Connection) -> Event:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            raise FramingError(str(error)) from None
        # one type() for the dispatch; mypy narrows only on type(event) itself, hence the casts
        kind = type(event)
        if kind is h11.Data:
            return Data(bytes(cast(h11.Data, event).data))
        if kind is h11.EndOfMessage:
            self.done = True
            return End(_headers(cast(h11.EndOfMessage, event).headers.raw_items()))
        if kind is h11.Request:
            request = cast(h11.Request, event)
            return RequestStart(
                request.method.decode("latin-1"),
                request.target.decode("latin-1"),
                request.http_version.decode("latin-1"),
                _headers(request.headers.raw_items()),
            )
        if kind is h11.Response:
            response = cast(h11.Response, event)
            return ResponseStart(
                response.status_code,
                response.reason.decode("latin-1"),
                response.http_version.decode("latin-1"),
                _headers(response.headers.raw_items()),
            )
        if kind is h11.InformationalResponse:
            return Informational(cast(h11.InformationalResponse, event).status_code)
        if kind is h11.ConnectionClosed:
            return CLOSED
        return NEED_DATA  # NEED_DATA, or PAUSED (after a protocol switch)
