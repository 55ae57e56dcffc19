"""The sink interface: how every output format receives the flow."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..atomic import AtomicFile
from ..flow import Call, FlowMessage
from ..stats import Stats


class Sink:
    """Receives messages in number order, each call once all its messages are out, then close."""

    # whether it must be handed calls with their secrets masked: it writes headers or bodies,
    # and does not mask them itself
    masked_input = True

    def message(self, message: FlowMessage) -> None:
        pass

    def call(self, call: Call) -> None:
        pass

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


class MaskingSink(FanOut):
    """Hands the sinks behind it a masked copy of each call."""

    def __init__(self, sinks: Iterable[Sink], mask: Callable[[Call], Call]) -> None:
        super().__init__(sinks)
        self.masked = MaskedCopies(mask)

    def message(self, message: FlowMessage) -> None:
        super().message(FlowMessage(message.number, message.kind, self.masked.of(message.call)))

    def call(self, call: Call) -> None:
        copy = self.masked.of(call)
        self.masked.drop(call)
        super().call(copy)


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
