"""The sink interface: how every output format receives the flow."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..atomic import AtomicFile
from ..content import display
from ..flow import Call, FlowMessage
from ..stats import Stats
from .text import parts


class Sink:
    """Receives messages in number order, each call once all its messages are out, then close."""

    def message(self, message: FlowMessage) -> None:
        pass

    def call(self, call: Call) -> None:
        pass

    def tick(self, now: float) -> None:
        """Live: time passed without a message (for the outputs that write as time goes)."""

    def close(self, stats: Stats) -> None:
        pass

    def abort(self) -> None:
        """The run failed: drop what was written, leave no partial file."""

    def warnings(self) -> list[str]:
        """What went wrong without stopping the run (after close)."""
        return []


class FanOut(Sink):
    """Hands everything on to the sinks behind it; subclasses change what they pass."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)

    def message(self, message: FlowMessage) -> None:
        for sink in self.sinks:
            sink.message(message)

    def call(self, call: Call) -> None:
        for sink in self.sinks:
            sink.call(call)

    def tick(self, now: float) -> None:
        for sink in self.sinks:
            sink.tick(now)

    def close(self, stats: Stats) -> None:
        for sink in self.sinks:
            sink.close(stats)

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()

    def warnings(self) -> list[str]:
        return [warning for sink in self.sinks for warning in sink.warnings()]


class MaskedCopies:
    """The masked copy of each call in flight (see `sniffer.redact`): made once, when first
    needed, and kept until the call is out."""

    def __init__(self, mask: Callable[[Call], Call]) -> None:
        self.mask = mask
        self.copies: dict[int, Call] = {}  # call key -> its masked copy

    def of(self, call: Call) -> Call:
        copy = self.copies.get(call.key)
        if copy is None or copy.revision != call.revision:
            copy = self.copies[call.key] = self.mask(call)
        return copy

    def drop(self, call: Call) -> None:
        self.copies.pop(call.key, None)


class Presenter(FanOut):
    """Hands the sinks behind it each message as they show it: its call masked (`mask`, unless
    secrets are shown) and, when a sink shows bodies, its body made ready for display, once
    for all of them."""

    def __init__(
        self, sinks: Iterable[Sink], mask: Callable[[Call], Call] | None, bodies: bool
    ) -> None:
        super().__init__(sinks)
        self.masked = MaskedCopies(mask) if mask is not None else None
        self.bodies = bodies

    def message(self, message: FlowMessage) -> None:
        call = message.call
        if self.masked is not None:
            call = self.masked.of(call)
        block = message.display  # (made ready already: by the other process, see `worker`)
        if block is None and self.bodies:
            block = display(parts(FlowMessage(message.number, message.kind, call))[1])
        super().message(FlowMessage(message.number, message.kind, call, block))

    def call(self, call: Call) -> None:
        if self.masked is not None:
            copy = self.masked.of(call)
            self.masked.drop(call)
            call = copy
        super().call(call)


class FileSink(Sink):
    """A sink that writes one file atomically (bytes when `binary`: the JSON exports, which
    orjson encodes straight to UTF-8)."""

    binary = False

    def __init__(self, path: str) -> None:
        self.out = AtomicFile(path, self.binary)

    def close(self, stats: Stats) -> None:
        self.out.commit()

    def abort(self) -> None:
        self.out.abort()
