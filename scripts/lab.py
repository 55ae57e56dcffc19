#!/usr/bin/env python3
"""Replay a scenario as real HTTP/1.1 traffic on loopback, capture it, write its truth (root).

    python3 scripts/lab.py scripts/scenarios/server-create.json pcaps/server-create.pcap
    python3 scripts/lab.py --no-hook SCENARIO PCAP      # the same without X-Requestshook-*

Topology (devstack-like, all on 127.0.0.1): a front door on port 80 routes by path prefix; it
answers `/identity`, `/compute`, `/placement` and `/volume` itself (those services sit behind
uwsgi sockets a capture cannot see) and proxies `/image` to glance-api on port 60999 over a second
connection, adding `X-Forwarded-*` as Apache does. neutron-server listens on 9696, swift on 8080.

A scenario (JSON) has `timelines`: each a list of root calls made by one caller (the client in
the foreground, nova-compute or nova-scheduler in the background) that may join once the first
timeline has played `after` events, or just `calls` for a single timeline. A call names its
caller, method, path, body, response status and body, and the calls its callee makes while
serving it. Headers are written explicitly or generated the way OpenStack
services send them (User-Agent, tokens, `X-OpenStack-Request-ID`, `x-openstack-request-id`,
keystonemiddleware's `X-Subject-Token`, the Requestshook pair).

Theory of operation. Every call becomes events, `request` then its children then `response`; the
timelines' events are interleaved by a seeded choice, so background calls really overlap the
foreground. One thread then performs the events in that order and owns both ends of every
connection: it writes a request on the caller's socket and reads it on the server's, later writes
the response the other way. No thread races another, so the capture's message order is the
scenario's, run after run. Callers keep one keep-alive connection per destination and open another
only when all of theirs are busy, as python-requests does. The truth (every call with its caller,
callee, parent and status, and the order of all messages) is written to `<capture>.truth.json`.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from loopback import capture

HOST = "127.0.0.1"
PUBLIC_HOST = "182.161.114.101"  # what clients put in Host:, as in the seed
FRONT_DOOR = (HOST, 80)
# prefix -> (service, how it is reached, backend address)
ROUTES = {
    "/identity": ("keystone", "front", None),
    "/compute": ("nova-api", "front", None),
    "/placement": ("placement-api", "front", None),
    "/volume": ("cinder-api", "front", None),
    "/image": ("glance-api", "proxy", (HOST, 60999)),
    "/networking": ("neutron-server", "direct", (HOST, 9696)),
    "/v1/AUTH_": ("swift-proxy-server", "direct", (HOST, 8080)),
}
USER_AGENTS = {
    "openstack": "openstacksdk/0.101.0 keystoneauth1/5.0.0 python-requests/2.28.1 CPython/3.8.10",
    "nova-compute": "nova-compute keystoneauth1/5.0.0 python-requests/2.28.1 CPython/3.8.10",
    "nova-scheduler": "nova-scheduler keystoneauth1/5.0.0 python-requests/2.28.1 CPython/3.8.10",
    "nova-api": "nova-api keystoneauth1/5.0.0 python-requests/2.28.1 CPython/3.8.10",
    "neutron-server": "python-novaclient",
}
TOKEN_CHECK = "python-keystoneclient"  # keystonemiddleware's User-Agent
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    300: "Multiple Choices",
    404: "Not Found",
    409: "Conflict",
}
HOOK = ("x-requestshook-request-id", "x-requestshook-request-from")


def route(path: str) -> tuple[str, str, str, tuple[str, int]]:
    """(service, prefix, mode, address the caller connects to) for a path."""
    for prefix, (service, mode, backend) in ROUTES.items():
        if path == prefix or path.startswith(prefix if prefix.endswith("_") else f"{prefix}/"):
            return service, prefix, mode, backend if mode == "direct" else FRONT_DOOR
    raise KeyError(f"no route for {path}")


def header(headers: list[list[str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


# -- bodies and messages -----------------------------------------------------------------------


def encode_body(body, rng: random.Random) -> bytes:
    if body is None:
        return b""
    if isinstance(body, dict) and set(body) == {"$base64"}:  # bytes as they are, UTF-8 or not
        return base64.b64decode(body["$base64"])
    if isinstance(body, dict) and set(body) == {"$bytes"}:
        # an image: opaque bytes, a random block repeated (so the capture compresses in git)
        block = rng.randbytes(4096)
        return (block * (body["$bytes"] // 4096 + 1))[: body["$bytes"]]
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def chunked(data: bytes, size: int) -> bytes:
    pieces = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
        for i in range(0, len(data), size)
    ]
    return b"".join(pieces) + b"0\r\n\r\n"


def serialize(start: str, headers: list[list[str]], body: bytes) -> bytes:
    head = start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


# -- the scenario, completed -------------------------------------------------------------------


@dataclass
class Call:
    """A scenario call with everything needed to put it on the wire."""

    spec: dict
    caller: str
    callee: str
    prefix: str
    mode: str
    address: tuple[str, int]
    parent: Call | None
    id: str = ""
    local_id: str = ""  # x-openstack-request-id of the callee
    global_id: str = ""  # what children send as X-OpenStack-Request-ID
    token: str = ""  # X-Auth-Token the caller sends
    request: bytes = b""
    backend_request: bytes = b""
    response: bytes = b""
    children: list[Call] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.spec["method"]

    @property
    def path(self) -> str:
        return self.spec["path"]

    @property
    def backend_path(self) -> str:
        if self.mode != "proxy":
            return self.path
        return self.path[len(self.prefix) :] or "/"  # a bare prefix is proxied as / (Apache)


class Builder:
    """Turns scenario specs into Calls with their bytes; all randomness comes from one seed."""

    def __init__(self, seed: int, hook: bool) -> None:
        self.rng = random.Random(seed)
        self.hook = hook
        self.tokens: dict[str, str] = {}

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def token(self, who: str) -> str:
        if who not in self.tokens:
            self.tokens[who] = "gAAAAAB" + self.rng.randbytes(90).hex()[:176]
        return self.tokens[who]

    def build(self, spec: dict, parent: Call | None) -> Call:
        caller = spec["caller"]
        service, prefix, mode, address = route(spec["path"])
        call = Call(spec, caller, service, prefix, mode, address, parent)
        explicit = spec.get("headers")
        call.id = (
            header(explicit, "x-requestshook-request-id") if explicit else None
        ) or self.uuid().hex
        call.local_id = f"req-{self.uuid()}"
        incoming = header(explicit, "x-openstack-request-id") if explicit else None
        if parent is not None and not incoming and not explicit:
            incoming = parent.global_id
        call.global_id = incoming or call.local_id
        call.token = (
            self.token(spec.get("user", "user"))  # each CLI user has a token of their own
            if parent is None and caller == "openstack"
            else (parent.token if parent is not None else self.token(caller))
        )
        body = encode_body(spec.get("body"), self.rng)
        chunk = spec.get("chunked")
        wire_body = chunked(body, chunk) if chunk else body
        headers = explicit or self.request_headers(call, body, chunk)
        call.request = serialize(
            f"{call.method} {call.path} HTTP/1.1", self.strip(headers), wire_body
        )
        if mode == "proxy":
            backend = spec.get("backend_headers") or self.proxy_headers(headers, ROUTES[prefix][2])
            call.backend_request = serialize(
                f"{call.method} {call.backend_path} HTTP/1.1", self.strip(backend), wire_body
            )
        call.response = self.response(call, spec.get("response", {}))
        call.children = [self.build(child, call) for child in spec.get("calls", [])]
        return call

    def request_headers(self, call: Call, body: bytes, chunk: int | None) -> list[list[str]]:
        host = PUBLIC_HOST if call.address == FRONT_DOOR else f"{PUBLIC_HOST}:{call.address[1]}"
        validating = call.method == "GET" and call.path.endswith("/v3/auth/tokens") and call.parent
        agent = call.spec.get("user_agent") or (  # the client library's, where the spec says
            TOKEN_CHECK if validating else USER_AGENTS.get(call.caller, "python-requests/2.28.1")
        )
        headers = [
            ["Host", host],
            ["User-Agent", agent],
            ["Accept-Encoding", "gzip, deflate"],
            ["Accept", "application/json"],
            ["Connection", "keep-alive"],
        ]
        if validating:  # keystonemiddleware: the user's token checked with the service's own
            headers += [
                ["X-Subject-Token", call.parent.token],
                ["X-Auth-Token", self.token(call.caller)],
            ]
        else:
            headers.append(["X-Auth-Token", call.token])
        if call.parent is not None:
            headers.append(["X-OpenStack-Request-ID", call.parent.global_id])
        if chunk:
            headers += [
                ["Content-Type", "application/octet-stream"],
                ["Transfer-Encoding", "chunked"],
            ]
        elif body:
            kind = call.spec.get("content_type", "application/json")
            headers += [["Content-Type", kind], ["Content-Length", str(len(body))]]
        headers += call.spec.get("extra_headers", [])
        headers += [
            ["X-Requestshook-Request-Id", call.id],
            ["X-Requestshook-Request-From", call.caller],
        ]
        return headers

    @staticmethod
    def proxy_headers(headers: list[list[str]], backend: tuple[str, int]) -> list[list[str]]:
        """What Apache's mod_proxy sends to the backend."""
        kept = [[k, v] for k, v in headers if k.lower() not in ("host", "connection")]
        return [
            ["Host", f"{backend[0]}:{backend[1]}"],
            *kept,
            ["X-Forwarded-For", PUBLIC_HOST],
            ["X-Forwarded-Host", PUBLIC_HOST],
            ["X-Forwarded-Server", HOST],
            ["Connection", "Keep-Alive"],
        ]

    def response(self, call: Call, spec: dict) -> bytes:
        status = spec.get("status", 200)
        reason = spec.get("reason", REASONS.get(status, "OK"))
        body = encode_body(spec.get("body"), self.rng)
        headers = spec.get("headers")
        if headers is None:
            headers = []
            if body:
                headers += [
                    ["Content-Type", spec.get("content_type", "application/json")],
                    ["Content-Length", str(len(body))],
                ]
            elif status not in (204, 304):
                headers.append(["Content-Length", "0"])
            headers += spec.get("extra_headers", [])
            headers += [
                ["x-openstack-request-id", call.local_id],
                ["X-Requestshook-Request-Id", call.id],
                ["X-Requestshook-Request-From", call.caller],
            ]
        return serialize(f"HTTP/1.1 {status} {reason}", self.strip(headers), body)

    def strip(self, headers: list[list[str]]) -> list[list[str]]:
        return headers if self.hook else [[k, v] for k, v in headers if k.lower() not in HOOK]


# -- the wire: one thread, both ends of every connection ---------------------------------------


class Link:
    """One TCP connection, both of its sockets held by the conductor."""

    def __init__(self, listener: socket.socket, address: tuple[str, int]) -> None:
        self.client = socket.create_connection(address)
        self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server, _ = listener.accept()
        self.server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.busy = False

    @staticmethod
    def _move(src: socket.socket, dst: socket.socket, data: bytes) -> None:
        """Send data on one end and read it all on the other, in pieces (no buffer fills up)."""
        for offset in range(0, len(data), 256 << 10):
            piece = data[offset : offset + (256 << 10)]
            src.sendall(piece)
            got = 0
            while got < len(piece):
                got += len(dst.recv(len(piece) - got))

    def request(self, data: bytes) -> None:
        self._move(self.client, self.server, data)

    def respond(self, data: bytes) -> None:
        self._move(self.server, self.client, data)

    def close(self) -> None:
        self.client.close()  # the client closes first, as python-requests does at exit
        self.server.close()


class Wire:
    def __init__(self) -> None:
        self.listeners: dict[tuple[str, int], socket.socket] = {}
        self.pools: dict[tuple[str, tuple[str, int]], list[Link]] = {}

    def listen(self, address: tuple[str, int]) -> None:
        if address not in self.listeners:
            listener = socket.create_server(address, reuse_port=True, backlog=128)
            self.listeners[address] = listener

    def take(self, owner: str, address: tuple[str, int]) -> Link:
        """An idle keep-alive connection of `owner` to `address`, or a new one."""
        pool = self.pools.setdefault((owner, address), [])
        link = next((link for link in pool if not link.busy), None)
        if link is None:
            link = Link(self.listeners[address], address)
            pool.append(link)
        link.busy = True
        return link

    def close(self) -> None:
        for pool in self.pools.values():
            for link in pool:
                link.close()
        for listener in self.listeners.values():
            listener.close()


# -- the scenario, played ----------------------------------------------------------------------


def events(call: Call) -> list[tuple[str, Call]]:
    out = [("request", call)]
    for child in call.children:
        out += events(child)
    return out + [("response", call)]


def interleave(
    timelines: list[list[tuple[str, Call]]], after: list[int], rng: random.Random
) -> list:
    """Merge the timelines' events, each kept in its order, by a seeded choice; timeline i joins
    once the first timeline has played `after[i]` events."""
    merged, positions = [], [0] * len(timelines)
    while True:
        live = [
            i
            for i, events_ in enumerate(timelines)
            if positions[i] < len(events_)
            and (positions[0] >= after[i] or positions[0] == len(timelines[0]))
        ]
        if not live:
            return merged
        pick = rng.choice(live)
        merged.append(timelines[pick][positions[pick]])
        positions[pick] += 1


class Player:
    """Performs events on one Wire: a request on a connection its caller takes from its pool (and,
    through the front door, on the door's own connection to the backend), the response back on
    the same connections, which then return to their pools."""

    def __init__(self) -> None:
        self.wire = Wire()
        self.links: dict[int, tuple[Link, Link | None]] = {}

    def listen(self, events_: list[tuple[str, Call]]) -> None:
        for _, call in events_:
            self.wire.listen(call.address)
            if call.mode == "proxy":
                self.wire.listen(ROUTES[call.prefix][2])

    def perform(self, events_: list[tuple[str, Call]]) -> None:
        for kind, call in events_:
            if kind == "request":
                self._request(call)
            else:
                self._response(call)

    def _request(self, call: Call) -> None:
        front = self.wire.take(call.caller, call.address)
        front.request(call.request)
        back = None
        if call.mode == "proxy":
            back = self.wire.take("front-door", ROUTES[call.prefix][2])
            back.request(call.backend_request)
        self.links[id(call)] = (front, back)

    def _response(self, call: Call) -> None:
        front, back = self.links.pop(id(call))
        if back is not None:
            back.respond(call.response)
            back.busy = False
        front.respond(call.response)
        front.busy = False

    def close(self) -> None:
        self.wire.close()


def truth(events_: list[tuple[str, Call]]) -> dict:
    """Every call (caller, callee, method, paths, status, parent) and the order of all messages."""
    calls, order = [], []
    for kind, call in events_:
        order.append([kind, call.id])
        if kind == "request":
            calls.append(
                {
                    "id": call.id,
                    "caller": call.caller,
                    "callee": call.callee,
                    "method": call.method,
                    "path": call.backend_path,
                    "front_path": call.path,
                    "status": int(call.response.split(b" ", 2)[1]),
                    "parent": call.parent.id if call.parent else None,
                }
            )
    return {"calls": calls, "messages": order}


class Lab:
    def __init__(self, scenario: dict, hook: bool = True) -> None:
        seed = scenario.get("seed", 0)
        builder = Builder(seed, hook)
        specs = scenario.get("timelines") or [{"calls": scenario["calls"]}]
        self.roots = [
            [builder.build(spec, None) for spec in timeline["calls"]] for timeline in specs
        ]
        timelines = [[event for root in roots for event in events(root)] for roots in self.roots]
        after = [timeline.get("after", 0) for timeline in specs]
        self.events = interleave(timelines, after, random.Random(seed))

    def play(self) -> None:
        player = Player()
        player.listen(self.events)
        try:
            player.perform(self.events)
        finally:
            player.close()

    def truth(self) -> dict:
        return truth(self.events)


def run(scenario_path: str, pcap_path: str, hook: bool = True) -> dict:
    lab = Lab(json.loads(Path(scenario_path).read_text()), hook)
    ports = {address[1] for address in (FRONT_DOOR, *(r[2] for r in ROUTES.values() if r[2]))}
    capture(ports, lab.play, pcap_path)
    result = lab.truth()
    Path(pcap_path).with_suffix(".truth.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario")
    parser.add_argument("pcap")
    parser.add_argument("--no-hook", action="store_true", help="send no X-Requestshook-* header")
    args = parser.parse_args()
    truth = run(args.scenario, args.pcap, hook=not args.no_hook)
    print(f"{args.pcap}: {len(truth['calls'])} calls, {len(truth['messages'])} messages")


if __name__ == "__main__":
    main()
