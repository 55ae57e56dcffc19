"""Live capture on loopback (needs root): the seed lab captured by `osflow-sniff -i lo`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import lab
import pytest
from conftest import OUTPUTS, REPO, Run, command, disagreements

from sniffer.pcapfile import CaptureReader

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")
SEED = REPO / "scripts/scenarios/image-show.json"
FILTER = "port 80 or port 60999"


def start_sniffer(*args: str) -> subprocess.Popen:
    sniffer = subprocess.Popen(
        ["osflow-sniff", "-i", "lo", *args, FILTER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = sniffer.stderr.readline()  # the socket is open and filtered once this is printed
    assert line.startswith("listening on lo"), line
    return sniffer


def stop(sniffer: subprocess.Popen, sig: int = signal.SIGINT) -> tuple[str, str]:
    time.sleep(0.5)  # let the last segments through the kernel buffer
    sniffer.send_signal(sig)
    out, err = sniffer.communicate(timeout=60)
    return out, err


@pytest.mark.parametrize("jobs", ["1", "2"], ids=["j1", "j2"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_live_capture_of_the_seed_lab(tmp_path: Path, sig: int, jobs: str):
    out_dir, saved = tmp_path / "live", tmp_path / "live.pcap"
    sniffer = start_sniffer("-o", str(out_dir), "-w", str(saved), "-j", jobs)
    truth = lab.run(str(SEED), str(tmp_path / "lab.pcap"))
    out, err = stop(sniffer, sig)
    assert sniffer.returncode == 0, err

    # (a) the 4 calls, with their callers, callees, parent and statuses, in order
    live = Run(0, out, err, out_dir)
    assert disagreements(live, truth) == []
    assert len(out.splitlines()) == 8  # the live view: each call as it starts and as it ends
    # the image's response names the line of its request, the fifth
    assert re.search(r"   8 .* openstack ← glance-api +↩ 5 .* 200 OK /v2/images/a42bfade-", out)
    assert "[Show Image]" in out  # the operation, named as soon as the call ends

    # (b) the documents equal those made offline from the packets it saved
    offline = command("-q", "-r", str(saved), "-o", str(tmp_path / "offline"))
    assert offline.returncode == 0
    for name in OUTPUTS:
        assert (out_dir / name).read_text() == (tmp_path / "offline" / name).read_text(), name

    # (c) every packet processed once: as many as saved, none seen twice, no pure ACK
    with saved.open("rb") as stream:
        saved_packets = sum(1 for _ in CaptureReader(str(saved), stream))
    assert f"{saved_packets} packets captured, 0 dropped by the kernel" in err
    assert "duplicate segments" not in err
    assert saved_packets < 34  # the lab's own full capture has 34: the kernel kept pure ACKs out


def test_count_stops_after_n_calls(tmp_path: Path):
    sniffer = start_sniffer("-q", "-c", "2", "-o", str(tmp_path / "flow"))
    lab.run(str(SEED), str(tmp_path / "lab.pcap"))
    out, err = sniffer.communicate(timeout=60)
    assert sniffer.returncode == 0, err
    assert len((tmp_path / "flow" / "calls.jsonl").read_text().splitlines()) >= 2


def test_duration_stops_by_itself(tmp_path: Path):
    started = time.monotonic()
    result = command("-i", "lo", "-q", "--duration", "0.5", "-o", str(tmp_path / "flow"), FILTER)
    assert result.returncode == 0
    assert time.monotonic() - started < 10
    assert (tmp_path / "flow" / "calls.jsonl").read_text() == ""
    assert "note: no packets in the input" in result.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_without_capability_a_one_line_error(tmp_path: Path, jobs: str):
    result = subprocess.run(
        ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw"]
        + ["osflow-sniff", "-i", "lo", "-o", str(tmp_path / "flow"), "-j", jobs],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: live capture needs root or the CAP_NET_RAW capability (try sudo)\n"
    )
    assert list((tmp_path / "flow").iterdir()) == []  # the outputs opened first are gone


def test_bad_interface_and_filter_are_one_line_errors():
    assert command("-i", "nosuch0").stderr == "Error: nosuch0: no such interface\n"
    bad = command("-i", "lo", "port", "nine")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "bad filter" in bad.stderr


def test_names_from_processes_without_the_hook(tmp_path: Path):
    """Each service its own process, no Requestshook header, uninformative User-Agents: live
    capture names callers and callees from the processes that own the sockets."""
    import process_lab

    commands = process_lab.install(str(tmp_path))
    services = process_lab.start_services(commands)
    try:
        sniffer = start_sniffer("-q", "-o", str(tmp_path / "live"), "-w", str(tmp_path / "p.pcap"))
        process_lab.run_client(commands)
        stop(sniffer)
    finally:
        process_lab.stop_services(services)
    expected = [
        "openstack->>keystone: GET /identity/",
        "keystone-->>openstack: 300 Multiple Choices /identity/",
        "openstack->>keystone: POST /identity/v3/auth/tokens",
        "keystone-->>openstack: 201 Created /identity/v3/auth/tokens",
        "openstack->>glance-api: GET /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c",
        "glance-api->>keystone: GET /identity/v3/auth/tokens",
        "keystone-->>glance-api: 200 OK /identity/v3/auth/tokens",
        "glance-api-->>openstack: 200 OK /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c",
        # port 60999 is in no layout: only the process can name glance-api here
        "openstack->>glance-api: GET /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c/members",
        "glance-api-->>openstack: 200 OK /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c/members",
    ]
    assert (tmp_path / "live" / "diagram.md").read_text().splitlines() == expected
    # offline, the same packets give header/User-Agent/layout names: the processes made the names
    # (python-requests names a library, not its user: the client is its address and port)
    offline = command("-q", "-r", str(tmp_path / "p.pcap"), "-o", str(tmp_path / "offline"))
    diagram = (tmp_path / "offline" / "diagram.md").read_text()
    assert offline.returncode == 0
    assert re.search(r"^participant (\w+) as 127\.0\.0\.1:\d+\n\1->>keystone", diagram, re.M)
    assert "python-requests" not in diagram
    assert "127.0.0.1:60999" in diagram


def test_without_the_hook_live_every_call_is_right(tmp_path: Path):
    """The session run by real processes (scripts/session_lab.py: five `openstack` commands,
    keystone, nova-api and placement behind Apache, glance-api, nova-compute in the background;
    no Requestshook header, every User-Agent a library's) captured live: every call's caller,
    callee, status and parent, and every message's place, agree with the truth."""
    sniffer = start_sniffer("-q", "-o", str(tmp_path / "live"), "--split", "none")
    capture = tmp_path / "session.pcap"
    lab_run = subprocess.run(
        ["python3", str(REPO / "scripts/session_lab.py"), "--capture", str(capture)],
        capture_output=True,
        text=True,
    )
    stop(sniffer)
    assert lab_run.returncode == 0, lab_run.stderr
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    assert len(truth["calls"]) == 49
    assert disagreements(Run(0, "", "", tmp_path / "live"), truth) == []


def test_packets_queued_when_stopped_are_read_not_dropped():
    """Ctrl-C with a backlog: what the kernel captured before the stop is still processed."""
    from sniffer.afpacket import LiveCapture

    live = LiveCapture("lo", "tcp and port 18999")
    with socket.create_server(("127.0.0.1", 18999)) as server:
        client = socket.create_connection(("127.0.0.1", 18999))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer, _ = server.accept()
        for n in range(20):
            client.sendall(b"queued %02d" % n)
        time.sleep(0.2)  # all in the capture socket, none read yet
        live.stop(drain=True)
        client.sendall(b"after stop")  # not wanted: it came after the stop
        time.sleep(0.05)
        frames = [frame for frame in live.frames() if frame is not None]
        client.close()
        peer.close()
    captured = b"".join(frame.data for frame in frames)
    assert all(b"queued %02d" % n in captured for n in range(20))
    assert b"after stop" not in captured
    assert live.closed


def test_nothing_from_before_the_filter_is_captured(monkeypatch):
    """A packet socket receives from the moment it exists, before its filter is attached: what
    it queued then (another port's traffic) is discarded, not captured."""
    from sniffer import afpacket

    attach = afpacket.bpf.attach

    def slow_attach(sock, code):  # traffic on another port while the filter is not in place
        with socket.create_server(("127.0.0.1", 18998)) as server:
            client = socket.create_connection(("127.0.0.1", 18998))
            peer, _ = server.accept()
            client.sendall(b"before the filter")
            time.sleep(0.1)
            client.close()
            peer.close()
        attach(sock, code)

    monkeypatch.setattr(afpacket.bpf, "attach", slow_attach)
    live = afpacket.LiveCapture("lo", "tcp and port 18999", poll=0.1)
    frames = []
    for frame in live.frames():  # what is queued, until a poll passes without a packet
        if frame is None:
            break
        frames.append(frame)
    live.stop()
    assert frames == []
