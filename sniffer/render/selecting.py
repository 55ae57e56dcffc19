"""The selection at work: only the calls a `filters.Selection` keeps reach the outputs, numbered
again from 1, and the calls made while serving a dropped call go with it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..filters import Selection
from ..flow import Call, FlowMessage
from .sink import FanOut, Sink


class SelectingSink(FanOut):
    """Hands the sinks behind it only the selected calls, numbered again."""

    def __init__(self, sinks: Iterable[Sink], selection: Selection) -> None:
        super().__init__(sinks)
        self.selection = selection
        self.views: dict[int, Call | None] = {}  # call.key -> its renumbered copy, None: dropped
        self.dropped: set[int] = set()  # keys of dropped calls, so that their children go too
        self.number = 0

    def message(self, message: FlowMessage) -> None:
        call = message.call
        if message.is_request:
            parent_dropped = call.parent is not None and call.parent in self.dropped
            if parent_dropped or self.selection.drops(call):
                self.dropped.add(call.key)
                self.views[call.key] = None
            else:
                self.views[call.key] = replace(call, numbers=[])
        view = self.views.get(call.key)
        if view is None:
            return
        if view.revision != call.revision:  # its hops changed since its request was shown
            view.hops, view.revision = call.hops, call.revision  # (the same view: sinks know it)
        self.number += 1
        view.numbers.append(self.number)
        super().message(FlowMessage(self.number, message.kind, view))

    def call(self, call: Call) -> None:
        self.dropped.discard(call.key)  # its children, made while it was served, came before
        view = self.views.pop(call.key, None)
        if view is not None:
            super().call(view)
