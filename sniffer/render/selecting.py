"""The selection at work: only the calls a `filters.Selection` keeps reach the outputs, numbered
again from 1, and the calls made while serving a dropped call go with it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..filters import Selection
from ..flow import Call, FlowMessage
from .sink import FanOut, Sink


class Renumbering:
    """Calls shown under numbers of their own, from 1 (a selection, a command's page): a view of
    each call, from its request to its end, that the sinks behind know it by."""

    def __init__(self) -> None:
        self.views: dict[int, Call] = {}  # call.key -> its view
        self.number = 0

    def message(self, message: FlowMessage) -> FlowMessage:
        call = message.call
        view = self.views.get(call.key)
        if view is None:
            view = self.views[call.key] = replace(call, numbers=[])
        elif view.revision != call.revision:  # its hops changed since its request was shown
            view.hops, view.revision = call.hops, call.revision  # (the same view: sinks know it)
        self.number += 1
        view.numbers.append(self.number)
        return FlowMessage(self.number, message.kind, view, message.display)

    def end(self, call: Call) -> Call | None:
        """The call's view, once its last message is out (None: it was not shown)."""
        return self.views.pop(call.key, None)


class SelectingSink(FanOut):
    """Hands the sinks behind it only the selected calls, numbered again."""

    def __init__(self, sinks: Iterable[Sink], selection: Selection) -> None:
        super().__init__(sinks)
        self.selection = selection
        self.shown = Renumbering()
        self.dropped: set[int] = set()  # keys of dropped calls, so that their children go too

    def message(self, message: FlowMessage) -> None:
        call = message.call
        if message.is_request:
            parent_dropped = call.parent is not None and call.parent in self.dropped
            if parent_dropped or self.selection.drops(call):
                self.dropped.add(call.key)
        if call.key not in self.dropped:
            super().message(self.shown.message(message))

    def call(self, call: Call) -> None:
        self.dropped.discard(call.key)  # its children, made while it was served, came before
        view = self.shown.end(call)
        if view is not None:
            super().call(view)
