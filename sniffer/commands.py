"""Which command each call belongs to: a capture of a working session, cut into commands.

A root call and every call made while serving it belong to one command; a client's consecutive
root calls belong to one command while the client's own evidence says they come from one
process (strongest first):

1. the process behind the client's socket (live): one `openstack` process is one command;
2. the connection: every request on one TCP connection comes from one process;
3. the token: a request carrying a token that a command obtained (`POST /v3/auth/tokens`, the
   `X-Subject-Token` of its answer) belongs to that command;
4. a request without a token that is not the start of a login (version discovery, `POST
   /v3/auth/tokens`) joins the client's last command if it came within `GAP` seconds of it.

Anything else starts a command. Root calls that a service makes (nova-compute reporting to
placement every minute, a service fetching its own token) belong to no command: they are that
service's background.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .flow import Call, Command, Endpoint, endpoint_name
from .lineage import obtained_token
from .openstack import services
from .procnet import command_line
from .recent import Recent

GAP = 2.0  # seconds: a client's calls further apart than this, with nothing else joining them
CLIENTS = frozenset({"openstack"})  # the command line's name among the services
SERVICES = frozenset(service.name for service in services()) - CLIENTS
VERSIONS = re.compile(r"(/[a-z][a-z0-9-]*)?(/v\d+(\.\d+)?)?/?")
LOGIN = re.compile(r"(/v3/auth/tokens|/v[23](\.\d+)?/?|/)$")


# live: the process behind a socket's local end, and its command line (see `procnet`)
Processes = Callable[[Endpoint], "tuple[int, list[str]] | None"]


class Grouping:
    """Gives each call its command, at its request (in first-byte order)."""

    def __init__(self, processes: Processes | None = None) -> None:
        self.processes = processes
        self.by_pid: dict[int, Command] = {}
        self.count = 0
        self.by_connection: Recent[tuple, Command] = Recent()
        self.by_token: Recent[str, Command] = Recent()
        self.last: dict[tuple[str, str], tuple[Command, float]] = {}  # client -> command, when
        self.background: dict[str, Command] = {}
        self.roots: dict[str, Command] = {}  # the root calls in progress, by id

    def request(self, call: Call) -> Command:
        """The command of a call whose request is being numbered."""
        command = self.roots.get(call.root_id) if call.parent is not None else None
        if command is None:
            command = self._root(call)
            self.roots[call.id] = command
        return command

    def response(self, call: Call) -> None:
        """A login's answer: its token is its command's."""
        token = obtained_token(call)
        if token and call.command is not None:
            self.by_token.remember(token, call.command)

    def ended(self, call: Call) -> None:
        if call.parent is None:
            self.roots.pop(call.id, None)

    def _root(self, call: Call) -> Command:
        if call.caller in SERVICES:
            return self._background(call.caller)
        request, client = call.hops[0].request, call.hops[0].client
        process = self.processes(client) if self.processes is not None else None
        if process is not None:
            return self._process(call, *process)
        connection = (client, call.hops[0].server)
        token = request.header("x-auth-token")
        # an unnamed caller is its connection's address and port: the host is what stays
        unnamed = call.caller == endpoint_name(client)
        identity = (client[0] if unnamed else call.caller, client[0])
        command = (
            self.by_connection.get(connection)
            or (self.by_token.get(token) if token else None)
            or (self._recent(identity, request.ts) if not token and not _login(call) else None)
            or self._new(call)
        )
        self.by_connection.remember(connection, command)
        if token:
            self.by_token.remember(token, command)
        self.last[identity] = (command, request.ts)
        return command

    def _process(self, call: Call, pid: int, argv: list[str]) -> Command:
        """One process, one command (the strongest evidence there is)."""
        command = self.by_pid.get(pid)
        if command is None:
            self.count += 1
            command = Command(self.count, call.caller, command_line(argv), pid)
            self.by_pid[pid] = command
        return command

    def _recent(self, identity: tuple[str, str], ts: float) -> Command | None:
        last = self.last.get(identity)
        if last is None or ts - last[1] > GAP:
            return None
        return last[0]

    def _new(self, call: Call) -> Command:
        self.count += 1
        return Command(self.count, call.caller)

    def _background(self, service: str) -> Command:
        command = self.background.get(service)
        if command is None:
            command = self.background[service] = Command(0, service)
        return command


def _login(call: Call) -> bool:
    """The start of a client's session: version discovery, or getting a token."""
    return call.request.method in ("GET", "POST") and bool(LOGIN.search(call.request.path))


def _discovery(call: Call) -> bool:
    """A client asking a service which API versions it has (`GET /image`, `GET /compute/v2.1`)."""
    return call.request.method == "GET" and any(
        VERSIONS.fullmatch(hop.request.path) for hop in call.hops
    )


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Summary:
    """A command as its index lists it: when, what, how many calls, how many failed. Its title
    is its command line where the process was seen, else its main operation, version discovery
    and logins aside: the first that changes something (`Create Server`), else the last that is
    not a listing (`Show Flavor Details`, the lookups that list flavors after it aside), else
    the first listing (`List Servers Detailed`, before the images and flavors it names)."""

    command: Command
    calls: int = 0
    errors: int = 0
    start: float | None = None
    end: float | None = None
    first_write: str = ""
    last_read: str = ""
    first_list: str = ""

    def add(self, call: Call) -> None:
        """A call of the command, ended."""
        self.calls += 1
        response = call.response
        if response is None or response.status >= 400 or not call.complete:
            self.errors += 1
        self.start = call.start if self.start is None else min(self.start, call.start)
        if call.end is not None:
            self.end = call.end if self.end is None else max(self.end, call.end)
        if call.parent is not None or _login(call) or _discovery(call):
            return
        operation = call.operation
        name = operation.title if operation else f"{call.request.method} {call.request.path}"
        if call.request.method in WRITES:
            self.first_write = self.first_write or name
        elif name.startswith("List "):
            self.first_list = self.first_list or name
        else:
            self.last_read = name

    @property
    def title(self) -> str:
        command = self.command
        if command.line:
            return command.line
        if command.background:
            return f"{command.client} (background)"
        main = self.first_write or self.last_read or self.first_list
        return main or f"{command.client}, command {command.number}"
