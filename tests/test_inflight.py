"""Correlation costs what is in flight: measured by the correlator's own counters, not by time.

The control-plane capture (scripts/controlplane.py: the CLI's commands served by nova-api, which
calls keystone, glance-api through the front door, neutron-server and placement-api, and glance-api
and neutron-server calling keystone in turn, in bursts) starts with a request to glance-api that is
never answered, and lost one response half way. Its twins are rewritten from it: without the
stuck connection, and the same packets in a tenth of the time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mutate
import pytest
from conftest import PCAPS, disagreements

from sniffer.correlate import Counters
from sniffer.flow import Call
from sniffer.pipeline import Options, Pipeline
from sniffer.render.sink import Sink
from sniffer.run import open_capture

CAPTURE = PCAPS / "control-plane-stuck.pcap"
TRUTH = json.loads(CAPTURE.with_suffix(".truth.json").read_text())
STUCK = next(c["id"] for c in TRUTH["calls"] if c["status"] is None)
WAIT = 1.0  # seconds: the capture is a few seconds long


class Calls(Sink):
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def call(self, call: Call) -> None:
        self.calls.append(call)


def correlate(path: Path, max_wait: float = WAIT) -> tuple[Counters, list[Call]]:
    sink = Calls()
    options = Options()
    options.max_wait = max_wait
    pipeline = Pipeline([sink], options)
    pipeline.run(open_capture(str(path)))
    pipeline.finish()
    return pipeline.correlator.counters, sink.calls


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("twins")
    made = {"stuck": CAPTURE}
    for name, args in {
        "clean": ["--without", STUCK],
        "compressed": ["--without", STUCK, "--compress", "10"],
    }.items():
        made[name] = directory / f"{name}.pcap"
        mutate.main([str(CAPTURE), str(made[name]), *args])
    return made


def per_search(counters: Counters) -> float:
    return counters.examined / counters.searches


def peak_in_progress(calls: list[Call]) -> int:
    """The most calls in progress at once, from their own times."""
    edges = sorted(
        [(call.start, 1) for call in calls] + [(call.end or call.start, -1) for call in calls]
    )
    now = peak = 0
    for _, change in edges:
        now += change
        peak = max(peak, now)
    return peak


def wrong_parents(calls: list[Call]) -> list[str]:
    """Calls whose caller, callee or parent is not the truth's. (The stuck request goes
    straight to glance-api's port, 60999, which nothing in the capture names by then: its callee
    is the address.)"""
    truth = {c["id"]: c for c in TRUTH["calls"]}
    truth[STUCK] = {**truth[STUCK], "callee": "127.0.0.1:60999"}
    return [
        call.id
        for call in calls
        if (call.caller, call.callee, call.parent_id)
        != tuple(truth[call.id][k] for k in ("caller", "callee", "parent"))
    ]


def test_the_capture_is_a_busy_nested_control_plane():
    """Guard for the tests below: many calls, nested three deep, served by callers."""
    parents = {c["id"]: c["parent"] for c in TRUTH["calls"]}

    def depth(call_id: str) -> int:
        return 0 if parents[call_id] is None else 1 + depth(parents[call_id])

    assert len(parents) >= 400
    assert max(map(depth, parents)) == 2
    callers = {c["caller"] for c in TRUTH["calls"]}
    assert {"openstack", "nova-api", "glance-api", "neutron-server"} <= callers


def test_a_search_examines_the_calls_in_flight_not_the_calls_kept(twins):
    counters, calls = correlate(twins["clean"])
    assert counters.searches == len(calls)
    # with the hook, a search looks only at the calls its caller is serving
    assert per_search(counters) < peak_in_progress(calls) / 4
    assert counters.held_peak < len(calls) / 2  # calls leave memory as the flow goes on
    assert wrong_parents(calls) == []


def test_cost_is_flat_under_compression(twins):
    clean, _ = correlate(twins["clean"])
    compressed, calls = correlate(twins["compressed"])
    assert compressed.searches == clean.searches
    # the index follows the order of starts and ends, which compression keeps
    assert per_search(compressed) == pytest.approx(per_search(clean), rel=0.05)
    assert wrong_parents(calls) == []


def test_a_stuck_call_holds_nothing_back(twins):
    clean, _ = correlate(twins["clean"])
    stuck, calls = correlate(twins["stuck"])
    assert stuck.searches == clean.searches + 1
    assert per_search(stuck) <= per_search(clean) + 1
    assert stuck.held_peak <= clean.held_peak + 2
    assert wrong_parents(calls) == []
    hung = next(call for call in calls if call.id == STUCK)
    assert hung.numbers == [1] and hung.response is None
    assert hung.note == f"no response within {WAIT:g} s"
    # the others overdue waited behind the lost response, on its connection (TCP reassembly
    # holds what follows a hole until it is sure the hole will not be filled)
    lost = next(c["id"] for c in TRUTH["calls"] if not c["complete"] and c["status"])
    connection = next(call.hops[0].client for call in calls if call.id == lost)
    assert {call.hops[0].client for call in calls if call.note and call is not hung} <= {connection}


def test_without_the_bound_a_stuck_call_holds_everything(twins):
    """What the bound is for: waiting for the stuck call keeps every later call in memory."""
    counters, calls = correlate(twins["stuck"], max_wait=3600)
    assert counters.held_peak == len(calls)
    assert not any(call.note for call in calls)


def test_waiting_is_bounded_in_the_documents(sniff):
    run = sniff(CAPTURE, options=("--max-wait", "1", "-q"))
    hung = next(call for call in run.calls() if call["id"] == STUCK)
    assert hung["note"] == "no response within 1 s" and hung["incomplete"]
    section = run.read("body.md").split("### (2) ")[0]
    assert section.startswith("\n### (1) GET /v2/images/")
    assert '!!! warning "no response within 1 s"' in section
    assert "(no response within 1 s)" in run.read("log.md").splitlines()[0]
    assert "overdue calls: " in run.stderr


def test_parents_stay_right_when_the_clock_ties(tmp_path):
    """A clock that ticks coarsely (here every 100 us) gives a call and the calls it makes the
    same first-byte time: the order in which they were seen decides."""
    packets, linktype = mutate.read(str(CAPTURE))
    for packet in packets:
        packet.ts = math.floor(packet.ts * 1e4) / 1e4
    coarse = tmp_path / "coarse.pcap"
    mutate.write(str(coarse), packets, linktype)
    _, calls = correlate(coarse)
    starts = [call.start for call in calls]
    assert len(set(starts)) < len(starts) / 2  # (the guard: ties are many)
    assert wrong_parents(calls) == []


@pytest.mark.parametrize("name", ["image-show", "server-create", "image-upload"])
def test_parents_stay_right_when_every_call_is_overdue(sniff, name):
    """With a bound shorter than every call, each is numbered before its response: callers
    and parents are still right, and each response is still written, after its request."""
    capture = PCAPS / f"{name}.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    run = sniff(capture, options=("--max-wait", "0.00001", "-q", "-j", "1"))
    by_id = {t["id"]: t for t in truth["calls"]}
    calls = run.calls()
    assert len(calls) == len(by_id)
    for call in calls:
        want = by_id[call["id"]]
        assert (call["caller"], call["callee"], call["parent"]) == (
            want["caller"],
            want["callee"],
            want["parent"],
        )
    assert any(call["note"] for call in calls)


def test_an_upload_numbered_while_it_flows_keeps_its_children(sniff):
    """The upload is overdue before its bytes are all sent: its token validation still nests
    under it, and here the order of every message is still the truth's."""
    capture = PCAPS / "image-upload.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    run = sniff(capture, options=("--max-wait", "0.001", "-q"))
    assert disagreements(run, truth) == []
    upload = next(call for call in run.calls() if call["method"] == "PUT")
    assert upload["note"] == "no response within 0.001 s"


@pytest.mark.parametrize(
    "options",
    [("-j", "1"), ("-j", "2"), ("-j", "2", "--exclude-service", "nova-compute")],
    ids=["j1", "j2", "j2-selected"],
)
def test_a_late_response_is_written_whole(sniff, options):
    """Sinks that copy a call at its request (masking, the second process, a selection) copy it
    again when its response comes late: the response section shows the response."""
    run = sniff(CAPTURE, options=("--max-wait", "1", "-q", *options))
    body = run.read("body.md")
    late = [call for call in run.calls() if call["note"] and call["status"] is not None]
    assert late  # (responses held behind the lost one for longer than the ordering window)
    for call in late:
        request, response = call["numbers"]
        assert f"### ({response}) {call['status']} {call['reason']} " in body
        assert response > request + 1  # numbered late: other messages came between


def test_overdue_outputs_are_the_same_in_one_process_or_two(sniff):
    options = ("--max-wait", "1", "-q")
    one = sniff(CAPTURE, options=(*options, "-j", "1"))
    two = sniff(CAPTURE, options=(*options, "-j", "2"))
    assert one.outputs() == two.outputs()


def test_live_ticks_release_a_stuck_call():
    """Live, time passes without packets: a tick past the bound numbers what waited behind the
    stuck call, before the capture ends."""
    sink = Calls()
    messages: list[int] = []
    sink.message = lambda message: messages.append(message.number)
    options = Options()
    options.max_wait, options.slack = WAIT, 0.25  # as live
    pipeline = Pipeline([sink], options)
    frames = iter(open_capture(str(CAPTURE)))
    first = next(frames)
    pipeline.feed(first)
    for frame in frames:  # the stuck request and the first burst
        if frame.ts > first.ts + 0.5:
            break
        pipeline.feed(frame)
    assert pipeline.stats.requests > 10 and messages == []  # all wait behind the stuck request
    pipeline.tick(first.ts + 0.5 + WAIT)
    assert messages[:2] == [1, 2] and len(sink.calls) > 10
    hung = pipeline.correlator.unsettled
    assert [track.call.id for track in hung.values()] == [STUCK]
