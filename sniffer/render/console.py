"""The terminal view: one line per message, indented by nesting depth."""

from __future__ import annotations

import contextlib
import os
from typing import TextIO

from ..flow import FlowMessage
from .sink import Sink
from .text import clock, title


def line(message: FlowMessage, templates: bool = False) -> str:
    call = message.call
    shown = call.request if message.is_request else call.response
    assert shown is not None  # (a response message has one)
    indent = "  " * call.depth
    if message.is_request:
        text = f"{indent}{call.caller} → {call.callee}  {title(message, templates)}"
    else:
        text = f"{indent}{call.caller} ← {call.callee}  {title(message, templates)}"
        if call.duration is not None:
            text += f"  ({call.duration * 1000:.1f} ms)"
    if message.is_request and call.note:
        text += f"  [{call.note}]"
    elif (message.is_request and not call.request.complete) or (
        not message.is_request and not shown.complete
    ):
        text += "  [incomplete]"
    elif message.is_request and call.response is None:
        text += "  [no response]"
    return f"{message.number:>4} {clock(shown.ts)} {text}"


class Terminal:
    """Lines for a terminal or a pipe. When the reader goes away (`| head`), the rest is dropped
    and the run goes on: its files are still written."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> None:
        if self.gone:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.gone = True
            # what is still buffered would fail again at exit, with a traceback
            with contextlib.suppress(OSError, ValueError):  # (a stream without a descriptor)
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())


class ConsoleSink(Sink):
    """One line per message (it shows no header and no body: nothing that masking changes)."""

    def __init__(self, stream: TextIO, templates: bool = False) -> None:
        self.out = Terminal(stream)
        self.templates = templates

    def message(self, message: FlowMessage) -> None:
        self.out.write(line(message, self.templates) + "\n")
