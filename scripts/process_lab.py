#!/usr/bin/env python3
"""The seed flow without the hook, each service in its own process with a real-looking command
line, so a live capture can name callers and callees from the processes behind the sockets.

    python3 scripts/process_lab.py          # start the services, run the client, stop

Processes: `apache2 -k start` (front door on 127.0.0.1:80: answers /identity, proxies /image),
`glance-api --config-file ...` (127.0.0.1:60999: validates the token at the front door while it
serves), and `openstack image show ...` (the client). No request carries X-Requestshook-*, and
every User-Agent is python-requests', so only the processes tell who is who. The client also calls
glance-api directly on 60999, a port no layout knows.
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRONT, GLANCE = ("127.0.0.1", 80), ("127.0.0.1", 60999)
IMAGE = "/v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c"
AGENT = "python-requests/2.31.0"
THINK = 0.05  # seconds
COMMANDS = {
    "apache2": ["-k", "start"],
    "glance-api": ["--config-file", "/etc/glance/glance-api.conf"],
    "openstack": ["image", "show", "a42bfade-78ec-4c95-b7b4-272ba265072c"],
}


def message(start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    headers = [*headers, ("Content-Length", str(len(body)))]
    return (start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode() + body


def read(stream) -> tuple[str, dict[str, str], bytes] | None:
    start = stream.readline()
    if not start:
        return None
    headers = {}
    while line := stream.readline().decode().rstrip("\r\n"):
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return (
        start.decode().rstrip("\r\n"),
        headers,
        stream.read(int(headers.get("content-length", 0))),
    )


class Session:
    """One keep-alive connection per destination, as python-requests keeps them."""

    def __init__(self) -> None:
        self.links: dict[tuple[str, int], tuple[socket.socket, object]] = {}

    def call(self, address, method: str, path: str, headers=(), body: bytes = b""):
        if address not in self.links:
            sock = socket.create_connection(address)
            self.links[address] = (sock, sock.makefile("rb"))
        sock, stream = self.links[address]
        sock.sendall(
            message(
                f"{method} {path} HTTP/1.1",
                [("Host", f"{address[0]}:{address[1]}"), ("User-Agent", AGENT), *headers],
                body,
            )
        )
        return read(stream)


def serve(address, answer) -> None:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            session = Session()  # this worker's own connections onwards
            while (request := read(self.rfile)) is not None:
                self.wfile.write(answer(request, session))

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer(address, Handler).serve_forever()


def apache(request, session: Session) -> bytes:
    start, headers, body = request
    method, path, _ = start.split(" ", 2)
    if path.startswith("/image/"):
        status, reply_headers, reply = session.call(
            GLANCE,
            method,
            path[len("/image") :],
            [("X-Forwarded-For", "127.0.0.1"), ("X-Auth-Token", headers.get("x-auth-token", ""))],
        )
        return message(status, [("Content-Type", "application/json")], reply)
    if path == "/identity/":
        return message("HTTP/1.1 300 Multiple Choices", [], b'{"versions": {}}')
    if method == "POST":
        return message("HTTP/1.1 201 Created", [("X-Subject-Token", "tok-user")], b'{"token": {}}')
    return message("HTTP/1.1 200 OK", [("Content-Type", "application/json")], b'{"token": {}}')


def glance(request, session: Session) -> bytes:
    start, headers, _ = request
    if start.split(" ")[1] == IMAGE:  # keystonemiddleware first: the user's token, checked
        session.call(
            FRONT,
            "GET",
            "/identity/v3/auth/tokens",
            [("X-Subject-Token", headers.get("x-auth-token", "")), ("X-Auth-Token", "tok-glance")],
        )
    return message("HTTP/1.1 200 OK", [("Content-Type", "application/json")], b'{"id": "a42b"}')


def client() -> None:
    """The CLI: a few calls with a little work between them, and an exit that takes a moment
    (a real `openstack` needs tens of milliseconds between calls and to shut down)."""
    session = Session()
    for address, method, path, headers, body in (
        (FRONT, "GET", "/identity/", [], b""),
        (FRONT, "POST", "/identity/v3/auth/tokens", [], b'{"auth": {}}'),
        (FRONT, "GET", "/image" + IMAGE, [("X-Auth-Token", "tok-user")], b""),
        (GLANCE, "GET", IMAGE + "/members", [("X-Auth-Token", "tok-user")], b""),
    ):
        session.call(address, method, path, headers, body)
        time.sleep(THINK)
    time.sleep(THINK)


def role(name: str) -> None:
    {
        "apache2": lambda: serve(FRONT, apache),
        "glance-api": lambda: serve(GLANCE, glance),
        "openstack": client,
    }[name]()


def install(directory: str) -> dict[str, list[str]]:
    """Launchers named like the services; returns the command line of each."""
    commands = {}
    for name, arguments in COMMANDS.items():
        launcher = Path(directory) / name
        launcher.write_text(
            f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
            f"import process_lab\nprocess_lab.role({name!r})\n"
        )
        commands[name] = [sys.executable, str(launcher), *arguments]
    return commands


def start_services(commands: dict[str, list[str]]) -> list[subprocess.Popen]:
    services = [subprocess.Popen(commands[name]) for name in ("apache2", "glance-api")]
    for address in (FRONT, GLANCE):
        for _ in range(100):
            try:
                socket.create_connection(address, timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    return services


def run_client(commands: dict[str, list[str]]) -> None:
    subprocess.run(commands["openstack"], check=True, timeout=60)


def stop_services(services: list[subprocess.Popen]) -> None:
    for service in services:
        service.terminate()
        service.wait(timeout=10)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        commands = install(directory)
        services = start_services(commands)
        try:
            run_client(commands)
        finally:
            stop_services(services)
    print("process lab: 5 calls played", file=sys.stderr)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("process_lab: needs root (port 80)")
    main()
