"""The live view: each call printed as it starts and as it ends, and a status line on a terminal.

Documents wait until a message's place in the flow is certain; this view does not, so its
callers and nesting are first guesses (the documents hold the final word).
"""

from __future__ import annotations

from typing import TextIO

from ..filters import Selection
from ..flow import Call
from ..http import RequestHead
from .console import GAP, Columns, Line, Segment, Terminal, answered, asked, escaped, note, who


class LiveView:
    """The calls as they start and end, in the console's columns. Lines are numbered in the order
    they are printed (the documents number messages by their first byte, once certain), and a
    call's end names the line of its start (`↩ N`)."""

    def __init__(
        self, out: TextIO, status: TextIO | None, selection: Selection | None = None
    ) -> None:
        self.out = Terminal(out)
        self.selection = selection  # calls dropped from the outputs are not shown either
        self.status = status  # a terminal for the status line, or None
        self.shown = False
        self.last = 0.0
        self.columns = Columns()
        self.lines = 0
        self.started: dict[int, int] = {}  # call key -> the line its start was shown on

    def progress(self, kind: str, call: Call, depth: int, head: RequestHead) -> None:
        start = self.started.pop(call.key, None) if kind != "request" else None
        path = head.target.split("?", 1)[0]
        if self.selection and self.selection.drops_parts(
            call.caller, call.callee, head.method, [path]
        ):
            return
        self._clear()
        self.lines += 1
        if kind == "request":
            self.started[call.key] = self.lines
            line = self._started(call, depth, head)
        else:
            line = self._ended(call, depth, head, start)
        self.out.show(line)

    def _started(self, call: Call, depth: int, head: RequestHead) -> Line:
        fields = self.columns.fields(
            self.lines, head.ts, who(call.caller, call.callee, depth, True), None
        )
        return Line(fields + asked(head.method), escaped(head.target))

    def _ended(self, call: Call, depth: int, head: RequestHead, start: int | None) -> Line:
        response = call.response
        ts = response.end_ts if response else head.ts
        fields = self.columns.fields(
            self.lines, ts, who(call.caller, call.callee, depth, False), start
        )
        if response is None or call.duration is None:
            what = asked(head.method)
        else:
            what = answered(call.duration, response.status, response.reason)
        notes: list[Segment] = []
        if call.operation is not None:
            notes.append((f"{GAP}[{escaped(call.operation.title)}]", ""))
        if response is None:
            notes.append(note("no response"))
        elif not call.complete:
            notes.append(note("incomplete"))
        return Line(fields + what, escaped(head.target), notes)

    def due(self, now: float) -> bool:
        """Whether the status line should be rewritten now (at most twice a second)."""
        if self.status is None or now - self.last < 0.5:
            return False
        self.last = now
        return True

    def show_status(self, text: str) -> None:
        if self.status is None:
            return
        self.status.write("\r\033[K" + text)
        self.status.flush()
        self.shown = True

    def _clear(self) -> None:
        if self.shown and self.status is not None:
            self.status.write("\r\033[K")
            self.status.flush()
            self.shown = False

    def done(self) -> None:
        self._clear()
