"""Which process owns a TCP socket on this host, named as the OpenStack service it runs.

/proc/net/tcp and tcp6 map a socket's addresses to an inode; /proc/PID/fd links map inodes to
processes; the command line names the service (`/usr/bin/python3 /usr/local/bin/glance-api
--config-file ...` is glance-api). Front doors (Apache, nginx, HAProxy) name nothing: the layout
behind them does. Lookups happen when a connection opens, before a short-lived socket is gone.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time

from .flow import Endpoint

# command-line word -> service (first match wins; more specific names first)
COMMANDS = (
    (re.compile(r"glance-api"), "glance-api"),
    (re.compile(r"nova-compute"), "nova-compute"),
    (re.compile(r"nova-scheduler"), "nova-scheduler"),
    (re.compile(r"nova-conductor"), "nova-conductor"),
    (re.compile(r"nova-api-metadata|nova-metadata"), "nova-metadata-api"),
    (re.compile(r"nova-api"), "nova-api"),
    (re.compile(r"neutron-server|neutron-api"), "neutron-server"),
    (re.compile(r"keystone"), "keystone"),
    (re.compile(r"placement"), "placement-api"),
    (re.compile(r"cinder-api"), "cinder-api"),
    (re.compile(r"cinder-volume"), "cinder-volume"),
    (re.compile(r"cinder-scheduler"), "cinder-scheduler"),
    (re.compile(r"swift-proxy-server"), "swift-proxy-server"),
    (re.compile(r"trove-api"), "trove-api"),
    (re.compile(r"heat-api"), "heat-api"),
    (re.compile(r"horizon|openstack_dashboard"), "horizon"),
    (re.compile(r"(^|/)openstack$|openstackclient"), "openstack"),
)
FRONT_DOORS = frozenset({"apache2", "httpd", "nginx", "haproxy"})
INTERPRETERS = re.compile(r"^(python[0-9.]*|uwsgi|gunicorn|sudo|env)$")
REFRESH = 0.5  # seconds between two full scans of /proc/*/fd


def service_of(argv: list[str]) -> str | None:
    """The service a command line runs; its program name otherwise; None for a front door."""
    if "-c" in argv:  # inline code says nothing about the service
        argv = argv[: argv.index("-c")]
    words = [os.path.basename(word) for word in argv[:4] if word]
    if not words or words[0] in FRONT_DOORS:
        return None
    for pattern, name in COMMANDS:
        if any(pattern.search(word) for word in words):
            return name
    if INTERPRETERS.match(words[0]):
        script = next((word for word in words[1:] if not word.startswith("-")), None)
        return script or words[0]
    return words[0]


def _address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    else:
        words = struct.unpack(">4I", raw)
        ip = socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words))
    return ip, int(port, 16)


class SocketOwners:
    """Name the process behind each end of a TCP connection seen on this host."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.inode_pid: dict[int, int] = {}
        self.scanned = 0.0
        self.names: dict[int, str | None] = {}  # pid -> service

    def lookup(self, local: Endpoint, remote: Endpoint) -> str | None:
        inode = self._inode(local, remote)
        if inode is None:
            return None
        pid = self.inode_pid.get(inode)
        if pid is None and time.monotonic() - self.scanned > REFRESH:
            self._scan()
            pid = self.inode_pid.get(inode)
        return None if pid is None else self._name(pid)

    def _inode(self, local: Endpoint, remote: Endpoint) -> int | None:
        for table in ("tcp", "tcp6"):
            try:
                with open(f"{self.proc}/net/{table}") as lines:
                    next(lines, None)
                    for line in lines:
                        fields = line.split()
                        if len(fields) < 10:
                            continue
                        mine, theirs = _address(fields[1]), _address(fields[2])
                        if _same(mine, local) and _same(theirs, remote) and fields[9] != "0":
                            return int(fields[9])
            except OSError:
                continue
        return None

    def _scan(self) -> None:
        self.scanned = time.monotonic()
        self.inode_pid.clear()
        for pid in os.listdir(self.proc):
            if not pid.isdigit():
                continue
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
                    self.inode_pid[int(target[8:-1])] = int(pid)

    def _name(self, pid: int) -> str | None:
        if pid not in self.names:
            try:
                with open(f"{self.proc}/{pid}/cmdline", "rb") as stream:
                    argv = stream.read().decode(errors="replace").split("\0")
            except OSError:
                argv = []
            self.names[pid] = service_of([word for word in argv if word])
        return self.names[pid]


def _same(seen: Endpoint, wanted: Endpoint) -> bool:
    """Equal addresses, counting an IPv4-mapped IPv6 address as its IPv4 form."""
    return seen[1] == wanted[1] and seen[0].removeprefix("::ffff:") == wanted[0].removeprefix(
        "::ffff:"
    )
