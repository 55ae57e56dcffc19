"""Who opened each TCP connection on this host, from the kernel: the programs of
connections.bpf.c loaded and attached, and a thread that reads their reports into
`SocketOwners`, which consults them before /proc.

A report says: the socket at `local`, connected to `remote`, was opened (connect) or accepted by
process `pid` running `argv` -- read in the kernel while that process ran, so a client that
exits a millisecond after its request is still named, by its own command line.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from ..flow import Endpoint
from ..procnet import SocketOwners
from . import build, host
from .ends import ENDS, ends
from .host import Unavailable
from .libbpf import BpfObject, LibbpfError, RingBuffer

# struct connection of connections.bpf.c: its ends, accepted, then its owner
REPORT = struct.Struct(ENDS.format + "B3xII16s512s")
POLL = 0.1  # seconds the reader waits for reports before it checks whether to stop
CONNECTING = ("on_state",)
# how accepted sockets are reported, best first (see connections.bpf.c); the last: not at all,
# /proc names the accepting ends
ACCEPTING = (("on_accept",), ("on_passive_open", "on_receive", "on_send"), ())


@dataclass(frozen=True)
class Opened:
    """One report of the kernel's."""

    local: Endpoint
    remote: Endpoint
    pid: int
    argv: tuple[str, ...]  # comm alone when the command line could not be read
    accepted: bool


def parse(record: bytes) -> Opened:
    fields = REPORT.unpack_from(record)
    local, remote = ends(*fields[:5])
    accepted, pid, size, comm, argv = fields[5:]
    words = [word.decode(errors="replace") for word in argv[:size].split(b"\0") if word]
    if not words:
        words = [comm.split(b"\0")[0].decode(errors="replace")]
    return Opened(local, remote, pid, tuple(words), bool(accepted))


def _load(path: Path) -> BpfObject:
    """The connect programs, with the first way of reporting accepted sockets the kernel takes."""
    failure = LibbpfError("no program")
    for accepting in ACCEPTING:
        try:
            return BpfObject(path, CONNECTING + accepting)
        except LibbpfError as error:
            failure = error
    raise failure


class ConnectionReports:
    """The kernel's reports of connections opened, read into `owners` by a thread until
    `close` detaches the programs and frees them."""

    def __init__(self, owners: SocketOwners, source: Path = build.SOURCE) -> None:
        reason = host.unavailable()
        if reason is not None:
            raise Unavailable(reason)
        try:
            self.programs = _load(build.compiled(source))
        except (build.BuildError, LibbpfError, OSError) as error:
            raise Unavailable(str(error)) from None
        try:
            self.ring = RingBuffer(self.programs.map_fd("connections"), self._report)
        except LibbpfError as error:
            self.programs.close()
            raise Unavailable(str(error)) from None
        self.owners = owners
        self.lock = threading.Lock()  # one reader of the ring buffer at a time
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._follow, name="connection reports", daemon=True)
        self.thread.start()
        owners.read_reports = self.read

    def _follow(self) -> None:
        while not self.stopping.is_set():
            if self.ring.wait(POLL):
                self.read()

    def read(self) -> None:
        """Hand the reports waiting in the ring buffer to `owners` now (the thread does so as
        they come; a lookup that found nothing does so before it gives up)."""
        with self.lock:
            self.ring.consume()

    def _report(self, record: bytes) -> None:
        opened = parse(record)
        self.owners.tell(opened.local, opened.remote, opened.pid, list(opened.argv))

    def close(self) -> None:
        """Stop reading, detach the programs, free everything."""
        self.owners.read_reports = None
        self.stopping.set()
        self.thread.join()
        with self.lock:
            self.ring.close()
            self.programs.close()
