#!/usr/bin/env python3
"""The session lab with real processes: the services of a devstack and five `openstack` commands,
each its own process with its own command line, so that a live capture can name callers from the
processes behind the sockets and read each command's argv from /proc/PID/cmdline (root).

    python3 scripts/session_lab.py                     # run the session (about 8 s)
    python3 scripts/session_lab.py --capture X.pcap    # and capture it, with X.truth.json

It plays scripts/scenarios/session.json without the Requestshook headers. Processes, as devstack
runs them (each a Python launcher, so /proc shows `python3 /tmp/.../bin/glance-api ...`):

    apache2 -k start                 127.0.0.1:80: proxies /image to glance-api over TCP (adding
                                     X-Forwarded-*), the rest to uwsgi apps over unix sockets
    uwsgi --procname-prefix keystone|nova-api|placement --ini ...   the apps behind Apache
    glance-api --config-file ...     127.0.0.1:60999
    nova-compute --config-file ...   the background: its login, then its report cycles
    openstack <command line>         one process per command, one after the other

Every process builds the same lab.Lab from the scenario (same seed: same ids, tokens, bytes).
A client sends its calls' requests at the scenario's times; a service takes each request as the
next call made to it with those bytes, makes that call's own calls (keystonemiddleware's token
validations) on its keep-alive connections to port 80, waits the call's `took` and answers. The
commands' lines are printed as they start (`command 1: openstack image list`); the exit code is 0
when every command got the answers it expected.

With --capture, the truth is the scenario's (calls, their commands, the commands' titles) with
the order of the messages read from the packets: a message's place is its first byte's packet,
on the innermost hop (glance-api's side for a call through Apache), as osflow-sniff numbers them.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import shlex
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from io import BufferedIOBase
from pathlib import Path

import dpkt
import lab
from loopback import capture

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "scenarios/session.json"
FRONT, GLANCE = lab.FRONT_DOOR, ("127.0.0.1", 60999)
APPS = {"/identity": "keystone", "/compute": "nova-api", "/placement": "placement-api"}
UWSGI = {"keystone": "keystone", "nova-api": "nova-api", "placement": "placement-api"}
SERVICES = {  # name -> (program, arguments)
    "apache2": ("apache2", ["-k", "start"]),
    "keystone": ("uwsgi", ["--procname-prefix", "keystone", "--ini", "/etc/keystone/uwsgi.ini"]),
    "nova-api": ("uwsgi", ["--procname-prefix", "nova-api", "--ini", "/etc/nova/api-uwsgi.ini"]),
    "placement-api": (
        "uwsgi",
        ["--procname-prefix", "placement", "--ini", "/etc/placement/placement-uwsgi.ini"],
    ),
    "glance-api": ("glance-api", ["--config-file", "/etc/glance/glance-api.conf"]),
}
BACKGROUND = ["nova-compute", "--config-file", "/etc/nova/nova-cpu.conf"]
PROGRAMS = ("apache2", "uwsgi", "glance-api", "nova-compute", "openstack")
LEAD = 0.5  # seconds: a command's process starts this long before its first call is due
LIVE = (
    "Played by scripts/session_lab.py, each program a process: the messages are in the order of "
    "the packets (a message's first byte, on the innermost hop: glance-api's side of a call "
    "through Apache)."
)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.I)


# -- HTTP messages, as bytes -------------------------------------------------------------------


def length(head: bytes) -> int:
    found = CONTENT_LENGTH.search(head)
    return int(found.group(1)) if found else 0


def read_message(stream: BufferedIOBase) -> bytes | None:
    """One whole message (head and Content-Length body) from a stream; None at its end."""
    head = b""
    while (line := stream.readline()) not in (b"\r\n", b""):
        head += line
    if not head:
        return None
    head += b"\r\n"
    return head + stream.read(length(head))


def proxied(request: bytes) -> bytes:
    """What Apache's mod_proxy sends glance-api for a request to /image."""
    head, _, body = request.partition(b"\r\n\r\n")
    start, *lines = head.decode("latin-1").split("\r\n")
    method, path, version = start.split(" ")
    headers = [line.split(": ", 1) for line in lines]
    backend = lab.Builder.proxy_headers(headers, GLANCE)
    return lab.serialize(f"{method} {path[len('/image') :] or '/'} {version}", backend, body)


# -- connections -------------------------------------------------------------------------------


class Pool:
    """Keep-alive connections to one address, one more only when all are busy (python-requests,
    keystonemiddleware and mod_proxy alike)."""

    def __init__(self, address: tuple[str, int] | str) -> None:
        self.address = address
        self.idle: list[tuple[socket.socket, BufferedIOBase]] = []
        self.lock = threading.Lock()

    def _open(self) -> tuple[socket.socket, BufferedIOBase]:
        if isinstance(self.address, str):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(self.address)
        else:
            sock = socket.create_connection(self.address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, sock.makefile("rb")

    def exchange(self, request: bytes) -> bytes:
        with self.lock:
            link = self.idle.pop() if self.idle else None
        sock, stream = link or self._open()
        sock.sendall(request)
        answer = read_message(stream)
        if answer is None:
            raise ConnectionError(f"{self.address}: closed before answering")
        with self.lock:
            self.idle.append((sock, stream))
        return answer


def serve(address: tuple[str, int] | str, answer: Callable[[bytes], bytes]) -> None:
    """Answer every request of every connection, a thread per connection."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            if not isinstance(address, str):
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while (request := read_message(self.rfile)) is not None:
                self.wfile.write(answer(request))

    server: socketserver.BaseServer
    if isinstance(address, str):
        socketserver.ThreadingUnixStreamServer.daemon_threads = True
        server = socketserver.ThreadingUnixStreamServer(address, Handler)
    else:
        socketserver.ThreadingTCPServer.daemon_threads = True
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(address, Handler)
    server.serve_forever()


# -- the roles ---------------------------------------------------------------------------------


def session() -> lab.Lab:
    return lab.Lab(json.loads(SCENARIO.read_text()), hook=False)


def due(built: lab.Lab) -> dict[int, float]:
    """When each event's call is due, by id(call): a request's time (seconds from the start)."""
    assert built.times is not None  # a session is played on a clock
    return {
        id(call): at
        for (kind, call), at in zip(built.events, built.times, strict=True)
        if kind == "request"
    }


def every_call(built: lab.Lab) -> list[lab.Call]:
    """All calls, in the order the scenario makes them."""
    return [call for kind, call in built.events if kind == "request"]


class Callee:
    """A service: each request is the next call made to it with those bytes; it makes that
    call's calls, takes the call's time and answers as the scenario says."""

    def __init__(self, name: str, built: lab.Lab, backend: bool = False) -> None:
        self.name = name
        self.pending: dict[bytes, list[lab.Call]] = {}
        for call in every_call(built):
            if call.callee == name:
                key = call.backend_request if backend else call.request
                self.pending.setdefault(key, []).append(call)
        self.lock = threading.Lock()
        self.onward = Pool(FRONT)

    def answer(self, request: bytes) -> bytes:
        with self.lock:
            queue = self.pending.get(request)
            call = queue.pop(0) if queue else None
        if call is None:
            print(f"{self.name}: unexpected {request[:80]!r}", file=sys.stderr, flush=True)
            return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
        for child in call.children:
            self.onward.exchange(child.request)
        time.sleep(call.spec.get("took", 0.0))
        return call.response


def front_door(directory: Path) -> None:
    glance = Pool(GLANCE)

    def answer(request: bytes) -> bytes:
        path = request.split(b" ", 2)[1].decode("latin-1")
        if path == "/image" or path.startswith("/image/"):
            return glance.exchange(proxied(request))
        app = next(a for p, a in APPS.items() if path == p or path.startswith(p + "/"))
        with socket.socket(socket.AF_UNIX) as sock:  # mod_proxy_uwsgi: a connection a request
            sock.connect(str(directory / f"{app}.sock"))
            sock.sendall(request)
            answer = read_message(sock.makefile("rb"))
        if answer is None:
            raise ConnectionError(f"{app}: closed before answering")
        return answer

    serve(FRONT, answer)


def client(built: lab.Lab, roots: list[lab.Call], start: float) -> None:
    """Make the root calls at their times, on this process's own connections."""
    times = due(built)
    pools: dict[tuple[str, int], Pool] = {}
    for call in roots:
        time.sleep(max(0.0, start + times[id(call)] - time.time()))
        answer = pools.setdefault(call.address, Pool(call.address)).exchange(call.request)
        if answer != call.response:
            sys.exit(f"{call.method} {call.path}: unexpected answer {answer[:80]!r}")


def role(argv: list[str]) -> None:
    """What a launcher runs: the program named by its file, told apart by its arguments."""
    program, directory = Path(argv[0]).name, Path(os.environ["SESSION_DIR"])
    built = session()
    if program == "apache2":
        front_door(directory)
    elif program == "uwsgi":
        name = UWSGI[argv[argv.index("--procname-prefix") + 1]]
        serve(str(directory / f"{name}.sock"), Callee(name, built).answer)
    elif program == "glance-api":
        serve(GLANCE, Callee("glance-api", built, backend=True).answer)
    elif program == "nova-compute":
        client(built, built.roots[1], float(os.environ["SESSION_START"]))
    else:  # openstack: the command whose line this process was started with
        line = shlex.join(["openstack", *argv[1:]])
        (command,) = [command for command in built.commands if command.line == line]
        client(built, command.roots, float(os.environ["SESSION_START"]))


# -- the session -------------------------------------------------------------------------------


def install(directory: Path) -> dict[str, str]:
    """Launchers named like the programs, run through their #! line as installed scripts are;
    returns the environment that finds them first."""
    bin_ = directory / "bin"
    bin_.mkdir()
    for program in PROGRAMS:
        launcher = bin_ / program
        launcher.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(HERE)!r})\n"
            "import session_lab\nsession_lab.role(sys.argv)\n"
        )
        launcher.chmod(0o755)
    path = f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "SESSION_DIR": str(directory)}


def start_services(env: dict[str, str], directory: Path) -> list[subprocess.Popen]:
    if listening(FRONT[1]) or listening(GLANCE[1]):  # another lab's clients would reach ours
        raise RuntimeError("session lab: port 80 or 60999 is taken (another lab running?)")
    services = [subprocess.Popen([program, *args], env=env) for program, args in SERVICES.values()]
    sockets = [str(directory / f"{app}.sock") for app in APPS.values()]
    addresses: list[int | str] = [FRONT[1], GLANCE[1], *sockets]
    deadline = time.monotonic() + 30
    for address in addresses:
        while not (listening(address) if isinstance(address, int) else ready(address)):
            if time.monotonic() > deadline or any(s.poll() is not None for s in services):
                stop_services(services)
                raise RuntimeError(f"session lab: {address} did not come up")
            time.sleep(0.05)
    return services


def listening(port: int) -> bool:
    """Whether a TCP socket listens on the port, read from /proc: a probe would be a connection
    in the capture of a sniffer already running."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def ready(path: str) -> bool:
    """Whether a unix socket accepts connections (nothing a capture sees)."""
    with socket.socket(socket.AF_UNIX) as probe:
        return probe.connect_ex(path) == 0


def stop_services(services: list[subprocess.Popen]) -> None:
    for service in services:
        service.terminate()
    for service in services:
        service.wait(timeout=10)


def play(built: lab.Lab, env: dict[str, str]) -> None:
    """nova-compute in the background; the commands one after the other, each started LEAD
    seconds before its first call is due."""
    start = time.time() + LEAD
    env = {**env, "SESSION_START": repr(start)}
    times = due(built)
    background = subprocess.Popen(BACKGROUND, env=env)
    try:
        for command in built.commands:
            time.sleep(max(0.0, start + times[id(command.roots[0])] - LEAD - time.time()))
            print(f"command {command.index}: {command.line}", flush=True)
            subprocess.run(shlex.split(command.line), env=env, check=True, timeout=60)
        background.wait(timeout=60)
    finally:
        background.kill()
    if background.returncode:
        raise subprocess.CalledProcessError(background.returncode, BACKGROUND)


def run(pcap: str | None = None) -> dict | None:
    """Start the services, play the session (capturing it into `pcap`), stop; the truth."""
    built = session()
    with tempfile.TemporaryDirectory(prefix="session-lab-") as name:
        directory = Path(name)
        env = install(directory)
        services = start_services(env, directory)
        try:
            if pcap is None:
                play(built, env)
            else:
                capture({FRONT[1], GLANCE[1]}, lambda: play(built, env), pcap)
        finally:
            stop_services(services)
    if pcap is None:
        return None
    truth = built.truth()
    truth["description"] += f" {LIVE}"
    truth["messages"] = wire_order(pcap, built)
    Path(pcap).with_suffix(".truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


# -- the truth's order, from the packets -------------------------------------------------------


def streams(pcap: str) -> dict[tuple[int, int], list[tuple[int, bytes]]]:
    """Each direction's messages, (sport, dport) -> [(packet number of its first byte, bytes)]."""
    isn: dict[tuple[int, int], int] = {}
    pieces: dict[tuple[int, int], dict[int, tuple[int, bytes]]] = {}
    with open(pcap, "rb") as stream:
        for number, (_, frame) in enumerate(dpkt.pcap.Reader(stream)):
            tcp = dpkt.ethernet.Ethernet(frame).data.data
            key = (tcp.sport, tcp.dport)
            if tcp.flags & dpkt.tcp.TH_SYN:
                isn[key], pieces[key] = tcp.seq + 1, {}
            elif tcp.data and key in isn:  # the first copy of each piece
                offset = (tcp.seq - isn[key]) % (1 << 32)
                pieces[key].setdefault(offset, (number, bytes(tcp.data)))
    return {key: split(found) for key, found in pieces.items() if found}


def split(pieces: dict[int, tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """A direction's bytes cut into messages, each with the packet of its first byte."""
    offsets = sorted(pieces)
    data = b"".join(pieces[offset][1] for offset in offsets)
    messages, position = [], 0
    while position < len(data):
        end = data.index(b"\r\n\r\n", position) + 4
        size = end - position + length(data[position:end])
        packet = pieces[offsets[bisect.bisect_right(offsets, position) - 1]][0]
        messages.append((packet, data[position : position + size]))
        position += size
    return messages


def wire_order(pcap: str, built: lab.Lab) -> list[list[str]]:
    """The truth's messages in the order the capture shows them: each request (in the order of
    the capture) is the next call made with its bytes on its hop, each response its request's."""
    found = streams(pcap)
    pending: dict[tuple[bool, bytes], list[lab.Call]] = {}
    for call in every_call(built):
        pending.setdefault((False, call.request), []).append(call)
        if call.mode == "proxy":
            pending.setdefault((True, call.backend_request), []).append(call)
    requests = [
        (packet, key, number, message)
        for key, messages in found.items()
        if key[1] in (FRONT[1], GLANCE[1])
        for number, (packet, message) in enumerate(messages)
    ]
    order, strangers = [], set()
    for packet, (sport, dport), number, message in sorted(requests):
        backend = dport == GLANCE[1]
        if not pending.get((backend, message)) or (sport, dport) in strangers:
            strangers.add((sport, dport))  # a connection not of the session (another program's)
            continue
        call = pending[(backend, message)].pop(0)
        answered, response = found[(dport, sport)][number]
        if response != call.response:
            raise ValueError(f"{call.method} {call.path}: a response not the scenario's")
        if backend or call.mode != "proxy":  # the innermost hop
            order += [(packet, "request", call.id), (answered, "response", call.id)]
    if len(order) != 2 * len(every_call(built)):
        raise ValueError(f"{len(order) // 2} calls on the wire, {len(every_call(built))} made")
    return [[kind, call_id] for _, kind, call_id in sorted(order)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", metavar="PCAP", help="also capture it, and write its truth")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("session_lab: needs root (port 80)")
    truth = run(args.capture)
    if truth is not None:
        print(f"{args.capture}: {len(truth['calls'])} calls", file=sys.stderr)


if __name__ == "__main__":
    main()
