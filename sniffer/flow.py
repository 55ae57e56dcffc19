"""The flow model every output reads: messages, exchanges (hops), calls, and numbered flow messages.

Records are frozen; the mutable state lives in the parsers (`http`) and the correlator.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Literal, dataclass_transform


@dataclass_transform(frozen_default=True)
def record(cls: type) -> type:
    """A frozen, slotted dataclass that pickles as its constructor's arguments: every message
    crosses to the output process (render.worker), and dataclasses pickle slotted records by
    walking their fields in Python, at twice the cost on both sides."""
    cls = dataclass(frozen=True, slots=True)(cls)
    values = attrgetter(*(each.name for each in fields(cls)))

    def reduce(self: object) -> tuple[type, tuple]:
        return cls, values(self)

    cls.__reduce__ = reduce  # type: ignore[assignment,method-assign]  # (made for this class)
    return cls


Headers = tuple[tuple[str, str], ...]
Kind = Literal["request", "response"]
Endpoint = tuple[str, int]


MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:a.b.c.d, an IPv4 peer of an IPv6 socket


def address(raw: bytes) -> str:
    """An address from its 4 or 16 bytes, as the packets carry it (an IPv4-mapped one as
    IPv4): how the kernel's tables and reports are matched to the capture."""
    if len(raw) == 16 and raw.startswith(MAPPED):
        raw = raw[12:]
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def endpoint_name(endpoint: Endpoint) -> str:
    """`address:port` (`[address]:port` for IPv6): how an endpoint no rule names is shown."""
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def header(headers: Headers, name: str) -> str | None:
    """The first value of a header, by case-insensitive name."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


@record
class Body:
    data: bytes  # as sent (chunked framing removed), up to the body bound
    size: int  # bytes in the whole body
    encoding: str = ""  # Content-Encoding, for decoding at display time
    omitted: int = 0  # bytes beyond the bound, not kept

    @property
    def truncated(self) -> bool:
        return self.omitted > 0


EMPTY = Body(b"", 0)


@record
class Request:
    method: str
    target: str  # as sent: path and query
    version: str
    headers: Headers
    body: Body
    ts: float  # first byte seen
    end_ts: float  # last byte seen
    complete: bool = True
    trailers: Headers = ()  # sent after a chunked body

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        return header(self.headers, name)


@record
class Response:
    status: int
    reason: str  # as sent
    version: str
    headers: Headers
    body: Body
    ts: float
    end_ts: float
    complete: bool = True
    trailers: Headers = ()
    informational: tuple[int, ...] = ()  # 1xx statuses that came before this one

    def header(self, name: str) -> str | None:
        return header(self.headers, name)


@record
class Exchange:
    """One request and its response on one TCP connection: a hop of a call."""

    client: Endpoint
    server: Endpoint
    request: Request
    response: Response | None  # None: the connection ended first
    tls: bool = False  # read from inside TLS (its plaintext, from the TLS library)

    @property
    def complete(self) -> bool:
        return self.request.complete and self.response is not None and self.response.complete


@record
class Command:
    """What a call was made for: a command a client ran, or a service's background work."""

    number: int  # commands: 1, 2, ... in the order of their first calls; background: 0
    client: str  # who ran it, or the service whose background it is
    line: str = ""  # its command line, when its process was seen (live)
    pid: int = 0  # that process

    @property
    def background(self) -> bool:
        return self.number == 0


@dataclass
class Call:
    """One logical call: the hops that carried it (front door first), named and nested."""

    id: str
    caller: str
    callee: str
    hops: list[Exchange]
    parent: int | None = None  # the key of the call it was made while serving
    parent_id: str | None = None  # that call's id, as outputs name it
    root_id: str = ""  # the id of the call its tree began with (its own, for a root)
    depth: int = 0
    operation: Operation | None = None
    numbers: list[int] = field(default_factory=list)  # request and response message numbers
    note: str = ""  # what the correlator could not wait for ("no response within 10 s")
    # bumped when hops already shown change: a call numbered before its response (see
    # `correlate`); sinks that keep a copy of a call from its first message make it anew
    revision: int = 0
    key: int = 0  # assigned once by the correlator, unique in a run: what sinks know a call by
    command: Command | None = None  # assigned with its number (see `commands`)
    # a call that had already ended when this one began and whose X-OpenStack-Request-ID this one
    # carries: its cause, not its parent (nova's RPC to scheduler and compute): (id, root id)
    caused_by: tuple[str, str] | None = None

    @property
    def hop(self) -> Exchange:
        """The innermost hop: the one closest to the callee, which documents show."""
        return self.hops[-1]

    @property
    def request(self) -> Request:
        return self.hop.request

    @property
    def response(self) -> Response | None:
        return self.hop.response

    @property
    def start(self) -> float:
        return self.hops[0].request.ts

    @property
    def end(self) -> float | None:
        outer = self.hops[0].response
        return outer.end_ts if outer is not None else None

    @property
    def complete(self) -> bool:
        return all(hop.complete for hop in self.hops)

    @property
    def duration(self) -> float | None:
        response = self.response
        return None if response is None else response.end_ts - self.request.ts


@record
class Operation:
    service: str  # service type, e.g. "image"
    method: str
    template: str  # e.g. "/v2/images/{image_id}"
    title: str
    url: str


@record
class FlowMessage:
    """A request or a response of a call, numbered in the order its first byte was seen."""

    number: int
    kind: Kind
    call: Call
    # its body made ready for display (language, text), once for every sink that shows bodies:
    # see `render.sink.Presenter`
    display: tuple[str, bytes] | None = None

    @property
    def is_request(self) -> bool:
        return self.kind == "request"
