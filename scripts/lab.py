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
keystonemiddleware's `X-Subject-Token`, the Requestshook pair); `"token": false` sends no token
(version discovery, a password login), `"token_of": USER` sends that user's token (a service
doing a user's work asynchronously), a response's `"subject_token": true` returns the token
issued or validated in `X-Subject-Token`.

A session (scripts/scenarios/session.json) has a timeline of `commands` instead: each an
`openstack` process with its command line, the title an offline reader should give it, a `gap`
of think time before it, and its calls. Each command has its own connections (closed when it
ends) and its own token; the timelines are played on a clock (`start`, `think`, `step`, and per
call `delay`, `at`, `took`: see `clock`), and the truth adds each call's command (null for the
background) and the commands, their titles checked against MAIN_RULE.

Theory of operation. Every call becomes events, `request` then its children then `response`; the
timelines' events are interleaved by a seeded choice (in a session: merged by their times, and
played at those times), so background calls really overlap the foreground. One thread then
performs the events in that order and owns both ends of every connection: it writes a request on
the caller's socket and reads it on the server's, later writes the response the other way. No
thread races another, so the capture's message order is the scenario's, run after run. Callers
keep one keep-alive connection per destination and open another only when all of theirs are
busy, as python-requests does. The truth (every call with its caller, callee, parent and status,
and the order of all messages) is written to `<capture>.truth.json`.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from loopback import capture

from sniffer.apiref import SERVICE_TYPES, OperationIndex

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
    302: "Found",
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
    command: int | None = None  # the CLI command (1-based) the call belongs to; None: background
    owner: str = ""  # whose connections it takes: a command's process, or the calling service
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

    def __init__(self, seed: int, hook: bool, forwarded: bool = True) -> None:
        self.rng = random.Random(seed)
        self.hook = hook
        self.forwarded = forwarded  # whether the front door adds X-Forwarded-* (Apache does)
        self.tokens: dict[str, str] = {}

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def token(self, who: str) -> str:
        if who not in self.tokens:
            self.tokens[who] = "gAAAAAB" + self.rng.randbytes(90).hex()[:176]
        return self.tokens[who]

    def build(self, spec: dict, parent: Call | None, command: int | None = None) -> Call:
        caller = spec["caller"]
        service, prefix, mode, address = route(spec["path"])
        call = Call(spec, caller, service, prefix, mode, address, parent, command)
        # a command is a process of its own: its own connections (and, below, its own token)
        call.owner = caller if command is None or parent else f"{caller} (command {command})"
        explicit = spec.get("headers")
        call.id = (
            header(explicit, "x-requestshook-request-id") if explicit else None
        ) or self.uuid().hex
        call.local_id = spec.get("request_id") or f"req-{self.uuid()}"
        # a root call may carry the global request id of work that began elsewhere (nova's RPC)
        incoming = header(explicit, "x-openstack-request-id") if explicit else spec.get("global_id")
        if parent is not None and not incoming and not explicit:
            incoming = parent.global_id
        call.global_id = incoming or call.local_id
        user = spec.get("user", "user") + (f" (command {command})" if command else "")
        call.token = (
            self.token(spec["token_of"])  # a user's token, handed on with work (nova's RPC)
            if "token_of" in spec
            else self.token(user)  # each CLI user, and each command, has a token of its own
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
            backend = spec.get("backend_headers") or self.proxy_headers(
                headers, ROUTES[prefix][2], self.forwarded
            )
            call.backend_request = serialize(
                f"{call.method} {call.backend_path} HTTP/1.1", self.strip(backend), wire_body
            )
        call.response = self.response(call, spec.get("response", {}))
        call.children = [self.build(child, call, command) for child in spec.get("calls", [])]
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
        elif call.spec.get("token", True):  # discovery and password logins carry none
            headers.append(["X-Auth-Token", call.token])
        if call.parent is not None or call.spec.get("global_id"):
            headers.append(["X-OpenStack-Request-ID", call.global_id])
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
    def proxy_headers(
        headers: list[list[str]], backend: tuple[str, int], forwarded: bool = True
    ) -> list[list[str]]:
        """What Apache's mod_proxy sends to the backend (a proxy without X-Forwarded-*: the
        same, without them)."""
        kept = [[k, v] for k, v in headers if k.lower() not in ("host", "connection")]
        added = [
            ["X-Forwarded-For", PUBLIC_HOST],
            ["X-Forwarded-Host", PUBLIC_HOST],
            ["X-Forwarded-Server", HOST],
        ]
        return [
            ["Host", f"{backend[0]}:{backend[1]}"],
            *kept,
            *(added if forwarded else []),
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
            if spec.get("subject_token"):  # keystone: the token issued, or the one validated
                headers.append(["X-Subject-Token", call.token])
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

    def exit(self, owner: str) -> None:
        """A process ends: its connections close, the client's side first."""
        for key in [key for key in self.pools if key[0] == owner]:
            for link in self.pools.pop(key):
                link.close()

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


@dataclass
class Command:
    """One `openstack` process of a session: its command line, the title an offline reader should
    give it (see MAIN_RULE), its think time before it starts, and its root calls."""

    index: int
    line: str
    title: str
    gap: float
    roots: list[Call]


MAIN_RULE = (
    "A command's title is the API reference title (sniffer/data/operations.json) of its main "
    "call. The candidates are the calls the client itself made (the command's root calls) less "
    "version discovery (a GET of a service's root, with or without a version: /identity/, /image, "
    "/compute/v2.1/) and the password login (POST /v3/auth/tokens); the main call is the last "
    "candidate that is not a listing (its title does not start with 'List'), or the first "
    "candidate when all are listings. So `image show cirros` is 'Show Image' (the lookup "
    "GET /v2/images/cirros, answered 404 before the search ?name=cirros) and `server list` is "
    "'List Servers Detailed' (before the image and flavor listings it makes to print names)."
)
DISCOVERY = re.compile(r"^/[^/]+/?(v\d+(\.\d+)?/?)?$")


def operation_title(call: Call) -> str | None:
    path = call.path.split("?", 1)[0]
    operation = OperationIndex.default().match(SERVICE_TYPES.get(call.callee), call.method, path)
    return operation.title if operation else None


def main_call(command: Command) -> Call:
    """The command's main call, by MAIN_RULE."""
    candidates = [
        (root, title)
        for root in command.roots
        if not (root.method == "GET" and DISCOVERY.match(root.path.split("?", 1)[0]))
        and not (root.method == "POST" and root.path.endswith("/v3/auth/tokens"))
        and (title := operation_title(root))
    ]
    singles = [root for root, title in candidates if not title.startswith("List")]
    return singles[-1] if singles else candidates[0][0]


def clock(groups: list[tuple[float, list[Call]]], timeline: dict) -> list:
    """Timed events of one timeline: groups of root calls (a command, or the whole background),
    each starting `gap` seconds after the previous one ended; a root call starts `delay` seconds
    (default `think`) after the previous one's response, or `at` seconds from the start if later
    (a periodic task), each event of a call tree comes `step`
    seconds after the one before, and a response `took` seconds more (the callee's work). A
    command ends with its process's exit, which closes its connections."""
    now = timeline.get("start", 0.0)
    think, step = timeline.get("think", 0.01), timeline.get("step", 0.002)
    timed = []
    for gap, roots in groups:
        now += gap
        for number, root in enumerate(roots):
            now += root.spec.get("delay", think) if number else 0.0
            now = max(now, root.spec.get("at", 0.0))
            for kind, call in events(root):
                now += call.spec.get("took", 0.0) if kind == "response" else 0.0
                timed.append((now, kind, call))
                now += step
        if roots and roots[0].command is not None:
            timed.append((now, "exit", roots[-1]))
            now += step
    return timed


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

    def perform(self, events_: list[tuple[str, Call]], times: list[float] | None = None) -> None:
        """Every event in order; with times (seconds from the start), each at its time."""
        started = time.monotonic()
        for number, (kind, call) in enumerate(events_):
            if times is not None:
                time.sleep(max(0.0, started + times[number] - time.monotonic()))
            if kind == "request":
                self._request(call)
            elif kind == "response":
                self._response(call)
            else:
                self.wire.exit(call.owner)

    def _request(self, call: Call) -> None:
        front = self.wire.take(call.owner, call.address)
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


def truth(events_: list[tuple[str, Call]], session: dict | None = None) -> dict:
    """Every call (caller, callee, method, paths, status, parent) and the order of all messages;
    in a session, each call's command (None: background) and the commands."""
    calls, order = [], []
    started = {call.local_id: call.id for kind, call in events_ if kind == "request"}
    for kind, call in events_:
        if kind == "exit":
            continue
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
            if session:
                calls[-1]["command"] = call.command
            if call.parent is None and call.spec.get("global_id"):
                calls[-1]["caused_by"] = started[call.global_id]
    return {**(session or {}), "calls": calls, "messages": order}


def describe(command: Command) -> dict:
    main = main_call(command)
    if operation_title(main) != command.title:
        raise ValueError(f"command {command.index}: {operation_title(main)!r} by the rule")
    return {
        "index": command.index,
        "command_line": command.line,
        "title": command.title,
        "main_call": main.id,
    }


class Lab:
    """A scenario built and scheduled: its timelines either interleaved by a seeded choice, or,
    in a session (a timeline of `commands`), played on a clock: the commands one after the
    other, each a process of its own, and the background timelines at their own pace."""

    def __init__(self, scenario: dict, hook: bool = True, forwarded: bool = True) -> None:
        seed = scenario.get("seed", 0)
        builder = Builder(seed, hook, forwarded)
        specs = scenario.get("timelines") or [{"calls": scenario["calls"]}]
        self.description = scenario.get("description", scenario.get("name", ""))
        self.commands: list[Command] = []
        self.roots = [self._build(builder, timeline) for timeline in specs]
        self.times: list[float] | None = None
        if self.commands:
            self._schedule(specs)
        else:
            timelines = [[e for root in roots for e in events(root)] for roots in self.roots]
            after = [timeline.get("after", 0) for timeline in specs]
            self.events = interleave(timelines, after, random.Random(seed))

    def _build(self, builder: Builder, timeline: dict) -> list[Call]:
        if "commands" not in timeline:
            return [builder.build(spec, None) for spec in timeline["calls"]]
        for spec in timeline["commands"]:
            index = len(self.commands) + 1
            roots = [builder.build(call, None, index) for call in spec["calls"]]
            self.commands.append(
                Command(index, spec["command_line"], spec["title"], spec.get("gap", 0.0), roots)
            )
        return [root for command in self.commands for root in command.roots]

    def _schedule(self, specs: list[dict]) -> None:
        """All timelines' events by time (a timeline's own order kept on a tie)."""
        timed = []
        for number, (timeline, roots) in enumerate(zip(specs, self.roots, strict=True)):
            groups = (
                [(c.gap, c.roots) for c in self.commands]
                if "commands" in timeline
                else [(0.0, roots)]
            )
            timed += [
                (at, number, order, kind, call)
                for order, (at, kind, call) in enumerate(clock(groups, timeline))
            ]
        timed.sort(key=lambda event: event[:3])
        self.events = [(kind, call) for _, _, _, kind, call in timed]
        self.times = [event[0] for event in timed]

    def play(self) -> None:
        player = Player()
        player.listen([event for event in self.events if event[0] != "exit"])
        try:
            player.perform(self.events, self.times)
        finally:
            player.close()

    def truth(self) -> dict:
        if not self.commands:
            return truth(self.events)
        roots = [call for kind, call in self.events if kind == "request" and not call.parent]
        session = {
            "description": f"{self.description}. {MAIN_RULE}",
            "commands": [describe(command) for command in self.commands],
            "background": sorted({root.caller for root in roots if root.command is None}),
        }
        return truth(self.events, session)


def run(scenario_path: str, pcap_path: str, hook: bool = True, forwarded: bool = True) -> dict:
    lab = Lab(json.loads(Path(scenario_path).read_text()), hook, forwarded)
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
    parser.add_argument(
        "--no-forwarded", action="store_true", help="a front door that adds no X-Forwarded-*"
    )
    args = parser.parse_args()
    truth = run(args.scenario, args.pcap, hook=not args.no_hook, forwarded=not args.no_forwarded)
    print(f"{args.pcap}: {len(truth['calls'])} calls, {len(truth['messages'])} messages")


if __name__ == "__main__":
    main()
