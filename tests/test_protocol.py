"""HTTP/1.1 framing on real loopback traffic: pcaps/protocol.pcap (scripts/protocol_lab.py)."""

from __future__ import annotations

import json

import pytest
from conftest import PCAPS

PROTOCOL = PCAPS / "protocol.pcap"


@pytest.fixture
def run(sniff):
    return sniff(PROTOCOL)


def test_every_exchange_is_found_in_order(run):
    truth = json.loads((PCAPS / "protocol.truth.json").read_text())
    calls = sorted(run.calls(), key=lambda c: c["numbers"][0])
    got = [(c["method"], c["path"], c["status"], c["response"]["body"]["size"]) for c in calls]
    want = [(t["method"], t["path"], t["status"], t["response_body_size"]) for t in truth]
    assert got == want
    assert all(not c["incomplete"] for c in calls)
    # python-neutronclient names a library, not its user: each is known by its address and
    # port (its port update carries no global request id: no service's work, as far as it says)
    assert {(c["callee"], c["parent"]) for c in calls} == {("neutron-server", None)}
    assert all(call["caller"] == call["hops"][0]["client"] for call in calls)


def test_chunked_gzip_body_is_decoded_and_trailers_kept(run):
    call = run.calls()[0]
    assert call["response"]["trailers"] == [["X-Checksum", "42"]]
    assert call["response"]["body"]["encoding"] == "gzip"
    body = run.read("body.md")
    assert '"name": "private-39"' in body  # the last network, after inflating 3 chunks of gzip
    assert "    X-Checksum: 42\n" in body


def test_gzip_with_content_length_is_decoded(run):
    assert '"status": "ACTIVE"' in run.read("body.md")


def test_pipelined_requests_pair_with_their_responses(run):
    calls = {c["path"]: c for c in run.calls() if "/subnets/" in c["path"]}
    assert [calls[p]["status"] for p in sorted(calls)] == [200, 404, 204]
    numbers = [calls[p]["numbers"] for p in sorted(calls)]
    assert numbers == [[5, 8], [6, 9], [7, 10]]  # three requests, then three responses


def test_head_then_more_requests_on_keep_alive(run):
    client = next(c for c in run.calls() if c["method"] == "HEAD")["hops"][0]["client"]
    calls = sorted(
        (c for c in run.calls() if c["hops"][0]["client"] == client), key=lambda c: c["numbers"]
    )
    assert [(c["method"], c["status"]) for c in calls] == [
        ("HEAD", 200),
        ("GET", 304),
        ("GET", 200),
    ]
    head = calls[0]
    assert head["response"]["body"]["size"] == 0  # Content-Length of a HEAD response is not a body
    assert ["Content-Length", "2114"] in head["response"]["headers"]  # len(NETWORKS)


def test_expect_100_continue(run):
    put = next(c for c in run.calls() if c["method"] == "PUT")
    assert put["response"]["informational"] == [100]
    assert put["request"]["body"]["size"] == put["response"]["body"]["size"] == 45
    assert put["status"] == 200


def test_close_delimited_response_and_reused_four_tuple(run):
    calls = {c["path"]: c for c in run.calls()}
    closed = calls["/networking/v2.0/networks/net-1"]
    reused = calls["/networking/v2.0/networks/net-2"]
    assert closed["response"]["body"]["size"] == 52  # ended by the server's FIN
    assert closed["hops"][0]["client"] == reused["hops"][0]["client"] == "127.0.0.1:41000"
    assert not closed["incomplete"] and not reused["incomplete"]


def test_non_http_stream_is_skipped_and_counted(run):
    # (it opens with a TLS handshake record: counted as an encrypted stream, its plaintext unread)
    assert "encrypted streams: 1" in run.stderr and "non http" not in run.stderr
    assert "8 connections" in run.stderr
