#!/usr/bin/env python3
"""Play HTTP/1.1 edge cases as exact bytes over loopback and capture them (needs root).

    python3 scripts/protocol_lab.py pcaps/protocol.pcap

A neutron-server stand-in on 127.0.0.1:9696 answers scripted bytes: each connection is a list of
steps (bytes the client sends, bytes the server answers); the server reads exactly what the client
sends before answering, so the replay is deterministic. Covered: chunked with trailers, gzip
(with a length and chunked), pipelining, HEAD then GET on keep-alive, 204, 304,
`Expect: 100-continue`, a close-delimited response, a 4-tuple reused after a close, and a
connection that is not HTTP. The expected exchanges are written next to the capture as
`<capture>.truth.json`.
"""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
from pathlib import Path

from loopback import capture

PORT = 9696
CLIENT_PORT = 41000  # fixed source port of the connection that is reused after its close
JSON = b"Content-Type: application/json\r\n"


def request(
    method: str, path: str, *headers: str, body: bytes = b"", length: int | None = None
) -> bytes:
    """A request; `length` declares a body that is sent later (after 100 Continue)."""
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1:9696",
        "User-Agent: python-neutronclient",
        *headers,
    ]
    if body or length is not None:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def response(status: str, *headers: str, body: bytes = b"", length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(data: bytes, size: int, trailers: str = "") -> bytes:
    out = b"".join(
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
        for i in range(0, len(data), size)
    )
    return out + b"0\r\n" + trailers.encode() + b"\r\n"


NETWORKS = json.dumps(
    {"networks": [{"id": f"net-{i}", "name": f"private-{i}", "mtu": 1450} for i in range(40)]}
).encode()
PORTS_BODY = json.dumps({"ports": [{"id": "p1", "status": "ACTIVE"}]}).encode()
SUBNET = json.dumps({"subnet": {"cidr": "10.0.0.0/24", "ip_version": 4}}).encode()


def connections() -> list[dict]:
    """Each connection: steps of (client bytes, server bytes), and the exchanges it carries."""
    gz = gzip.compress(NETWORKS, mtime=0)
    return [
        {
            "name": "chunked-gzip-trailers",
            "steps": [
                (
                    request("GET", "/networking/v2.0/networks", "Accept-Encoding: gzip"),
                    response(
                        "200 OK",
                        "Content-Type: application/json",
                        "Content-Encoding: gzip",
                        "Transfer-Encoding: chunked",
                        "Trailer: X-Checksum",
                        length=False,
                    )
                    + chunked(gz, 100, "X-Checksum: 42\r\n"),
                )
            ],
            "truth": [("GET", "/networking/v2.0/networks", 200, len(gz))],
        },
        {
            "name": "gzip-length",
            "steps": [
                (
                    request("GET", "/networking/v2.0/ports", "Accept-Encoding: gzip"),
                    response(
                        "200 OK",
                        "Content-Type: application/json",
                        "Content-Encoding: gzip",
                        body=gzip.compress(PORTS_BODY, mtime=0),
                    ),
                )
            ],
            "truth": [
                ("GET", "/networking/v2.0/ports", 200, len(gzip.compress(PORTS_BODY, mtime=0)))
            ],
        },
        {
            "name": "pipelined",
            "steps": [
                (
                    request("GET", "/networking/v2.0/subnets/a")
                    + request("GET", "/networking/v2.0/subnets/b")
                    + request("DELETE", "/networking/v2.0/subnets/c"),
                    response("200 OK", "Content-Type: application/json", body=SUBNET)
                    + response("404 Not Found", body=b"")
                    + response("204 No Content", length=False),
                )
            ],
            "truth": [
                ("GET", "/networking/v2.0/subnets/a", 200, len(SUBNET)),
                ("GET", "/networking/v2.0/subnets/b", 404, 0),
                ("DELETE", "/networking/v2.0/subnets/c", 204, 0),
            ],
        },
        {
            "name": "head-keepalive",
            "steps": [
                (
                    request("HEAD", "/networking/v2.0/networks"),
                    response(
                        "200 OK",
                        "Content-Type: application/json",
                        f"Content-Length: {len(NETWORKS)}",
                        length=False,
                    ),
                ),
                (
                    request("GET", "/networking/v2.0/networks", 'If-None-Match: "abc"'),
                    response("304 Not Modified", 'ETag: "abc"', length=False),
                ),
                (
                    request("GET", "/networking/v2.0/ports"),
                    response("200 OK", "Content-Type: application/json", body=PORTS_BODY),
                ),
            ],
            "truth": [
                ("HEAD", "/networking/v2.0/networks", 200, 0),
                ("GET", "/networking/v2.0/networks", 304, 0),
                ("GET", "/networking/v2.0/ports", 200, len(PORTS_BODY)),
            ],
        },
        {
            "name": "expect-100-continue",
            "steps": [
                (
                    request(
                        "PUT",
                        "/networking/v2.0/ports/p1",
                        "Expect: 100-continue",
                        "Content-Type: application/json",
                        length=len(PORTS_BODY),
                    ),
                    b"HTTP/1.1 100 Continue\r\n\r\n",
                ),
                (PORTS_BODY, response("200 OK", "Content-Type: application/json", body=PORTS_BODY)),
            ],
            "truth": [("PUT", "/networking/v2.0/ports/p1", 200, len(PORTS_BODY))],
        },
        {
            "name": "close-delimited",
            "client_port": CLIENT_PORT,
            "steps": [
                (
                    request("GET", "/networking/v2.0/networks/net-1"),
                    response(
                        "200 OK",
                        "Content-Type: application/json",
                        "Connection: close",
                        body=SUBNET,
                        length=False,
                    ),
                )
            ],
            "close": True,
            "truth": [("GET", "/networking/v2.0/networks/net-1", 200, len(SUBNET))],
        },
        {
            "name": "reused-after-close",
            "client_port": CLIENT_PORT,
            "steps": [
                (
                    request("GET", "/networking/v2.0/networks/net-2"),
                    response("200 OK", "Content-Type: application/json", body=SUBNET),
                )
            ],
            "truth": [("GET", "/networking/v2.0/networks/net-2", 200, len(SUBNET))],
        },
        {
            "name": "not-http",
            "steps": [
                (
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 8,
                    b"\x15\x03\x03\x00\x02\x02\x28",
                )
            ],
            "truth": [],
        },
    ]


def serve(listener: socket.socket, plan: list[dict]) -> None:
    for conn in plan:
        sock, _ = listener.accept()
        with sock:
            for sent, answer in conn["steps"]:
                received = b""
                while len(received) < len(sent):
                    received += sock.recv(65536)
                sock.sendall(answer)
            if conn.get("close"):
                sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):  # wait for the client to close
                pass


def play(plan: list[dict]) -> None:
    listener = socket.create_server(("127.0.0.1", PORT), reuse_port=True)
    server = threading.Thread(target=serve, args=(listener, plan))
    server.start()
    for conn in plan:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if conn.get("client_port"):
            sock.bind(("127.0.0.1", conn["client_port"]))
        sock.connect(("127.0.0.1", PORT))
        for sent, answer in conn["steps"]:
            sock.sendall(sent)
            received = b""
            while len(received) < len(answer):
                received += sock.recv(65536)
        if conn.get("close"):
            while sock.recv(65536):  # the server ends the response by closing
                pass
        sock.close()
    server.join()
    listener.close()


def main() -> None:
    pcap = sys.argv[1] if len(sys.argv) > 1 else "pcaps/protocol.pcap"
    plan = connections()
    capture([PORT], lambda: play(plan), pcap)
    truth = [
        {"method": m, "path": p, "status": s, "response_body_size": n}
        for conn in plan
        for m, p, s, n in conn["truth"]
    ]
    Path(pcap).with_suffix(".truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"{pcap}: {len(plan)} connections, {len(truth)} exchanges")


if __name__ == "__main__":
    main()
