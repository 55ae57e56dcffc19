#!/usr/bin/env python3
"""Replay a scenario as real HTTP/1.1 traffic on loopback and capture it (needs root).

    python3 scripts/lab.py scripts/scenarios/image-show.json pcaps/image-show.pcap

Topology, devstack-like, all on 127.0.0.1: a front door on port 80 that answers `/identity` itself
(keystone behind uwsgi is invisible to a capture) and proxies `/image` to a glance-api backend on
port 60999 over a second connection, adding `X-Forwarded-*` as Apache does.

A scenario (JSON) is a list of calls; each has a caller, method, path, headers and body (JSON
value, sent as `json.dumps`), the response (status, reason, headers, body), for proxied calls the
headers of the backend leg, and the calls the callee makes while serving it. Callers keep one
keep-alive connection per destination, as python-requests does. The replay is deterministic: calls
run in the scenario's order. The ground truth (calls, callers, callees, parents, order) is written
next to the capture as `<capture>.truth.json`.
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import threading
from pathlib import Path

from loopback import capture, write_pcap

HOST = "127.0.0.1"
FRONT_DOOR = (HOST, 80)
BACKENDS = {"/image": ("glance-api", (HOST, 60999))}
LOCAL = {"/identity": "keystone"}
ID_HEADER = "x-requestshook-request-id"


def route(path: str) -> tuple[str, str, tuple[str, int] | None]:
    """(service, prefix, backend address or None when the front door answers itself)."""
    for prefix, (service, address) in BACKENDS.items():
        if path.startswith(prefix + "/"):
            return service, prefix, address
    for prefix, service in LOCAL.items():
        if path == prefix or path.startswith(prefix + "/"):
            return service, prefix, None
    raise KeyError(f"no route for {path}")


def encode_body(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def with_length(headers: list[list[str]], body: bytes) -> list[list[str]]:
    names = {name.lower() for name, _ in headers}
    if body and "content-length" not in names and "transfer-encoding" not in names:
        return [*headers, ["Content-Length", str(len(body))]]
    return headers


def serialize(start: str, headers: list[list[str]], body: bytes) -> bytes:
    head = start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


def read_message(stream) -> tuple[str, list[list[str]], bytes] | None:
    """One message with a Content-Length (or no) body; None at end of stream."""
    start = stream.readline()
    if not start:
        return None
    headers = []
    while True:
        line = stream.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        headers.append([name, value.strip()])
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    return start.decode("latin-1").rstrip("\r\n"), headers, stream.read(length)


def header(headers: list[list[str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


class Session:
    """A caller's keep-alive connections, one per destination."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, int], tuple[socket.socket, object]] = {}

    def exchange(self, address: tuple[str, int], request: bytes):
        if address not in self.connections:
            sock = socket.create_connection(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections[address] = (sock, sock.makefile("rb"))
        sock, stream = self.connections[address]
        sock.sendall(request)
        return read_message(stream)

    def close(self) -> None:
        for sock, stream in self.connections.values():
            stream.close()
            sock.close()


class Lab:
    def __init__(self, scenario: dict) -> None:
        self.calls: dict[str, dict] = {}
        self.truth: list[dict] = []
        self.sessions: dict[str, Session] = {}
        self._index(scenario["calls"], parent=None)
        self.servers: list[socketserver.ThreadingTCPServer] = []

    def _index(self, calls: list[dict], parent: str | None) -> None:
        for call in calls:
            call_id = header(call["headers"], ID_HEADER)
            service, _, _ = route(call["path"])
            self.calls[call_id] = call
            self.truth.append(
                {
                    "id": call_id,
                    "caller": call["caller"],
                    "callee": service,
                    "method": call["method"],
                    "path": call["path"],
                    "status": call["response"]["status"],
                    "parent": parent,
                }
            )
            self._index(call.get("calls", []), call_id)

    # -- caller side -----------------------------------------------------------------------

    def perform(self, call: dict) -> None:
        session = self.sessions.setdefault(call["caller"], Session())
        body = encode_body(call["body"])
        request = serialize(
            f"{call['method']} {call['path']} HTTP/1.1", with_length(call["headers"], body), body
        )
        reply = session.exchange(FRONT_DOOR, request)
        if reply is None or not reply[0].startswith(f"HTTP/1.1 {call['response']['status']} "):
            raise RuntimeError(f"unexpected reply to {call['method']} {call['path']}: {reply}")

    # -- callee side -----------------------------------------------------------------------

    def answer(self, call: dict) -> bytes:
        for child in call.get("calls", []):
            self.perform(child)
        response = call["response"]
        body = encode_body(response["body"])
        return serialize(
            f"HTTP/1.1 {response['status']} {response['reason']}",
            with_length(response["headers"], body),
            body,
        )

    def handler(self, front_door: bool):
        lab = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy = Session()
                try:
                    while (message := read_message(self.rfile)) is not None:
                        self.wfile.write(lab.serve(message, front_door, proxy))
                finally:
                    proxy.close()

        return Handler

    def serve(self, message, front_door: bool, proxy: Session) -> bytes:
        start, headers, body = message
        method, path, _ = start.split(" ", 2)
        call = self.calls[header(headers, ID_HEADER)]
        if front_door:
            _, prefix, backend = route(path)
            if backend is not None:  # the proxied leg, with the backend's own request line
                leg = serialize(
                    f"{method} {path[len(prefix) :]} HTTP/1.1",
                    with_length(call["backend_headers"], body),
                    body,
                )
                status, headers, reply = proxy.exchange(backend, leg)
                return serialize(status, headers, reply)
        return self.answer(call)

    # -- topology --------------------------------------------------------------------------

    def start(self) -> None:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        socketserver.ThreadingTCPServer.daemon_threads = True
        listeners = [(FRONT_DOOR, True)] + [(addr, False) for _, addr in BACKENDS.values()]
        for address, front_door in listeners:
            server = socketserver.ThreadingTCPServer(address, self.handler(front_door))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    def stop(self) -> None:
        for session in self.sessions.values():
            session.close()
        for server in self.servers:
            server.shutdown()
            server.server_close()


def capture_ports() -> set[int]:
    return {FRONT_DOOR[1], *(address[1] for _, address in BACKENDS.values())}


def run(scenario_path: str, pcap_path: str) -> list[dict]:
    scenario = json.loads(Path(scenario_path).read_text())
    lab = Lab(scenario)
    lab.start()

    def play() -> None:
        try:
            for call in scenario["calls"]:
                lab.perform(call)
        finally:
            lab.stop()

    write_pcap(pcap_path, capture(capture_ports(), play))
    Path(pcap_path).with_suffix(".truth.json").write_text(json.dumps(lab.truth, indent=2) + "\n")
    return lab.truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario")
    parser.add_argument("pcap")
    args = parser.parse_args()
    truth = run(args.scenario, args.pcap)
    print(f"{args.pcap}: {len(truth)} calls replayed and captured")


if __name__ == "__main__":
    main()
