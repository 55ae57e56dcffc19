"""Captures damaged the way real ones are: rewritten by scripts/mutate.py, then analysed."""

from __future__ import annotations

import json

import mutate
import pytest
from conftest import PCAPS

SEED = PCAPS / "image-show.pcap"
PROTOCOL = PCAPS / "protocol.pcap"


def mutated(tmp_path, source, *args: str):
    out = tmp_path / f"mutated-{abs(hash(args))}.pcap"
    mutate.main([str(source), str(out), *args])
    return out


REWRITES = [
    ("--resegment", "7"),
    ("--resegment", "1"),
    ("--resegment", "5", "--reorder", "4", "--seed", "3"),
    ("--resegment", "9", "--reorder", "8", "--duplicate", "0.3", "--seed", "7"),
    ("--duplicate", "0.5", "--seed", "2"),
    ("--resegment", "100", "--reorder", "16", "--duplicate", "0.2", "--seed", "5"),
    ("--wrap",),
    ("--wrap", "--resegment", "50", "--reorder", "6", "--duplicate", "0.2", "--seed", "9"),
]
CONCURRENT = [PCAPS / "server-create.pcap", PCAPS / "server-create-nohook.pcap"]


@pytest.mark.parametrize(
    ("source", "args"),
    [(source, args) for source in (SEED, PROTOCOL) for args in REWRITES]
    # the concurrent flow: byte-sized segments would only make it slow, not harder
    + [(source, args) for source in CONCURRENT for args in REWRITES if args[1:2] != ("1",)],
    ids=lambda value: value.stem if hasattr(value, "stem") else "_".join(value),
)
def test_resegmenting_reordering_duplicating_change_nothing(sniff, tmp_path, source, args):
    original = sniff(source).outputs()
    damaged = sniff(mutated(tmp_path, source, *args))
    assert damaged.exit_code == 0
    assert damaged.outputs() == original


def test_mutations_really_happened(tmp_path, sniff):
    """Guard for the test above: the rewritten capture is not the original."""
    damaged = sniff(mutated(tmp_path, SEED, "--resegment", "5", "--reorder", "4", "--seed", "3"))
    assert "out of order segments" in damaged.stderr
    assert damaged.stderr.split()[0] != "34"  # more packets than the original capture


def test_capture_started_mid_connection(sniff, tmp_path):
    """Starting after the first exchange (no SYN left): every later call is found, nested."""
    truth = json.loads((PCAPS / "image-show.truth.json").read_text())["calls"]
    calls = sniff(mutated(tmp_path, SEED, "--start", "7")).calls()
    assert sorted(c["id"] for c in calls) == sorted(t["id"] for t in truth[1:])
    nested = next(c for c in calls if c["caller"] == "glance-api")
    assert nested["parent"] == truth[2]["id"]
    assert all(not c["incomplete"] for c in calls)


def first_request_packets(path) -> dict[str, int]:
    """For each Requestshook id, the index of the packet that carries its first request byte."""
    first: dict[str, int] = {}
    packets, _ = mutate.read(str(path))
    for index, packet in enumerate(packets):
        parts = mutate.tcp_of(packet)
        payload = bytes(parts[2].data) if parts else b""
        if b" HTTP/1.1\r\n" in payload.split(b"\r\n", 1)[0] + b"\r\n":
            for line in payload.split(b"\r\n"):
                if line.lower().startswith(b"x-requestshook-request-id:"):
                    first.setdefault(line.split(b":", 1)[1].strip().decode(), index)
    return first


def test_capture_started_anywhere_finds_every_later_call(sniff, tmp_path):
    """Wherever the capture starts (mid-connection, mid-message), parsing resyncs at the next
    message boundary: every call whose request starts after the cut is found, and no other."""
    starts = first_request_packets(SEED)
    assert len(starts) == 4
    for start in range(0, 34):
        found = {c["id"] for c in sniff(mutated(tmp_path, SEED, "--start", str(start))).calls()}
        expected = {cid for cid, index in starts.items() if index >= start}
        assert expected <= found <= set(starts), f"capture starting at packet {start}"


def data_segment_inside(path, start_line: bytes, offset: int) -> int:
    """1-based index, among data segments, of the `offset`-th segment after a message start."""
    packets, _ = mutate.read(str(path))
    data = [p for p in packets if (t := mutate.tcp_of(p)) and len(t[2].data)]
    first = next(
        i for i, p in enumerate(data) if bytes(mutate.tcp_of(p)[2].data).startswith(start_line)
    )
    return first + offset + 1


def test_dropped_segment_marks_only_its_message(sniff, tmp_path):
    # resegment so the 3952-byte token body spans several segments, then lose one inside it
    resegmented = mutated(tmp_path, SEED, "--resegment", "500")
    baseline = {c["id"]: c for c in sniff(resegmented).calls()}
    lost = data_segment_inside(resegmented, b"HTTP/1.1 201 CREATED", 3)
    damaged_run = sniff(mutated(tmp_path, resegmented, "--drop", str(lost)))
    damaged = {c["id"]: c for c in damaged_run.calls()}
    assert "gaps: 1" in damaged_run.stderr
    assert damaged_run.exit_code == 3 and "calls are incomplete" in damaged_run.stderr
    assert set(damaged) == set(baseline)
    incomplete = [cid for cid, c in damaged.items() if c["incomplete"]]
    assert len(incomplete) == 1
    token = damaged[incomplete[0]]
    assert (token["method"], token["path"], token["status"]) == (
        "POST",
        "/identity/v3/auth/tokens",
        201,
    )
    assert token["response"]["body"]["size"] == 3952  # the framing survived the gap
    for cid, call in damaged.items():
        if cid not in incomplete:
            assert call == baseline[cid]


def test_snap_length_is_reported(sniff, tmp_path):
    run = sniff(mutated(tmp_path, SEED, "--snap", "1000"))
    assert run.exit_code == 3  # completed, with warnings
    assert "cut by the snap length" in run.stderr
    calls = {c["method"] + " " + c["path"]: c for c in run.calls()}
    assert len(calls) == 4
    # the token responses (3952-byte bodies) lost their tails; the small messages are whole
    assert calls["POST /identity/v3/auth/tokens"]["incomplete"]
    assert calls["GET /identity/v3/auth/tokens"]["incomplete"]
    assert not calls["GET /identity/"]["incomplete"]


def test_truncated_file_is_processed_up_to_the_cut(sniff, tmp_path):
    run = sniff(mutated(tmp_path, SEED, "--truncate", "30"))
    assert run.exit_code == 3
    assert "cut short mid-record" in run.stderr
    assert len(run.calls()) == 4
