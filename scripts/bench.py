#!/usr/bin/env python3
"""osflow-sniff against tshark on the same captures, side by side (root, tshark installed).

    python3 scripts/bench.py --exchanges 50000 --runs 3          # the medium capture
    python3 scripts/bench.py --large-mib 1024 --runs 3           # the large capture

The medium capture is real loopback traffic: `--clients` processes, each on one keep-alive
connection, send requests with the Requestshook headers to a server on 127.0.0.1:18774 that
answers with JSON bodies from 200 B to 40 KiB (token/catalog-sized; every 7th chunked, every
5th gzip-encoded). The large one is dominated by 1-20 MiB image uploads and downloads. Both are
captured by the labs' loopback capture (which refuses a capture with kernel drops).

Then, alternating, `--runs` times each: `osflow-sniff -q -r F -o DIR` and `tshark -r F -Y http
-T fields -e http.request.method -e http.response.code -d tcp.port==18774,http`. Reported: the
median wall time, exchanges/s, MB/s and peak RSS of each, the ratio, and whether each found every
exchange.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from loopback import capture

PORT = 18774
PACE = 48 << 20  # bytes/s per connection for large messages
PIECE = 1 << 20


def body_for(n: int) -> bytes:
    """A JSON document of 200 B to 40 KiB (token- and catalog-sized), the same for the same n."""
    size = 200 + (n * 7919) % (40 * 1024 - 200)
    items, length = [], 14
    while length < size - 70:
        item = {"id": f"{n:08x}{len(items):024x}", "name": f"item-{len(items)}"}
        items.append(item)
        length += len(json.dumps(item)) + 2
    document = json.dumps({"items": items})
    return (document[:-2] + "]" + " " * max(0, size - len(document)) + "}").encode()


def serve(ready, respond=None) -> None:
    """A loopback HTTP/1.1 server on PORT; `respond(head lines, body)` makes each response."""
    listener = socket.create_server(("127.0.0.1", PORT), reuse_port=True, backlog=64)
    ready.set()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=answer, args=(conn, respond or response), daemon=True).start()


def answer(conn: socket.socket, respond) -> None:
    stream = conn.makefile("rb")
    while True:
        head = []
        while (line := stream.readline()) not in (b"\r\n", b""):
            head.append(line)
        if not head:
            return
        length = next(
            (
                int(line.split(b":")[1])
                for line in head
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        send(conn, respond(head, stream.read(length)))


def send(conn: socket.socket, data: bytes) -> None:
    """sendall, paced to PACE bytes/s per connection for large messages: the capture (a Python
    process writing a pcap) keeps up with four such connections, not with loopback's GB/s."""
    if len(data) <= PIECE:
        conn.sendall(data)
        return
    start = time.monotonic()
    for offset in range(0, len(data), PIECE):
        conn.sendall(data[offset : offset + PIECE])
        ahead = (offset + PIECE) / PACE - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def request_id(head: list[bytes]) -> bytes:
    return next(
        line.split(b":", 1)[1].strip()
        for line in head
        if line.lower().startswith(b"x-requestshook-request-id")
    )


def response(head: list[bytes], upload: bytes) -> bytes:
    """/api/N: JSON of body_for(N); /download/N: N bytes; /upload/N: an empty answer."""
    path = head[0].split()[1].decode()
    n = int(path.rsplit("/", 1)[1])
    if path.startswith("/download/"):
        body, headers = os.urandom(16) * (n // 16), [b"Content-Type: application/octet-stream"]
    elif path.startswith("/upload/"):
        body, headers = b"", []
    else:
        body, headers = body_for(n), [b"Content-Type: application/json"]
        if n % 5 == 0:
            body, headers = gzip.compress(body, 1), [*headers, b"Content-Encoding: gzip"]
    headers.append(b"X-Requestshook-Request-Id: " + request_id(head))
    if n % 7 == 0 and body:
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192])
            for i in range(0, len(body), 8192)
        )
        return (
            b"HTTP/1.1 200 OK\r\n"
            + b"\r\n".join(headers)
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunks
            + b"0\r\n\r\n"
        )
    return (
        b"HTTP/1.1 200 OK\r\n"
        + b"\r\n".join(headers)
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


def read_response(stream) -> None:
    length, chunked = 0, False
    while (line := stream.readline()) != b"\r\n":
        lowered = line.lower()
        if lowered.startswith(b"content-length"):
            length = int(line.split(b":")[1])
        chunked |= lowered.startswith(b"transfer-encoding")
    if not chunked:
        stream.read(length)
        return
    while size := int(stream.readline().strip(), 16):
        stream.read(size + 2)
    stream.readline()


def client(number: int, plan: list[tuple[str, int]]) -> None:
    conn = socket.create_connection(("127.0.0.1", PORT))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = conn.makefile("rb")
    for count, (kind, n) in enumerate(plan):
        request_id = f"{number:04x}{count:028x}"
        body = os.urandom(16) * (n // 16) if kind == "upload" else b""
        method = "PUT" if kind == "upload" else "GET"
        send(
            conn,
            (
                f"{method} /{kind}/{n} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n"
                f"User-Agent: bench\r\nAccept-Encoding: gzip\r\n"
                f"X-Requestshook-Request-Id: {request_id}\r\n"
                f"X-Requestshook-Request-From: bench-{number}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body,
        )
        read_response(stream)
    conn.close()


def make_capture(path: str, plans: list[list[tuple[str, int]]]) -> None:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    server = context.Process(target=serve, args=(ready,), daemon=True)
    server.start()
    ready.wait(10)

    def play() -> None:
        workers = [context.Process(target=client, args=(n, plan)) for n, plan in enumerate(plans)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    try:
        capture([PORT], play, path)
    finally:
        server.terminate()


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (osflow-sniff -j2 is two processes)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            kids = [int(child) for child in children.read().split()]
    except OSError:
        return []  # ended meanwhile
    return [pid, *(each for kid in kids for each in process_tree(kid))]


def _tree_rss(pid: int) -> int:
    """KiB resident in a process and its children."""
    total = 0
    for each in process_tree(pid):
        try:
            with open(f"/proc/{each}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass  # ended between two reads
    return total


def rss_of(command: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in KiB of the command's processes together (sampled every 20 ms,
    and at least the largest single process's peak as the kernel counted it), stdout."""
    with tempfile.TemporaryFile() as listing:
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=listing, stderr=subprocess.DEVNULL)
        peak = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.02)
        wall = time.monotonic() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command)
        peak = max(peak, usage.ru_maxrss)  # KiB: the largest single process, by the kernel
        listing.seek(0)
        return wall, peak, listing.read().decode()


def tshark_command(path: str) -> list[str]:
    return [
        "tshark",
        "-r",
        path,
        "-Y",
        "http",
        "-T",
        "fields",
        "-e",
        "http.request.method",
        "-e",
        "http.response.code",
        "-d",
        f"tcp.port=={PORT},http",
    ]


def sniffer_found(out: str) -> int:
    with open(os.path.join(out, "calls.jsonl")) as lines:
        return sum(1 for line in lines if '"incomplete":false' in line)


def tshark_found(listing: str) -> int:
    lines = listing.splitlines()
    requests = sum(1 for line in lines if line.split("\t")[0])
    responses = sum(1 for line in lines if line.split("\t")[-1])
    return min(requests, responses)


def measure(path: str, exchanges: int, runs: int, jobs: list[int]) -> None:
    size = os.path.getsize(path) / 1e6
    results: dict[str, list[tuple[float, int]]] = {}
    found: dict[str, int] = {}
    for _ in range(runs):  # alternating, so that a slow moment of the machine hits all tools
        for n in jobs:
            tool = f"osflow-sniff -j{n}"
            out = tempfile.mkdtemp(prefix="osflow-bench-")
            try:
                wall, peak, _ = rss_of(["osflow-sniff", "-q", "-r", path, "-o", out, "-j", str(n)])
                results.setdefault(tool, []).append((wall, peak))
                found[tool] = sniffer_found(out)
            finally:
                shutil.rmtree(out)  # gigabytes, failed run or not
        wall, peak, listing = rss_of(tshark_command(path))
        results.setdefault("tshark", []).append((wall, peak))
        found["tshark"] = tshark_found(listing)
    print(
        f"capture: {path}, {size:.0f} MB, {exchanges} exchanges; machine: {os.cpu_count()} "
        f"CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"{'tool':<18}{'median s':>10}{'exch/s':>10}{'MB/s':>8}{'peak RSS MiB':>14}{'found':>9}")
    medians = {}
    for tool, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        peak = max(s[1] for s in samples) / 1024
        medians[tool] = wall
        print(
            f"{tool:<18}{wall:>10.1f}{exchanges / wall:>10.0f}{size / wall:>8.1f}"
            f"{peak:>14.0f}{found[tool]:>9}"
        )
    for tool, wall in medians.items():
        if tool != "tshark":
            print(f"{tool} is {medians['tshark'] / wall:.1f}x tshark's speed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=50000)
    parser.add_argument("--large-mib", type=int, default=0, help="make the large capture instead")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--capture", default="/tmp/osflow-bench.pcap")
    parser.add_argument("--jobs", default="1,2", help="osflow-sniff --jobs values to time")
    parser.add_argument("--reuse", action="store_true", help="time an existing --capture")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (loopback capture)")
    rng = random.Random(7)
    if args.large_mib:
        plan, total = [], 0
        while total < args.large_mib << 20:
            n = rng.randint(1 << 20, 20 << 20)
            plan.append((rng.choice(["upload", "download"]), n))
            total += n
        plans = [plan[i :: args.clients] for i in range(args.clients)]
    else:
        per = args.exchanges // args.clients
        plans = [[("api", c * per + i) for i in range(per)] for c in range(args.clients)]
    exchanges = sum(len(plan) for plan in plans)
    if not (args.reuse and os.path.exists(args.capture)):
        make_capture(args.capture, plans)
    measure(args.capture, exchanges, args.runs, [int(n) for n in args.jobs.split(",")])


if __name__ == "__main__":
    main()
