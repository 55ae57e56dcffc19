"""The Framer reads plain messages itself and gives the rest to h11: both ways, same events.

FAST = False makes h11 frame every message (the general path); each test compares the two on the
same bytes, split the same way.
"""

from __future__ import annotations

import mutate
import pytest
from conftest import PCAPS
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffer import framing
from sniffer.framing import CLOSED, NEED_DATA, Data, End, Framer, FramingError
from sniffer.http import MAX_HEAD

PLAIN = (
    b"GET /v2/images HTTP/1.1\r\nHost: 127.0.0.1:60999\r\nUser-Agent: x\r\n\r\n",
    b"POST /identity/v3/auth/tokens HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /v2/images/1/file HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\nConnection: keep-alive"
    b"\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\nhost:h\r\nX-Empty:\r\nX-Spaces:  a  b \t\r\n\r\n",
)
ODD_REQUESTS = (
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"GET /close HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /old HTTP/1.0\r\n\r\n",
    b"GET /nohost HTTP/1.1\r\nAccept: */*\r\n\r\n",
    b"GET /twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"POST /twolengths HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    b"POST /list HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nab",
    b"POST /bad HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
    b"GET /fold HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\n\r\n",
    b"GET /lf HTTP/1.1\nHost: h\n\n",
    b"GET /mixed HTTP/1.1\r\nHost: h\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /latin HTTP/1.1\r\nHost: h\r\nX-L: caf\xe9\r\n\r\n",
    b"\r\nGET /lead HTTP/1.1\r\nHost: h\r\n\r\n",
    b" GET /space HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /nul HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00",
    b"NOT HTTP AT ALL\r\n\r\n",
)
RESPONSES = (
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", "GET"),
    (b"HTTP/1.1 300 MULTIPLE CHOICES\r\nContent-Length: 0\r\n\r\n", "GET"),
    (b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx", "GET"),
    (b"HTTP/1.1 201 \r\nContent-Length: 1\r\n\r\nx", "POST"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE"),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", "GET"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nz", "PUT"),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz", "GET"),
    (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", "GET"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz", "GET"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00", "GET"),
    (b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length:  3 \r\n\r\nabc", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", "CONNECT"),
    (b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nx-request-id: r\r\n\r\nnope", "GET"),
    (b"HTTP/1.1 200 OK\r\nX-Bad\r\nContent-Length: 0\r\n\r\n", "GET"),
)

PLAIN_RESPONSES = tuple(message for message, method in RESPONSES[:4] + RESPONSES[-3:-2])


def _frame(chunks: list[bytes], requests: bool, methods: list[str], fast: bool) -> list:
    """Drive a Framer as http.py does; the events, with the bodies joined."""
    saved, framing.FAST = framing.FAST, fast
    try:
        framer = Framer(requests, MAX_HEAD)
    finally:
        framing.FAST = saved
    answering = iter(methods)
    if not requests:
        framer.expect(next(answering, "GET"))
    events: list = []
    for chunk in chunks:
        framer.receive(chunk)
        while True:
            try:
                event = framer.next_event()
            except FramingError:
                return [*events, "error", framer.unread]
            if event is NEED_DATA:
                break
            if event is CLOSED:
                return [*events, "closed"]
            if type(event) is Data and events and type(events[-1]) is Data:
                events[-1] = Data(events[-1].data + event.data)
            else:
                events.append(event)
            if type(event) is End:
                events.append(("unread", framer.unread))
                if not framer.next_cycle():
                    return [*events, "close"]
                if not requests:
                    framer.expect(next(answering, "GET"))
    return events


def _same(chunks: list[bytes], requests: bool, methods: list[str] = ()) -> list:
    fast = _frame(chunks, requests, list(methods), True)
    assert fast == _frame(chunks, requests, list(methods), False)
    return fast


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@pytest.mark.parametrize("message", PLAIN + ODD_REQUESTS)
def test_each_request_alone_and_followed(message: bytes) -> None:
    for stream in (message, message + PLAIN[1], PLAIN[0] + message + PLAIN[1]):
        _same([stream], True)
        _same([stream, b""], True)
        _same([bytes([byte]) for byte in stream] + [b""], True)


@pytest.mark.parametrize(("message", "method"), RESPONSES)
def test_each_response_alone_and_followed(message: bytes, method: str) -> None:
    plain = RESPONSES[0][0]
    for stream, methods in ((message, [method]), (plain + message + plain, ["GET", method])):
        _same([stream], False, methods)
        _same([stream, b""], False, methods)
        _same([bytes([byte]) for byte in stream] + [b""], False, methods)


def test_plain_messages_are_read_without_h11() -> None:
    """Guard for the comparisons: the fast way is really taken for plain messages."""
    framer = Framer(True, MAX_HEAD)
    framer.receive(b"".join(PLAIN))
    while (event := framer.next_event()) is not NEED_DATA:
        assert framer.h11 is None
        if type(event) is End:
            assert framer.next_cycle()


def test_odd_message_goes_to_h11_and_back() -> None:
    framer = Framer(False, MAX_HEAD)
    framer.expect("GET")
    chunked = RESPONSES[7][0]
    framer.receive(chunked + RESPONSES[0][0])
    kinds = []
    while (event := framer.next_event()) is not NEED_DATA:
        kinds.append((type(event).__name__, framer.h11 is not None))
        if type(event) is End:
            assert framer.next_cycle()
            framer.expect("GET")
    assert kinds[0] == ("ResponseStart", True)
    assert kinds[-2:] == [("Data", False), ("End", False)]


def test_oversized_head_is_refused_alike() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-Long: " + b"a" * (MAX_HEAD + 10)
    assert _same([head[:1000], head[1000:]], True)[-2] == "error"


def test_cut_body_is_an_error_alike() -> None:
    assert _same([PLAIN[1][:-2], b""], True)[-2] == "error"


@st.composite
def altered(draw, messages: tuple[bytes, ...]) -> bytes:
    """A message with one byte changed: the edges of the grammar the fast way accepts."""
    message = draw(st.sampled_from(messages))
    at = draw(st.integers(min_value=0, max_value=len(message) - 1))
    byte = draw(st.sampled_from(b" \t\r\n\x00:,;\x7f\x80\xe9/0aA") | st.integers(0, 255))
    return message[:at] + bytes([byte]) + message[at + 1 :]


stream_parts = st.lists(
    st.sampled_from(PLAIN + ODD_REQUESTS) | altered(PLAIN) | st.binary(max_size=40),
    min_size=1,
    max_size=5,
)


@settings(max_examples=1000, deadline=None)
@given(stream_parts, st.lists(st.integers(min_value=0), max_size=8), st.booleans())
def test_random_request_streams(parts: list[bytes], cuts: list[int], eof: bool) -> None:
    data = b"".join(parts)
    _same(_split(data, cuts) + ([b""] if eof else []), True)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.sampled_from(RESPONSES) | st.tuples(altered(PLAIN_RESPONSES), st.just("GET")),
        min_size=1,
        max_size=5,
    ),
    st.binary(max_size=30),
    st.lists(st.integers(min_value=0), max_size=8),
    st.booleans(),
)
def test_random_response_streams(parts, tail: bytes, cuts: list[int], eof: bool) -> None:
    data = b"".join(message for message, _ in parts) + tail
    methods = [method for _, method in parts]
    _same(_split(data, cuts) + ([b""] if eof else []), False, methods)


CAPTURES = sorted(PCAPS.glob("*.pcap*"))


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.name)
def test_captures_give_the_same_outputs(sniff, monkeypatch, capture) -> None:
    fast = sniff(capture).outputs()
    monkeypatch.setattr(framing, "FAST", False)
    assert sniff(capture).outputs() == fast


@pytest.mark.parametrize(
    "args",
    [
        ("--resegment", "3"),
        ("--resegment", "7", "--reorder", "5", "--duplicate", "0.3", "--seed", "4"),
    ],
    ids="_".join,
)
def test_damaged_captures_give_the_same_outputs(sniff, monkeypatch, tmp_path, args) -> None:
    damaged = tmp_path / "damaged.pcap"
    mutate.main([str(PCAPS / "protocol.pcap"), str(damaged), *args])
    fast = sniff(damaged).outputs()
    monkeypatch.setattr(framing, "FAST", False)
    assert sniff(damaged).outputs() == fast


def test_head_in_byte_sized_pieces() -> None:
    """A long head cut into single bytes is gathered in place and searched once (h11 does the
    same): the fast way stays linear in the head's size, and gives h11's events."""
    head = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n" + b"X-Pad: aaaa\r\n" * 8000
    stream = head + b"\r\nabc" + PLAIN[0]
    events = _same([stream[n : n + 1] for n in range(len(stream))], True)
    assert [type(event).__name__ for event in events[:3]] == ["RequestStart", "Data", "End"]
    assert events[1].data == b"abc"
    assert len(events[0].headers) == 8002
