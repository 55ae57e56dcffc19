"""The live view: each call printed as it starts and as it ends, and a status line on a terminal.

Documents wait until a message's place in the flow is certain; this view does not, so its
callers and nesting are first guesses (the documents hold the final word).
"""

from __future__ import annotations

from typing import TextIO

from ..filters import Selection
from ..flow import Call
from ..http import RequestHead
from .console import Terminal
from .text import clock


class LiveView:
    def __init__(
        self, out: TextIO, status: TextIO | None, selection: Selection | None = None
    ) -> None:
        self.out = Terminal(out)
        self.selection = selection  # calls dropped from the outputs are not shown either
        self.status = status  # a terminal for the status line, or None
        self.shown = False
        self.last = 0.0

    def progress(self, kind: str, call: Call, depth: int, head: RequestHead) -> None:
        path = head.target.split("?", 1)[0]
        if self.selection and self.selection.drops_parts(
            call.caller, call.callee, head.method, [path]
        ):
            return
        self._clear()
        indent = "  " * depth
        if kind == "request":
            line = f"{indent}{call.caller} → {call.callee}  {head.method} {head.target}"
            ts = head.ts
        else:
            response = call.response
            ts = response.end_ts if response else head.ts
            line = f"{indent}{call.caller} ← {call.callee}  "
            if response is None:
                line += f"(no response) {head.target}"
            else:
                line += f"{response.status} {response.reason} {head.target}"
                line += f"  ({(response.end_ts - call.request.ts) * 1000:.1f} ms)"
            if call.operation is not None:
                line += f"  [{call.operation.title}]"
            if not call.complete:
                line += "  [incomplete]"
        self.out.write(f"{clock(ts)} {line}\n")

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
