"""The lab's scenarios: the tool reproduces each truth exactly, with and without the hook."""

from __future__ import annotations

import json

import pytest
from conftest import PCAPS, disagreements

from sniffer import correlate
from sniffer.correlate import proxied
from sniffer.http import RequestHead
from sniffer.services import ServiceMap

SCENARIOS = [
    "image-show",
    "server-create",
    "image-upload",
    "image-discovery",
    "session",
    "server-create-async",
    "server-create-clients",
]


@pytest.mark.parametrize("hook", ["", "-nohook"], ids=["hook", "no-hook"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_call_caller_callee_status_parent_and_order(sniff, name, hook):
    capture = PCAPS / f"{name}{hook}.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    run = sniff(capture)
    assert run.exit_code == 0
    assert disagreements(run, truth) == []
    assert all(not call["incomplete"] for call in run.calls())


@pytest.mark.parametrize("name", ["server-create", "image-discovery"])
def test_a_front_door_without_forwarded_headers(sniff, name):
    """A proxy that adds no X-Forwarded-*, and no hook: the backend leg is known as the front
    request passed on (same method, a path the prefix maps to, the same User-Agent, token,
    body length and request id)."""
    capture = PCAPS / f"{name}-nohook-noforwarded.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    assert disagreements(sniff(capture), truth) == []


def test_a_direct_call_is_not_taken_for_a_proxied_hop():
    """A client's own call to the backend, with its own token, while a front-door call of the
    same path is open, is no hop of it."""

    def head(port: int, path: str, token: str) -> RequestHead:
        headers = (("User-Agent", "osc"), ("X-Auth-Token", token))
        return RequestHead(
            ("127.0.0.1", 40000), ("127.0.0.1", port), "GET", path, "1.1", headers, 1
        )

    front = head(80, "/image/v2/images", "a")
    passed, direct = head(60999, "/v2/images", "a"), head(60999, "/v2/images", "b")
    assert correlate._passed_on(front, passed) and not correlate._passed_on(front, direct)


def test_the_session_run_by_real_processes_read_offline(sniff):
    """scripts/session_lab.py: every command a process of its own, no Requestshook header, every
    User-Agent a library's; the command line's project lookups (python-keystoneclient) are
    named by the token they carry."""
    capture = PCAPS / "session-processes.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    assert disagreements(sniff(capture), truth) == []


@pytest.mark.parametrize("hook", ["", "-nohook"], ids=["hook", "no-hook"])
@pytest.mark.parametrize("name", ["server-create-async", "server-create-clients"])
def test_work_caused_over_rpc_is_linked_not_nested(sniff, name, hook, tmp_path):
    """nova-scheduler's and nova-compute's calls carry the global request id of the POST
    /servers that answered 202 before they began: each is a root call, caused by it (calls.jsonl
    `caused_by`, a note in body.md, a span link in OTLP), not its child."""
    capture = PCAPS / f"{name}{hook}.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    traces = tmp_path / "traces.jsonl"
    run = sniff(capture, options=("--otlp", str(traces)))
    calls = run.calls()
    first = {}
    for number, (kind, truth_id) in enumerate(truth["messages"], 1):
        if kind == "request":
            first.setdefault(truth_id, number)
    ids = {first[t["id"]]: t for t in truth["calls"]}
    tool_id = {
        t["id"]: next(c["id"] for c in calls if c["numbers"][0] == n) for n, t in ids.items()
    }
    caused = [(c["id"], c["caused_by"]) for c in calls if c["caused_by"]]
    expected = [
        (tool_id[t["id"]], tool_id[t["caused_by"]]) for t in truth["calls"] if t.get("caused_by")
    ]
    assert len(expected) == 9 and sorted(caused) == sorted(expected)
    assert all(c["parent"] is None for c in calls if c["caused_by"])
    assert run.read("body.md").count('!!! note "caused by"') == 9
    spans = [
        span
        for line in traces.read_text().splitlines()
        for resource in json.loads(line)["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]
    assert sum(len(span.get("links", ())) for span in spans) == 9


def test_server_create_is_concurrent_and_deep():
    """Guard for the test above: the scenario really interleaves and nests."""
    truth = json.loads((PCAPS / "server-create.truth.json").read_text())
    assert len(truth["calls"]) >= 40
    parents = {t["id"]: t["parent"] for t in truth["calls"]}

    def depth(call_id: str) -> int:
        return 0 if parents[call_id] is None else 1 + depth(parents[call_id])

    assert max(depth(call_id) for call_id in parents) >= 2
    open_roots, overlapped = set(), False
    roots = {t["id"] for t in truth["calls"] if t["parent"] is None}
    for kind, cid in truth["messages"]:
        if cid in roots:
            if kind == "request":
                overlapped |= bool(open_roots)
                open_roots.add(cid)
            else:
                open_roots.discard(cid)
    assert overlapped  # some root call started while another was in progress


def test_hookless_captures_carry_no_hook_header():
    for name in SCENARIOS:
        assert b"X-Requestshook" not in (PCAPS / f"{name}-nohook.pcap").read_bytes()
        assert b"X-Requestshook" in (PCAPS / f"{name}.pcap").read_bytes()


def test_upload_body_is_streamed_not_kept(sniff):
    run = sniff(PCAPS / "image-upload.pcap")
    upload = next(c for c in run.calls() if c["method"] == "PUT")
    assert upload["request"]["body"] == {"size": 20 << 20, "kept": 1 << 20, "encoding": None}
    assert [hop["server"] for hop in upload["hops"]] == ["127.0.0.1:80", "127.0.0.1:60999"]


@pytest.mark.parametrize(
    ("front", "backend", "joined"),
    [
        ("/image/v2/images/x", "/v2/images/x", True),
        ("/image/", "/", True),
        ("/image", "/", True),  # a bare prefix is proxied as /
        ("/identity", "/", True),
        ("/image/v2/images/x", "/v2/images/y", False),
        ("/image/v2", "/v2/images", False),
    ],
)
def test_a_backend_path_is_its_front_path_less_a_prefix(front, backend, joined):
    assert proxied(front, backend) is joined


def test_no_user_agent_names_a_service_after_the_202():
    """Guard for server-create-clients: its background calls name no service by User-Agent,
    and nova-compute's glance and neutron calls carry the token the command line obtained."""
    truth = json.loads((PCAPS / "server-create-clients-nohook.truth.json").read_text())
    scenario = json.loads(
        (PCAPS.parent / "scripts/scenarios/server-create-clients.json").read_text()
    )
    roots = [root for timeline in scenario["timelines"][1:] for root in timeline["calls"]]
    assert len(roots) == 9
    services = ServiceMap()
    assert all(services.agent(root["user_agent"]) is None for root in roots)
    assert all(services.own_product(root["user_agent"]) is None for root in roots)
    assert sum(root.get("token_of") == "user" for root in roots) == 5
    assert sum(t.get("caused_by") is not None for t in truth["calls"]) == 9
