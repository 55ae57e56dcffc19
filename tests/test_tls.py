"""Connections read from inside TLS: plaintext from the TLS library in place of the packets' bytes.

Without eBPF at hand, the seed capture plays both parts: its front-door connections (port 80)
have their payload replaced by random bytes of the same length, as ciphertext would be, and
each payload is handed to the pipeline as the plaintext a TLS library wrote, a moment before its
packet, as `SSL_write` runs before the kernel sends. The flow must come out as in clear, with
the front-door hops marked as read from TLS.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from conftest import PCAPS, Run

from sniffer.decode import decode
from sniffer.ebpf import host, plaintext
from sniffer.ebpf.plaintext import WRITTEN, Stream
from sniffer.flow import Call
from sniffer.outputs import Chosen
from sniffer.pcapfile import Frame
from sniffer.pipeline import Pipeline
from sniffer.render.sink import Sink
from sniffer.run import open_capture
from sniffer.tls import Plaintext

SEED = PCAPS / "image-show.pcap"
READ = 1 - WRITTEN
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
    clear_pipeline = play(open_capture(str(SEED)), [clear])
    pipeline = play(encrypted(SEED, FRONT_DOOR), [inside])
    assert len(clear.calls) == 4 and shape(inside.calls) == shape(clear.calls)
    for call in inside.calls:
        assert [hop.tls for hop in call.hops] == [FRONT_DOOR in hop.server for hop in call.hops]
        assert [hop.request.body for hop in call.hops] == [
            hop.request.body for hop in next(c for c in clear.calls if c.id == call.id).hops
        ]
    assert pipeline.stats.tls_connections == 2  # the client's, and glance-api's validation
    assert pipeline.stats.connections == clear_pipeline.stats.connections  # each counted once


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
    report = (tmp_path / "report.html").read_text()  # the report's details say so too
    assert report.count(' → 127.0.0.1:80"]') == 4
    assert "Read from inside TLS: " in report


def capture_lab(tmp_path, name: str, tls: bool, *options: str, wrapper: tuple = ()) -> Run:
    """scripts/process_lab.py (the seed flow, each service a process; behind a TLS front door
    on 443 with `tls`) captured live by `osflow-sniff -i lo` (run by `wrapper`, if any)."""
    import process_lab

    out = tmp_path / name
    sniffer = subprocess.Popen(
        [*wrapper, "osflow-sniff", "-i", "lo", "-q", "-o", str(out), "--split", "none", *options]
        + ["port 80 or port 443 or port 60999"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        notices = []
        while not (line := sniffer.stderr.readline()).startswith("listening on"):
            assert line, "osflow-sniff ended before it listened"
            notices.append(line)
        (tmp_path / f"{name}-lab").mkdir()
        commands = process_lab.install(str(tmp_path / f"{name}-lab"), tls)
        services = process_lab.start_services(commands, tls)
        try:
            process_lab.run_client(commands)
        finally:
            process_lab.stop_services(services)
        time.sleep(0.5)
        sniffer.send_signal(signal.SIGINT)
        _, err = sniffer.communicate(timeout=60)
    finally:
        if sniffer.poll() is None:
            sniffer.kill()
            sniffer.communicate()
    return Run(sniffer.returncode, "", "".join(notices) + err, out)


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture and eBPF need root")
def test_live_the_tls_front_door_gives_the_flow_in_clear(tmp_path):
    """The seed flow behind a TLS front door (the client on https, glance-api's token check
    over https), captured live with eBPF reading libssl: the same calls, callers, parents and
    diagram as its plain twin, and the documents say which hops were read from TLS."""
    clear = capture_lab(tmp_path, "clear", False)
    inside = capture_lab(tmp_path, "tls", True)
    if "unavailable" in inside.stderr and not os.environ.get("OSFLOW_REQUIRE_EBPF"):
        pytest.skip(inside.stderr.strip().splitlines()[0])
    assert clear.exit_code == inside.exit_code == 0, inside.stderr
    assert "tls connections: 2" in inside.stderr and "encrypted" not in inside.stderr

    def shape(run: Run) -> list[tuple]:
        by_id = {call["id"]: call for call in run.calls()}
        return [
            (c["caller"], c["callee"], c["method"], c["path"], c["status"], len(c["hops"]))
            + ((by_id[c["parent"]]["path"],) if c["parent"] else ())
            for c in sorted(run.calls(), key=lambda call: call["numbers"][0])
        ]

    assert len(clear.calls()) == 5 and shape(inside) == shape(clear)
    assert inside.read("diagram.md") == clear.read("diagram.md")
    hops = [hop for call in inside.calls() for hop in call["hops"]]
    assert [hop["tls"] for hop in hops] == [hop["server"].endswith(":443") for hop in hops]
    assert sum(hop["tls"] for hop in hops) == 4
    body = inside.read("body.md")
    assert body.count('!!! info "TLS"') == 4 and '!!! info "TLS"' not in clear.read("body.md")
    # with the TLS notes and the port aside, the pages are the plain twin's
    unmark = re.compile(r'!!! info "TLS"\n.*\n\n')
    assert unmark.sub("", body).replace(":443", ":80") == clear.read("body.md")


def test_without_ebpf_a_tls_front_door_stays_unread(tmp_path):
    """--no-ebpf: what crossed the TLS front door is not read (and not misread): only the
    calls in clear come out, and the summary counts the encrypted streams left unread."""
    if os.geteuid() != 0:
        pytest.skip("live capture needs root")
    run = capture_lab(tmp_path, "no-ebpf", True, "--no-ebpf")
    assert run.exit_code == 0 and "(encrypted streams: 2)" in run.stderr
    assert all(not hop["tls"] for call in run.calls() for hop in call["hops"])
    assert [c["path"] for c in run.calls()] == [
        "/v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c",
        "/v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c/members",
    ]


def test_a_stream_takes_each_byte_once_from_whichever_report_comes_first():
    """Both ends instrumented: the reader's report may come before the writer's, or after; each
    range of the stream is delivered once, from the first report of it; a call's bytes the
    library's buffer did not let us read are a hole, once."""
    stream = Stream()
    assert stream.take(READ, 0, b"GET / HTTP/1.1\r\n", 16, True) == (0, b"GET / HTTP/1.1\r\n", 0)
    assert stream.take(WRITTEN, 0, b"GET / HTTP/1.1\r\n", 16, True) == (0, b"", 0)
    assert stream.take(WRITTEN, 0, b"Host: x\r\n", 9, True) == (0, b"Host: x\r\n", 0)
    assert stream.take(READ, 0, b"Host", 4, True) == (0, b"", 0)  # read in two parts
    assert stream.take(READ, 0, b": x\r\n", 5, True) == (0, b"", 0)
    assert stream.take(WRITTEN, 0, b"ab", 10, True) == (0, b"ab", 8)  # 8 bytes not readable
    assert stream.take(READ, 0, b"abcdefghij", 10, True) == (0, b"", 0)
    assert stream.take(READ, 0, b"klm", 3, True) == (0, b"klm", 0)
    assert stream.delivered == stream.covered[READ] == 38 and stream.covered[WRITTEN] == 35


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture and eBPF need root")
def test_the_library_to_read_can_be_named(tmp_path):
    """--tls-library names the libssl to read (a container names the host's); one that is no
    libssl gets one notice line, and the capture goes on without TLS."""
    libraries = plaintext.libraries()
    if not libraries:
        pytest.skip("no libssl here")
    named = capture_lab(tmp_path, "named", True, "--tls-library", libraries[0])
    if "unavailable" in named.stderr and not os.environ.get("OSFLOW_REQUIRE_EBPF"):
        pytest.skip(named.stderr.strip().splitlines()[0])
    assert named.exit_code == 0 and "tls connections: 2" in named.stderr
    wrong = tmp_path / "not-a-library"
    wrong.write_text("no ELF here\n")
    unread = capture_lab(tmp_path, "wrong", True, "--tls-library", str(wrong))
    notices = [line for line in unread.stderr.splitlines() if "TLS plaintext unavailable" in line]
    assert unread.exit_code == 0 and len(notices) == 1 and str(wrong) in notices[0]
    assert "tls connections" not in unread.stderr and len(unread.calls()) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture and eBPF need root")
@pytest.mark.skipif(host.kernel() < (6, 16), reason="CAP_PERFMON attaches uprobes before 6.16")
def test_without_cap_sys_admin_tls_is_left_unread_saying_why(tmp_path):
    """Since Linux 6.16 uprobes need CAP_SYS_ADMIN: with CAP_BPF and CAP_PERFMON only, the
    kernel still names the processes, and one line says why TLS is not read."""
    wrapper = ("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-all")
    run = capture_lab(tmp_path, "no-sys-admin", True, wrapper=wrapper)
    if "eBPF unavailable" in run.stderr and not os.environ.get("OSFLOW_REQUIRE_EBPF"):
        pytest.skip(run.stderr.strip().splitlines()[0])
    notices = [line for line in run.stderr.splitlines() if "unavailable" in line]
    assert notices == [
        "osflow-sniff: TLS plaintext unavailable (reading TLS needs CAP_SYS_ADMIN on Linux 6.16 "
        "and later (uprobes)); TLS connections stay unread"
    ]
    assert run.exit_code == 0 and "(encrypted streams: 2)" in run.stderr
    # the kernel names the client of the direct call; the front door's hop is the front door's
    # (a front door names nothing: its address), as without eBPF
    proxied, direct = sorted(run.calls(), key=lambda call: call["numbers"][0])
    assert direct["caller"] == "openstack"
    assert proxied["caller"] == proxied["hops"][0]["client"]
