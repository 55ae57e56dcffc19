"""Connections read from inside TLS: plaintext from the TLS library in place of the packets' bytes.

Without eBPF at hand, the seed capture plays both parts: its front-door connections (port 80)
have their payload replaced by random bytes of the same length, as ciphertext would be, and
each payload is handed to the pipeline as the plaintext a TLS library wrote, a moment before its
packet, as `SSL_write` runs before the kernel sends. The flow must come out as in clear, with
the front-door hops marked as read from TLS.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from conftest import PCAPS

from sniffer.decode import decode
from sniffer.flow import Call
from sniffer.outputs import Chosen
from sniffer.pcapfile import Frame
from sniffer.pipeline import Pipeline
from sniffer.render.sink import Sink
from sniffer.run import open_capture
from sniffer.tls import Plaintext

SEED = PCAPS / "image-show.pcap"
FRONT_DOOR = 80


class Calls(Sink):
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def call(self, call: Call) -> None:
        self.calls.append(call)


def encrypted(path, port: int) -> Iterator[Frame | Plaintext]:
    """The capture's frames, those to or from `port` with their payload scrambled, each after
    the plaintext it carries."""
    scramble = random.Random(2026)
    for frame in open_capture(str(path)):
        segment = decode(frame.ts, frame.linktype, frame.data, frame.wirelen)
        payload = segment.payload
        if port not in (segment.sport, segment.dport) or not payload:
            yield frame
            continue
        yield Plaintext(
            frame.ts, (segment.src, segment.sport), (segment.dst, segment.dport), payload
        )
        noise = scramble.randbytes(len(payload))
        at = frame.data.rindex(payload)
        data = frame.data[:at] + noise + frame.data[at + len(payload) :]
        yield Frame(frame.ts, frame.linktype, data, frame.wirelen)


def play(items, sinks) -> Pipeline:
    pipeline = Pipeline(sinks)
    for item in items:
        if isinstance(item, Plaintext):
            pipeline.plaintext(item)
        else:
            pipeline.feed(item)
    pipeline.finish()
    return pipeline


def shape(calls: list[Call]) -> list[tuple]:
    return [
        (
            c.caller,
            c.callee,
            c.request.target,
            c.response and c.response.status,
            c.depth,
            len(c.hops),
        )
        for c in calls
    ]


def test_the_flow_inside_tls_is_the_flow_in_clear():
    clear, inside = Calls(), Calls()
    play(open_capture(str(SEED)), [clear])
    pipeline = play(encrypted(SEED, FRONT_DOOR), [inside])
    assert len(clear.calls) == 4 and shape(inside.calls) == shape(clear.calls)
    for call in inside.calls:
        assert [hop.tls for hop in call.hops] == [FRONT_DOOR in hop.server for hop in call.hops]
        assert [hop.request.body for hop in call.hops] == [
            hop.request.body for hop in next(c for c in clear.calls if c.id == call.id).hops
        ]
    assert pipeline.stats.tls_connections == 2  # the client's, and glance-api's validation


def test_without_the_plaintext_the_scrambled_connections_say_nothing():
    """Guard for the test above: the scrambled packets alone hold no front-door call."""
    frames = (item for item in encrypted(SEED, FRONT_DOOR) if isinstance(item, Frame))
    alone = Calls()
    play(frames, [alone])
    assert all(FRONT_DOOR not in hop.server for call in alone.calls for hop in call.hops)


def test_documents_and_exports_say_which_hops_were_read_from_tls(tmp_path):
    outputs = Chosen(str(tmp_path))
    play(encrypted(SEED, FRONT_DOOR), outputs.open(show_secrets=False, jobs=1))
    outputs.finish()
    text, jsonl = (tmp_path / "body.md").read_text(), tmp_path / "calls.jsonl"
    assert text.count('!!! info "TLS"') == 4  # every request reached the front door
    assert "Read from inside TLS on `127.0.0.1:" in text and " → 127.0.0.1:80`" in text
    hops = [hop for line in jsonl.read_text().splitlines() for hop in json.loads(line)["hops"]]
    assert [hop["tls"] for hop in hops] == [hop["server"].endswith(":80") for hop in hops]
