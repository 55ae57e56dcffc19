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


class MaskingSink(FanOut):
    """Hands the sinks behind it a masked copy of each call (see `sniffer.redact`)."""

    def __init__(self, sinks: Iterable[Sink], mask: Callable[[Call], Call]) -> None:
        super().__init__(sinks)
        self.mask = mask
        self.views: dict[int, Call] = {}  # id(call) -> its masked copy, until the call is out

    def _view(self, call: Call) -> Call:
        view = self.views.get(id(call))
        if view is None:
            view = self.views[id(call)] = self.mask(call)
        return view

    def message(self, message: FlowMessage) -> None:
        super().message(FlowMessage(message.number, message.kind, self._view(message.call)))

    def call(self, call: Call) -> None:
        view = self._view(call)
        del self.views[id(call)]
        super().call(view)


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
