"""Hostile input: nothing raises out of the pipeline, and memory stays within its caps."""

from __future__ import annotations

import contextlib
import io
import struct

import mutate
import pytest
from conftest import PCAPS, tcp_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sniffer import tcp
from sniffer.decode import ACK, FIN, RST, SYN
from sniffer.http import MAX_BODY
from sniffer.pcapfile import CaptureError, CaptureReader, Frame
from sniffer.pipeline import Pipeline

SEED_FRAMES = [p.data for p in mutate.read(str(PCAPS / "image-show.pcap"))[0]]
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
PCAPNG_HEADER = bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000")
FRAGMENTS = [
    b"GET / HTTP/1.1\r\n",
    b"Host: x\r\n",
    b"Content-Length: 5\r\n",
    b"\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"HEAD /x HTTP/1.1\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"Upgrade: websocket\r\n",
]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(frames: list[Frame]) -> Pipeline:
    pipeline = Pipeline([])
    pipeline.run(frames)
    pipeline.finish()
    return pipeline


@FAST
@given(st.sampled_from([b"", PCAP_HEADER, PCAPNG_HEADER]), st.binary(max_size=3000))
def test_random_files_are_read_or_refused(prefix, tail):
    try:
        reader = CaptureReader("fuzz", io.BytesIO(prefix + tail))
        frames = []
        with contextlib.suppress(CaptureError):  # a corrupt record ends the file: a warning
            frames.extend(reader)
    except CaptureError:
        return
    run(frames)


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, len(SEED_FRAMES) - 1), st.integers(0, 2000), st.integers(0, 255)),
        max_size=30,
    ),
    st.lists(st.integers(0, len(SEED_FRAMES) - 1), max_size=10),
)
def test_mutated_captures(flips, drops):
    frames = [bytearray(data) for data in SEED_FRAMES]
    for index, position, value in flips:
        frame = frames[index]
        frame[position % len(frame)] = value
    kept = [Frame(i * 0.001, 1, bytes(f), len(f)) for i, f in enumerate(frames) if i not in drops]
    run(kept)


@FAST
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.integers(-3000, 3000),
            st.sampled_from([0, SYN, SYN | ACK, ACK, FIN | ACK, RST, ACK]),
            st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=40), max_size=4),
        ),
        max_size=40,
    )
)
def test_random_segments_on_an_http_port(segments):
    frames = []
    for n, (from_client, offset, flags, parts) in enumerate(segments):
        sport, dport = (40000, 80) if from_client else (80, 40000)
        data = tcp_frame(sport, dport, 1000 + offset, 5000, flags, b"".join(parts))
        frames.append(Frame(n * 0.001, 1, data, len(data)))
    run(frames)


def test_absurd_header_is_skipped_not_kept():
    header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 << 20) + b"\r\n\r\n"
    frames = [tcp_frame(40000, 80, 0, 0, SYN), tcp_frame(80, 40000, 0, 1, SYN | ACK)]
    for offset in range(0, len(header), 60000):
        frames.append(tcp_frame(40000, 80, 1 + offset, 1, ACK, header[offset : offset + 60000]))
    pipeline = run([Frame(i * 0.001, 1, f, len(f)) for i, f in enumerate(frames)])
    assert pipeline.stats.http_errors + pipeline.stats.non_http_streams >= 1
    assert pipeline.stats.calls == 0


def test_connect_tunnel_is_one_call_then_skipped():
    """Once a CONNECT is answered the connection carries a tunnel: not HTTP, and no crash."""
    request = b"CONNECT keystone:443 HTTP/1.1\r\nHost: keystone:443\r\n\r\n"
    response = b"HTTP/1.1 200 Connection established\r\n\r\n"
    tls = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"
    frames = [
        tcp_frame(40000, 3128, 0, 0, SYN),
        tcp_frame(3128, 40000, 0, 1, SYN | ACK),
        tcp_frame(40000, 3128, 1, 1, ACK, request),
        tcp_frame(3128, 40000, 1, 1 + len(request), ACK, response),
        tcp_frame(40000, 3128, 1 + len(request), 1 + len(response), ACK, tls),
        tcp_frame(3128, 40000, 1 + len(response), 1 + len(request) + len(tls), ACK, tls),
    ]
    pipeline = run([Frame(i * 0.001, 1, f, len(f)) for i, f in enumerate(frames)])
    assert (pipeline.stats.requests, pipeline.stats.calls) == (1, 1)


def test_a_2_gib_body_announced_and_never_sent():
    head = b"PUT /v2/images/x/file HTTP/1.1\r\nHost: x\r\nContent-Length: 2147483648\r\n\r\n"
    frames = [
        tcp_frame(40000, 9292, 0, 0, SYN),
        tcp_frame(9292, 40000, 0, 1, SYN | ACK),
        tcp_frame(40000, 9292, 1, 1, ACK, head + b"z" * 1000),
        tcp_frame(40000, 9292, 1 + len(head) + 1000, 1, RST),
    ]
    calls = []

    class Calls:
        def message(self, message):
            pass

        def call(self, call):
            calls.append(call)

        def close(self, stats):
            pass

    pipeline = Pipeline([Calls()])
    pipeline.run([Frame(i * 0.001, 1, f, len(f)) for i, f in enumerate(frames)])
    pipeline.finish()
    (call,) = calls
    assert not call.complete and call.request.body.size == 1000 <= MAX_BODY


def test_thousands_of_half_open_connections_are_evicted():
    pipeline = Pipeline([])
    for n in range(5000):
        data = tcp_frame(10000 + n, 80, n, 0, SYN)
        pipeline.feed(Frame(1.0 + n * 1e-4, 1, data, len(data)))
    assert len(pipeline.reassembler.connections) == 5000
    later = tcp_frame(9999, 80, 0, 0, SYN)
    pipeline.feed(Frame(1.0 + tcp.IDLE_TIMEOUT + 10, 1, later, len(later)))
    assert len(pipeline.reassembler.connections) == 1  # idle ones are gone
    pipeline.finish()


def test_out_of_order_buffer_is_capped():
    pipeline = Pipeline([])
    frames = [tcp_frame(40000, 80, 0, 0, SYN), tcp_frame(80, 40000, 0, 1, SYN | ACK)]
    chunk = b"x" * 60000
    for n in range(120):  # 7 MiB, all after a hole that is never filled
        frames.append(tcp_frame(40000, 80, 100 + n * len(chunk), 1, ACK, chunk))
    for n, data in enumerate(frames):
        pipeline.feed(Frame(n * 0.001, 1, data, len(data)))
        for conn in pipeline.reassembler.connections.values():
            assert all(side.pending_bytes <= tcp.MAX_PENDING for side in conn.sides)
    assert pipeline.stats.gaps >= 1
    pipeline.finish()


def test_regression_captures_run_clean(sniff):
    """Every input the fuzzer ever crashed on (pcaps/regressions/) now runs through."""
    for capture in sorted((PCAPS / "regressions").glob("*.pcap")):
        assert sniff(capture).exit_code in (0, 3), capture.name


HOSTILE_JSON = [
    b'{"a": "\\ud800 lone"}',  # an escaped lone surrogate: JSON, but no UTF-8 once unescaped
    b'{"password": "p", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}",  # past both parsers' depth
    b'{"k": ' + b"[" * 600 + b"]" * 600 + b"}",  # past orjson's writer and Python's recursion
    b'{"k": ' + b"[" * 300 + b"]" * 300 + b"}",  # past orjson's writer only
    b'{"password": "\\udc00"}',
]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_json_no_parser_follows_is_shown_and_masked(sniff, tmp_path, jobs):
    """Bodies JSON allows but parsers refuse (lone surrogates, deep nesting) are written
    indented or as sent, with their secrets masked: no crash, every output whole."""
    packets = []
    for n, body in enumerate(HOSTILE_JSON):
        request = (
            b"POST /v3/auth/tokens HTTP/1.1\r\nHost: keystone\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        response = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
        port = 40000 + n
        for frame in (
            tcp_frame(port, 5000, 0, 0, SYN),
            tcp_frame(5000, port, 0, 1, SYN | ACK),
            tcp_frame(port, 5000, 1, 1, ACK, request),
            tcp_frame(5000, port, 1, 1 + len(request), ACK, response),
        ):
            packets.append(mutate.Packet(len(packets) * 0.01, frame, len(frame)))
    mutate.write(str(tmp_path / "hostile.pcap"), packets, 1)
    run = sniff(tmp_path / "hostile.pcap", options=("-j", jobs))
    assert run.exit_code == 0, run.stderr
    assert len(run.calls()) == len(HOSTILE_JSON)
    log = run.read("log.md")
    assert '"a": "\\ud800 lone"' in log  # the escape as sent, in valid UTF-8
    assert '"password": "p"' not in log and '"password": "\\udc00"' not in log
    assert log.count('"password": "<redacted>"') == 2
    assert log.count("[") == 2000 + 600 + 300  # every level shown, indented or as sent
