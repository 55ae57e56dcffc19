#!/usr/bin/env python3
"""The seed flow without the hook, each service in its own process with a real-looking command
line, so a live capture can name callers and callees from the processes behind the sockets.

    python3 scripts/process_lab.py          # start the services, run the client, stop
    python3 scripts/process_lab.py --tls    # the same behind a TLS front door on port 443

Processes: `apache2 -k start` (front door on 127.0.0.1:80: answers /identity, proxies /image),
`glance-api --config-file ...` (127.0.0.1:60999: validates the token at the front door while it
serves), and `openstack image show ...` (the client). No request carries X-Requestshook-*, and
every User-Agent is python-requests', so only the processes tell who is who. The client also calls
glance-api directly on 60999, a port no layout knows.

With --tls (`install(directory, tls=True)`), the front door terminates TLS on 127.0.0.1:443, as
devstack's tls-proxy does: the client reaches keystone and glance over https, glance-api's token
validation goes to https too, and only the front door's hop to glance-api and the client's direct
call stay in clear. The certificate is made for the run (openssl, a throwaway key for 127.0.0.1).
"""

from __future__ import annotations

import os
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRONT, GLANCE = ("127.0.0.1", 80), ("127.0.0.1", 60999)
TLS_FRONT = ("127.0.0.1", 443)
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
    """One keep-alive connection per destination, as python-requests keeps them; over TLS to
    the front door when `tls` holds the lab's certificate."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.links: dict[tuple[str, int], tuple[socket.socket, object]] = {}
        self.tls = tls

    def call(self, address, method: str, path: str, headers=(), body: bytes = b""):
        if address not in self.links:
            sock = socket.create_connection(address)
            if self.tls is not None and address == TLS_FRONT:
                sock = self.tls.wrap_socket(sock, server_hostname=address[0])
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


def serve(address, answer, client_tls=None, server_tls=None) -> None:
    """Answer requests on `address` (over TLS with `server_tls`), each worker calling onwards
    with its own connections (over TLS to the front door with `client_tls`)."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            session = Session(client_tls)
            while (request := read(self.rfile)) is not None:
                self.wfile.write(answer(request, session))

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = daemon_threads = True

        def get_request(self):
            sock, peer = super().get_request()
            if server_tls is not None:
                sock = server_tls.wrap_socket(sock, server_side=True)
            return sock, peer

    Server(address, Handler).serve_forever()


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
            TLS_FRONT if session.tls else FRONT,
            "GET",
            "/identity/v3/auth/tokens",
            [("X-Subject-Token", headers.get("x-auth-token", "")), ("X-Auth-Token", "tok-glance")],
        )
    return message("HTTP/1.1 200 OK", [("Content-Type", "application/json")], b'{"id": "a42b"}')


def client(tls: ssl.SSLContext | None = None) -> None:
    """The CLI: a few calls with a little work between them, and an exit that takes a moment
    (a real `openstack` needs tens of milliseconds between calls and to shut down)."""
    session = Session(tls)
    front = TLS_FRONT if tls else FRONT
    for address, method, path, headers, body in (
        (front, "GET", "/identity/", [], b""),
        (front, "POST", "/identity/v3/auth/tokens", [], b'{"auth": {}}'),
        (front, "GET", "/image" + IMAGE, [("X-Auth-Token", "tok-user")], b""),
        (GLANCE, "GET", IMAGE + "/members", [("X-Auth-Token", "tok-user")], b""),
    ):
        session.call(address, method, path, headers, body)
        time.sleep(THINK)
    time.sleep(THINK)


def contexts(certificate: str | None) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(client, server) TLS contexts for the lab's certificate; none without one."""
    if certificate is None:
        return None, None
    client_side = ssl.create_default_context(cafile=certificate)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(certificate, Path(certificate).with_suffix(".key"))
    return client_side, server_side


def role(name: str, certificate: str | None = None) -> None:
    client_tls, server_tls = contexts(certificate)
    {
        "apache2": lambda: serve(TLS_FRONT if certificate else FRONT, apache, None, server_tls),
        "glance-api": lambda: serve(GLANCE, glance, client_tls),
        "openstack": lambda: client(client_tls),
    }[name]()


def certify(directory: str) -> str:
    """A throwaway self-signed certificate for 127.0.0.1 (and its key beside it)."""
    certificate, key = Path(directory) / "lab.crt", Path(directory) / "lab.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        + ["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext"]
        + ["subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
    )
    return str(certificate)


def install(directory: str, tls: bool = False) -> dict[str, list[str]]:
    """Launchers named like the services; returns the command line of each."""
    certificate = certify(directory) if tls else None
    commands = {}
    for name, arguments in COMMANDS.items():
        launcher = Path(directory) / name
        launcher.write_text(
            f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
            f"import process_lab\nprocess_lab.role({name!r}, {certificate!r})\n"
        )
        commands[name] = [sys.executable, str(launcher), *arguments]
    return commands


def start_services(commands: dict[str, list[str]], tls: bool = False) -> list[subprocess.Popen]:
    services = [subprocess.Popen(commands[name]) for name in ("apache2", "glance-api")]
    for address in (TLS_FRONT if tls else FRONT, GLANCE):
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
        tls = "--tls" in sys.argv[1:]
        commands = install(directory, tls)
        services = start_services(commands, tls)
        try:
            run_client(commands)
        finally:
            stop_services(services)
    print("process lab: 5 calls played", file=sys.stderr)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("process_lab: needs root (port 80)")
    main()
