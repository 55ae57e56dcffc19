#!/usr/bin/env python3
"""osflow-sniff against tshark on the same captures, side by side (root, tshark installed).

    python3 scripts/bench.py --exchanges 50000 --runs 3          # the medium capture
    python3 scripts/bench.py --large-mib 1024 --runs 3           # the large capture
    python3 scripts/bench.py --profile control-plane --calls 20000 --runs 3

The medium capture is real loopback traffic: `--clients` processes, each on one keep-alive
connection, send requests with the Requestshook headers to a server on 127.0.0.1:18774 that
answers with JSON bodies from 200 B to 40 KiB (token/catalog-sized; every 7th chunked, every
5th gzip-encoded). The large one is dominated by 1-20 MiB image uploads and downloads. Both are
captured by the labs' loopback capture (which refuses a capture with kernel drops).

Then, alternating, `--runs` times each: `osflow-sniff -q -r F -o DIR` and `tshark -r F -Y http
-T fields -e http.request.method -e http.response.code -d tcp.port==18774,http`. Reported: the
median wall time, exchanges/s, MB/s and peak RSS of each, the ratio, and whether each found every
exchange.

The control-plane profile (`scripts/controlplane.py`, in `--dir`) is nested calls between
services that also serve, in bursts of over 5,000 calls/s: a clean capture, the same compressed
into a tenth of its time, and one with a request never answered and a response lost. On each,
alternating: `osflow-sniff -q -r F` (no outputs), with `-o DIR` per `--jobs`, and tshark (HTTP on
60999 and 9696 too). Reported per capture: median wall, calls/s, peak RSS, the calls found
complete and those with the right parent (against the truth; tshark: exchanges), the ratio to
tshark; then the correlator's two promises: clean and compressed at the same calls/s (within
20 %), the stuck capture in the clean one's time and memory (within 1.2x). A run past
`--timeout` is killed and reported as such, and not run again.
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
from collections.abc import Sequence

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


def serve(ready, respond=None, wrap=None) -> None:
    """A loopback HTTP/1.1 server on PORT; `respond(head lines, body)` makes each response;
    `wrap(socket)` (TLS, say) takes each connection first."""
    listener = socket.create_server(("127.0.0.1", PORT), reuse_port=True, backlog=64)
    ready.set()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=answer, args=(conn, respond or response, wrap), daemon=True).start()


def answer(conn: socket.socket, respond, wrap=None) -> None:
    if wrap is not None:
        try:
            conn = wrap(conn)
        except OSError:
            return
    serve_connection(conn, respond)


def serve_connection(conn: socket.socket, respond) -> None:
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


def rss_of(
    command: list[str], timeout: float | None = None, ok: Sequence[int] = (0,)
) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in KiB of the command's processes together (sampled every 20 ms,
    and at least the largest single process's peak as the kernel counted it), stdout. Past
    `timeout` seconds the processes are killed and TimeoutError raised; an exit code not in `ok`
    raises CalledProcessError."""
    with tempfile.TemporaryFile() as listing:
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=listing, stderr=subprocess.DEVNULL)
        peak = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss(process.pid))
            if timeout and time.monotonic() - start > timeout:
                for each in reversed(process_tree(process.pid)):
                    os.kill(each, 9)
                process.wait()
                raise TimeoutError(f"{command[0]} ran past {timeout:.0f} s")
            time.sleep(0.02)
        wall = time.monotonic() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in ok:
            raise subprocess.CalledProcessError(process.returncode, command)
        peak = max(peak, usage.ru_maxrss)  # KiB: the largest single process, by the kernel
        listing.seek(0)
        return wall, peak, listing.read().decode()


def tshark_command(path: str, ports: Sequence[int] = (PORT,)) -> list[str]:
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
        *(arg for port in ports for arg in ("-d", f"tcp.port=={port},http")),
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


# -- the control-plane profile -----------------------------------------------------------------

CAPTURES = ("clean", "compressed", "stuck")
CP_PORTS = (60999, 9696)  # tshark knows port 80 as HTTP, not these
Sample = tuple[float, int] | None  # wall s and peak KiB, or None: timed out


def apart(function, *args):
    """function(*args) in a forked process. The kernel starts a child's peak RSS from its
    parent's, so this process must stay small: the truths and their checks live elsewhere."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(function, args)


def load(path: str) -> list[dict]:
    with open(path) as truth:
        return json.load(truth)["calls"]


def checked(out: str, truth_path: str) -> tuple[int, int]:
    """(calls of the truth found complete in calls.jsonl, those of them with the right parent)."""
    with open(os.path.join(out, "calls.jsonl")) as lines:
        got = {row["id"]: row for row in map(json.loads, lines)}
    found = [
        call
        for call in load(truth_path)
        if call["complete"] and call["id"] in got and not got[call["id"]].get("incomplete")
    ]
    return len(found), sum(got[call["id"]].get("parent") == call["parent"] for call in found)


def counted(truth_path: str) -> tuple[int, int]:
    """(calls, complete calls) of a truth."""
    calls = load(truth_path)
    return len(calls), sum(call["complete"] for call in calls)


def cp_tools(path: str, jobs: list[int]) -> dict[str, list[str]]:
    tools = {"osflow-sniff -q": ["osflow-sniff", "-q", "-r", path]}
    for n in jobs:
        tools[f"osflow-sniff -o -j{n}"] = ["osflow-sniff", "-q", "-r", path, "-j", str(n)]
    tools["tshark"] = tshark_command(path, CP_PORTS)
    return tools


def cp_run(command: list[str], truth: str, timeout: float) -> tuple[Sample, str, str]:
    """One timed run: its sample, the calls found and those with the right parent (tshark:
    the exchanges it found, calls unknown to it)."""
    outputs = "-j" in command  # the runs with outputs are those given -j
    out = tempfile.mkdtemp(prefix="osflow-bench-") if outputs else None
    try:
        full = [*command, "-o", out] if out else command
        wall, peak, listing = rss_of(full, timeout or None, ok=(0, 3))  # 3: a damaged capture
        if command[0] == "tshark":
            return (wall, peak), f"{tshark_found(listing)} exch", "-"
        if out is None:
            return (wall, peak), "-", "-"
        found, right = apart(checked, out, truth)
        return (wall, peak), str(found), str(right)
    except TimeoutError:
        return None, "timeout", "-"
    finally:
        if out:
            shutil.rmtree(out, ignore_errors=True)


def measure_control_plane(directory: str, runs: int, jobs: list[int], timeout: float) -> None:
    truths = {name: os.path.join(directory, f"{name}.truth.json") for name in CAPTURES}
    samples: dict[tuple[str, str], list[Sample]] = {}
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for _ in range(runs):  # alternating, so that a slow moment of the machine hits all tools
        for name in CAPTURES:
            path = os.path.join(directory, f"{name}.pcap")
            for tool, command in cp_tools(path, jobs).items():
                key = (name, tool)
                if None in samples.get(key, []):
                    continue  # timed out once: would again
                sample, *result = cp_run(command, truths[name], timeout)
                samples.setdefault(key, []).append(sample)
                found[key] = tuple(result)
    counts = {name: apart(counted, path) for name, path in truths.items()}
    cp_table(directory, counts, samples, found)


def median(samples: list[Sample]) -> tuple[float, float] | None:
    """Median wall s and largest peak MiB, or None if a run timed out."""
    if None in samples:
        return None
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples) / 1024


def cp_table(directory: str, counts: dict, samples: dict, found: dict) -> None:
    print(
        f"control-plane captures in {directory}; machine: {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(
        f"{'capture':<18}{'tool':<20}{'median s':>10}{'calls/s':>9}{'peak MiB':>10}"
        f"{'found':>12}{'parents ok':>11}{'vs tshark':>10}"
    )
    stats = {key: median(value) for key, value in samples.items()}
    for (name, tool), stat in stats.items():
        calls = counts[name][0]
        size = os.path.getsize(os.path.join(directory, f"{name}.pcap")) / 1e6
        label = f"{name} {size:.0f} MB" if tool.endswith("-q") else ""
        tshark = stats.get((name, "tshark"))
        if stat is None:
            print(f"{label:<18}{tool:<20}{'timeout':>10}")
            continue
        ratio = f"{tshark[0] / stat[0]:.1f}x" if tshark and tool != "tshark" else ""
        print(
            f"{label:<18}{tool:<20}{stat[0]:>10.1f}{calls / stat[0]:>9.0f}{stat[1]:>10.0f}"
            f"{found[name, tool][0]:>12}{found[name, tool][1]:>11}{ratio:>10}"
        )
    complete = ", ".join(f"{name} {count[1]} of {count[0]}" for name, count in counts.items())
    print(f"complete calls in the truths: {complete}")
    for tool in sorted({tool for _, tool in stats if tool != "tshark"}):
        clean, compressed, stuck = (stats.get((name, tool)) for name in CAPTURES)
        print(f"{tool}: {promises(clean, compressed, stuck)}")


def promises(clean, compressed, stuck) -> str:
    """The correlator's promises: compressing time changes no calls/s by over 20 %, a stuck call
    and a lost response cost at most 1.2x the clean capture's time and memory."""
    if clean is None:
        return "clean timed out"
    parts = []
    if compressed is None:
        parts.append("compressed timed out")
    else:
        speed = clean[0] / compressed[0]  # compressed calls/s over clean calls/s
        ok = min(speed, 1 / speed) >= 0.8
        parts.append(f"compressed/clean calls/s {speed:.2f} ({'ok' if ok else 'NOT within 20 %'})")
    if stuck is None:
        parts.append("stuck timed out")
    else:
        time_, memory = stuck[0] / clean[0], stuck[1] / clean[1]
        ok = max(time_, memory) <= 1.2
        parts.append(
            f"stuck/clean time {time_:.2f}x, peak {memory:.2f}x ({'ok' if ok else 'NOT <= 1.2x'})"
        )
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=50000)
    parser.add_argument("--large-mib", type=int, default=0, help="make the large capture instead")
    parser.add_argument("--clients", type=int, help="4; control-plane: 8")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--capture", default="/tmp/osflow-bench.pcap")
    parser.add_argument("--jobs", default="1,2", help="osflow-sniff --jobs values to time")
    parser.add_argument("--reuse", action="store_true", help="time existing captures")
    parser.add_argument("--profile", choices=["medium", "control-plane"], default="medium")
    parser.add_argument("--calls", type=int, default=20000, help="control-plane: calls made")
    parser.add_argument("--dir", default="/tmp/cp", help="control-plane: where the captures go")
    parser.add_argument("--timeout", type=float, default=300, help="control-plane: s per run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (loopback capture)")
    jobs = [int(n) for n in args.jobs.split(",")]
    if args.profile == "control-plane":
        control_plane(args, jobs)
        return
    args.clients = args.clients or 4
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
    measure(args.capture, exchanges, args.runs, jobs)


def control_plane(args: argparse.Namespace, jobs: list[int]) -> None:
    made = [os.path.join(args.dir, f"{name}.truth.json") for name in CAPTURES]
    if not (args.reuse and all(map(os.path.exists, made))):
        maker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "controlplane.py")
        command = [sys.executable, maker, args.dir, "--calls", str(args.calls)]
        subprocess.run([*command, "--clients", str(args.clients or 8)], check=True)
    measure_control_plane(args.dir, args.runs, jobs, args.timeout)


if __name__ == "__main__":
    main()
