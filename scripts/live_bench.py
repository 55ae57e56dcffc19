#!/usr/bin/env python3
"""Load on loopback while `osflow-sniff -i lo` captures it: what it keeps up with (root).

    python3 scripts/live_bench.py --rates 500 1000 2000 --seconds 10 --clients 4 --jobs 2
    python3 scripts/live_bench.py --rates 2000 4000 --ebpf on off --reconnect 10 [--tls]

For each rate, a server on 127.0.0.1:18774 answers every request with a 4 KiB JSON body, and
`--clients` processes, each on a keep-alive connection (a new one every `--reconnect` requests,
as short-lived CLI processes and connection pools open them), send paced requests carrying the
Requestshook headers, for `--seconds`; with `--tls`, over TLS. osflow-sniff runs with `-o DIR`
(all documents) on the same 2 cores, with its eBPF programs (`--ebpf on`: connection owners,
TLS plaintext) or without (`off`: --no-ebpf), each rate run in each mode. When the load ends it
is given time to drain its backlog, then stopped with SIGINT. Reported: calls sent, calls
captured complete (in calls.jsonl), kernel drops (from the socket's statistics, as osflow-sniff
prints them), how long the drain took, and the CPU seconds osflow-sniff used (its processes).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import bench
import process_lab

PORT = bench.PORT
SERVERS = [
    {"id": f"{i:032x}", "name": f"vm-{i}", "status": "ACTIVE", "flavor": {"id": "2"}}
    for i in range(60)
]
BODY = json.dumps(
    {
        "servers": SERVERS[
            : next(n for n in range(60, 0, -1) if len(json.dumps({"servers": SERVERS[:n]})) <= 4096)
        ]
    }
).encode()  # a JSON document of about 4 KiB
RESPONSE_HEAD = (
    f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n"
).encode()


def respond(head: list[bytes], upload: bytes) -> bytes:
    return (
        RESPONSE_HEAD
        + b"X-Requestshook-Request-Id: "
        + bench.request_id(head)
        + b"\r\nX-Requestshook-Request-From: bench\r\n\r\n"
        + BODY
    )


def connect(certificate: str | None) -> tuple[socket.socket, object]:
    conn = socket.create_connection(("127.0.0.1", PORT))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if certificate is not None:
        conn = process_lab.contexts(certificate)[0].wrap_socket(conn, server_hostname="127.0.0.1")
    return conn, conn.makefile("rb")


def client(
    number: int, rate: float, seconds: float, sent, reconnect: int, certificate: str | None
) -> None:
    conn, stream = connect(certificate)
    start, count = time.monotonic(), 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = count / rate
        if due > elapsed:
            time.sleep(due - elapsed)
        if reconnect and count and count % reconnect == 0:
            conn.close()
            conn, stream = connect(certificate)
        request_id = f"{number:04x}{count:028x}"
        conn.sendall(
            (
                f"GET /compute/v2.1/servers/detail HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n"
                f"User-Agent: bench\r\nX-Requestshook-Request-Id: {request_id}\r\n"
                f"X-Requestshook-Request-From: bench-{number}\r\n\r\n"
            ).encode()
        )
        length = 0
        while (line := stream.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length"):
                length = int(line.split(b":")[1])
        stream.read(length)
        count += 1
    conn.close()
    with sent.get_lock():
        sent.value += count


def run(
    rate: float,
    seconds: float,
    clients: int,
    jobs: int,
    ebpf: bool = True,
    reconnect: int = 0,
    certificate: str | None = None,
) -> dict:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    wrap = None
    if certificate is not None:
        server_side = process_lab.contexts(certificate)[1]

        def wrap(conn: socket.socket) -> ssl.SSLSocket:
            return server_side.wrap_socket(conn, server_side=True)

    server = context.Process(target=bench.serve, args=(ready, respond, wrap), daemon=True)
    server.start()
    ready.wait(10)
    out = tempfile.mkdtemp(prefix="osflow-bench-")
    sniffer = subprocess.Popen(
        ["osflow-sniff", "-i", "lo", "-q", "-o", out, "-j", str(jobs)]
        + ([] if ebpf else ["--no-ebpf"])
        + [f"port {PORT}"],
        stderr=subprocess.PIPE,
        text=True,
    )
    while not sniffer.stderr.readline().startswith("listening on"):  # the filter is in place
        pass
    sent = context.Value("l", 0)
    workers = [
        context.Process(
            target=client, args=(n, rate / clients, seconds, sent, reconnect, certificate)
        )
        for n in range(clients)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    load_end = time.monotonic()
    calls_file = os.path.join(out, "calls.jsonl")
    drain = wait_for_drain(sniffer, load_end)
    cpu = cpu_ticks(sniffer.pid) / os.sysconf("SC_CLK_TCK")
    sniffer.send_signal(signal.SIGINT)
    _, err = sniffer.communicate(timeout=600)
    server.terminate()
    captured = complete = 0
    try:
        with open(calls_file) as lines:
            for line in lines:
                captured += 1
                complete += not json.loads(line)["incomplete"]
    finally:
        shutil.rmtree(out)  # gigabytes of documents, counted: no longer needed
    drops = int(re.search(r"(\d+) dropped by the kernel", err).group(1))
    return {
        "rate": rate,
        "ebpf": "on" if ebpf else "off",
        "cpu_s": round(cpu, 1),
        "sent": sent.value,
        "captured": captured,
        "complete": complete,
        "drops": drops,
        "drain_s": round(drain, 1),
    }


def cpu_ticks(pid: int) -> int:
    """CPU time of a process and its children (with -j 2, the output worker)."""
    total = 0
    for each in bench.process_tree(pid):
        try:
            with open(f"/proc/{each}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended between two reads
        total += int(fields[11]) + int(fields[12])
    return total


def wait_for_drain(sniffer: subprocess.Popen, since: float) -> float:
    """Wait until the sniffer's CPU time stops growing (its backlog is processed)."""
    last, idle = -1, 0
    while idle < 3:
        time.sleep(0.5)
        cpu = cpu_ticks(sniffer.pid)
        idle = idle + 1 if cpu == last else 0
        last = cpu
    return time.monotonic() - since - 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="osflow-sniff -j")
    parser.add_argument("--ebpf", nargs="+", choices=["on", "off"], default=["on"])
    parser.add_argument("--reconnect", type=int, default=0, help="a new connection every N")
    parser.add_argument("--tls", action="store_true", help="the clients speak TLS")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("live_bench: needs root (live capture)")
    print(
        f"{'rate/s':>8} {'eBPF':>5} {'sent':>8} {'captured':>9} {'complete':>9} {'drops':>7} "
        f"{'drain s':>8} {'CPU s':>6}"
    )
    with tempfile.TemporaryDirectory() as directory:
        certificate = process_lab.certify(directory) if args.tls else None
        for rate in args.rates:
            for mode in args.ebpf:
                result = run(
                    rate,
                    args.seconds,
                    args.clients,
                    args.jobs,
                    mode == "on",
                    args.reconnect,
                    certificate,
                )
                print(
                    f"{result['rate']:>8.0f} {result['ebpf']:>5} {result['sent']:>8} "
                    f"{result['captured']:>9} {result['complete']:>9} {result['drops']:>7} "
                    f"{result['drain_s']:>8} {result['cpu_s']:>6}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
