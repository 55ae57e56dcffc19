"""Which process owns a TCP socket on this host, named as the OpenStack service it runs.

/proc/net/tcp and tcp6 map a socket's addresses to an inode; /proc/PID/fd links map inodes to
processes; the command line names the service (`/usr/bin/python3 /usr/local/bin/glance-api
--config-file ...` is glance-api). Front doors (Apache, nginx, HAProxy) name nothing: the layout
behind them does. Lookups happen when a connection opens, before a short-lived socket is gone.
Live with eBPF, the kernel reports each connection's owner as it opens (`tell`, see
`sniffer.ebpf.owners`); /proc answers for the rest.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import struct
import threading
from collections.abc import Callable

from .flow import Endpoint, address
from .openstack import services
from .recent import Recent

# command-line word -> service (first match wins: the table lists more specific names first)
COMMANDS = tuple(
    (re.compile(pattern), service.name) for service in services() for pattern in service.processes
)
OWNERS = 65536  # sockets whose process is remembered, the most recent
LISTEN = "0A"  # a listening socket's state in /proc/net/tcp*
FRONT_DOORS = frozenset({"apache2", "httpd", "nginx", "haproxy"})
INTERPRETERS = re.compile(r"^(python[0-9.]*|uwsgi|gunicorn|sudo|env)$")


def service_of(argv: list[str]) -> str | None:
    """The service a command line runs; its program name otherwise; None for a front door."""
    if "-c" in argv:  # inline code says nothing about the service
        argv = argv[: argv.index("-c")]
    words = [os.path.basename(word) for word in argv[:4] if word]
    if not words:
        return None
    program = words[0]
    if INTERPRETERS.match(program):  # `python3 /usr/local/bin/glance-api ...` runs glance-api
        program = next((word for word in words[1:] if not word.startswith("-")), program)
    if program in FRONT_DOORS:
        return None
    for pattern, name in COMMANDS:
        if any(pattern.search(word) for word in words):
            return name
    return program


def _hex(endpoint: Endpoint, family: int) -> str:
    """An address as /proc/net/tcp* writes it: the raw bytes in host-order 32-bit words."""
    host, port = endpoint
    if family == socket.AF_INET6 and ":" not in host:
        host = "::ffff:" + host  # an IPv4 peer of an IPv6 socket
    raw = socket.inet_pton(family, host)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def _forms(local: Endpoint, remote: Endpoint) -> list[tuple[str, str, str]]:
    """(table, local, remote) to look for: IPv4 in tcp and, mapped, in tcp6; IPv6 in tcp6."""
    if ":" in local[0]:
        return [("tcp6", _hex(local, socket.AF_INET6), _hex(remote, socket.AF_INET6))]
    return [
        ("tcp", _hex(local, socket.AF_INET), _hex(remote, socket.AF_INET)),
        ("tcp6", _hex(local, socket.AF_INET6), _hex(remote, socket.AF_INET6)),
    ]


def _endpoint(text: str) -> Endpoint:
    """An address of /proc/net/tcp* (`0100007F:0050`), an IPv4-mapped one as IPv4."""
    hexes, port = text.split(":")
    words = range(0, len(hexes), 8)  # host-order 32-bit words, as `_hex` writes them
    raw = b"".join(bytes.fromhex(hexes[i : i + 8])[::-1] for i in words)
    return address(raw), int(port, 16)


def open_sockets(proc: str = "/proc") -> dict[tuple[Endpoint, Endpoint], int]:
    """The inode of every connected TCP socket with a process (not listening, not TIME_WAIT),
    by its (local, remote) ends."""
    found = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"{proc}/net/{table}") as lines:
                next(lines, None)  # the header
                for line in lines:
                    fields = line.split(None, 10)
                    if len(fields) > 9 and fields[3] != LISTEN and fields[9] != "0":
                        found[_endpoint(fields[1]), _endpoint(fields[2])] = int(fields[9])
        except (OSError, ValueError):
            continue
    return found


def command_line(argv: list[str]) -> str:
    """A command line as its user typed it: `openstack image show cirros`, not the interpreter
    and the script's path that /proc shows."""
    words = list(argv)
    while len(words) > 1 and INTERPRETERS.match(os.path.basename(words[0])):
        words = words[1:]
    if not words:
        return ""
    return " ".join([os.path.basename(words[0]), *words[1:]])


class SocketOwners:
    """Name the process behind each end of a TCP connection seen on this host.

    `prefetch` is called by the capture loop the moment a SYN is read, and looks the sockets up
    in a worker thread, before a short-lived client can exit; `lookup` then finds the answer.
    What the kernel told (`tell`) comes first: /proc is read only for what it did not.
    """

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.found: dict[tuple[Endpoint, Endpoint], str | None] = {}
        self.asked: dict[tuple[Endpoint, Endpoint], threading.Event] = {}
        self.queue: queue.SimpleQueue[tuple[Endpoint, Endpoint]] = queue.SimpleQueue()
        self.worker: threading.Thread | None = None
        self.lock = threading.Lock()
        self.inode_pid: dict[int, int] = {}
        self.missed: set[int] = set()  # inodes no scan found: not worth another scan
        self.names: dict[int, str | None] = {}  # pid -> service
        self.argvs: dict[int, list[str]] = {}  # pid -> its command line
        self.owners: Recent[Endpoint, int] = Recent(OWNERS)  # a socket's local end -> its process
        self.told: Recent[tuple[Endpoint, Endpoint], int] = Recent(OWNERS)  # (local, remote) -> pid
        self.read_reports: Callable[[], None] | None = None  # the kernel's, not yet read (eBPF)
        self.looped: Recent[Endpoint, int] = Recent(OWNERS)  # ends of connections one process holds

    def tell(self, local: Endpoint, remote: Endpoint, pid: int, argv: list[str]) -> None:
        """The kernel saw process `pid`, running `argv`, open (or accept) the socket at `local`
        connected to `remote`."""
        self.argvs[pid] = argv
        self.names[pid] = service_of(argv)
        self.owners.remember(local, pid)
        self.told.remember((local, remote), pid)
        if self.told.get((remote, local)) == pid:
            self.looped.remember(local, pid)
            self.looped.remember(remote, pid)

    def remember_open(self) -> None:
        """Look every connection open now up in /proc, once: with the kernel telling those opened
        from now on, no socket's owner has to be looked for later."""
        sockets = open_sockets(self.proc)
        self._scan(None)
        for (local, remote), inode in sockets.items():
            pid = self.inode_pid.get(inode)
            if pid is not None and (local, remote) not in self.told:
                self._name(pid)
                self.owners.remember(local, pid)
                self.told.remember((local, remote), pid)

    def prefetch(self, local: Endpoint, remote: Endpoint) -> None:
        """Look both ends of a new connection up soon, in the worker thread."""
        for pair in ((local, remote), (remote, local)):
            if pair not in self.asked and pair not in self.told:
                self.asked[pair] = threading.Event()
                self.queue.put(pair)
        if self.worker is None:
            self.worker = threading.Thread(target=self._work, daemon=True)
            self.worker.start()

    def _work(self) -> None:
        while True:
            pair = self.queue.get()
            name = self._resolve(*pair)
            with self.lock:
                asked = self.asked.get(pair)
                if asked is None:  # the kernel's answer was taken meanwhile
                    continue
                self.found[pair] = name
            asked.set()

    def lookup(self, local: Endpoint, remote: Endpoint) -> str | None:
        """The service owning the socket `local` connected to `remote`, or None."""
        pair = (local, remote)
        if pair not in self.told:
            name = self._lookup(pair)
            if name is not None or self.read_reports is None:
                return name
            self.read_reports()  # a report may have come while /proc was read
            if pair not in self.told:
                return None
        with self.lock:
            self.asked.pop(pair, None)
            self.found.pop(pair, None)
        return self._told(pair)

    def _told(self, pair: tuple[Endpoint, Endpoint]) -> str | None:
        """The service the kernel named, unless one process holds both ends of the connection:
        a lab, an in-process proxy, whose one name tells the two sides apart no better than
        the layout does."""
        local, remote = pair
        pid = self.told[pair]
        return None if self.told.get((remote, local)) == pid else self.names.get(pid)

    def _lookup(self, pair: tuple[Endpoint, Endpoint]) -> str | None:
        """The service /proc names for this socket: the worker's answer, if it was asked."""
        local, remote = pair
        asked = self.asked.get(pair)
        if asked is not None and asked.wait(1.0):
            with self.lock:
                self.asked.pop(pair, None)
                return self.found.pop(pair, None)
        with self.lock:
            return self._resolve(local, remote)

    def _resolve(self, local: Endpoint, remote: Endpoint) -> str | None:
        if (local, remote) in self.told:  # answered by the kernel while this waited
            return self._told((local, remote))
        inode = self._inode(local, remote)
        if inode is None:
            return None
        pid = self.inode_pid.get(inode)
        if pid is None and inode not in self.missed:
            # a socket newer than the last scan: most come from processes already seen, whose
            # few descriptors are read first; only then every process's
            for pids in (list(self.names), None):
                self._scan(pids)
                pid = self.inode_pid.get(inode)
                if pid is not None:
                    break
            else:
                self.missed.add(inode)
        if pid is None:
            return None
        self.owners.remember(local, pid)
        return self._name(pid)

    def process(self, local: Endpoint) -> tuple[int, list[str]] | None:
        """The process that owned the socket at `local` when it was looked up, and its command
        line (it may have exited since)."""
        pid = self.owners.get(local)
        if pid is None or self.looped.get(local) == pid:  # one process, both ends: no command
            return None
        return (pid, self.argvs.get(pid, []))

    def _inode(self, local: Endpoint, remote: Endpoint) -> int | None:
        """The inode of the socket with these two ends, from /proc/net/tcp or tcp6."""
        for table, local_hex, remote_hex in _forms(local, remote):
            try:
                with open(f"{self.proc}/net/{table}") as lines:
                    for line in lines:
                        fields = line.split(None, 10)
                        if fields[1] == local_hex and fields[2] == remote_hex and fields[9] != "0":
                            return int(fields[9])
            except (OSError, IndexError):
                continue
        return None

    def _scan(self, pids: list[int] | None) -> None:
        """Map the socket inodes of these processes (None: of all processes) to their pid."""
        if pids is None:
            pids = [int(name) for name in os.listdir(self.proc) if name.isdigit()]
        for pid in pids:
            directory = f"{self.proc}/{pid}/fd"
            try:
                fds = os.listdir(directory)
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"{directory}/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    self.inode_pid[int(target[8:-1])] = pid

    def _name(self, pid: int) -> str | None:
        if pid not in self.names:
            try:
                with open(f"{self.proc}/{pid}/cmdline", "rb") as stream:
                    argv = stream.read().decode(errors="replace").split("\0")
            except OSError:
                argv = []
            self.argvs[pid] = [word for word in argv if word]
            self.names[pid] = service_of(self.argvs[pid])
        return self.names[pid]
