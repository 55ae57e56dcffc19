"""The sink interface, and files that appear whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from typing import TextIO

from ..flow import Call, FlowMessage
from ..stats import Stats


class Sink:
    """Receives messages in number order, each call once all its messages are out, then close."""

    def message(self, message: FlowMessage) -> None:
        pass

    def call(self, call: Call) -> None:
        pass

    def close(self, stats: Stats) -> None:
        pass


class MaskingSink(Sink):
    """Hands the sinks behind it a masked copy of each call (see `sniffer.redact`)."""

    def __init__(self, sinks: Iterable[Sink], mask: Callable[[Call], Call]) -> None:
        self.sinks = list(sinks)
        self.mask = mask
        self.views: dict[int, Call] = {}  # id(call) -> its masked copy, until the call is out

    def _view(self, call: Call) -> Call:
        view = self.views.get(id(call))
        if view is None:
            view = self.views[id(call)] = self.mask(call)
        return view

    def message(self, message: FlowMessage) -> None:
        shown = FlowMessage(message.number, message.kind, self._view(message.call))
        for sink in self.sinks:
            sink.message(shown)

    def call(self, call: Call) -> None:
        view = self._view(call)
        del self.views[id(call)]
        for sink in self.sinks:
            sink.call(view)

    def close(self, stats: Stats) -> None:
        for sink in self.sinks:
            sink.close(stats)


class AtomicFile:
    """A text file written to a temporary name beside its target, renamed into place on commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        fd, self.temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        self.stream: TextIO = os.fdopen(fd, "w", encoding="utf-8", newline="\n")

    def write(self, text: str) -> None:
        self.stream.write(text)

    def commit(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.chmod(self.temp, 0o644)
        os.replace(self.temp, self.path)

    def abort(self) -> None:
        self.stream.close()
        if os.path.exists(self.temp):
            os.unlink(self.temp)


class FileSink(Sink):
    """A sink that writes one file atomically."""

    def __init__(self, path: str) -> None:
        self.out = AtomicFile(path)

    def close(self, stats: Stats) -> None:
        self.out.commit()
