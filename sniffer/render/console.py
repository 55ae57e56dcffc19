"""The terminal view: one line per message, indented by nesting depth."""

from __future__ import annotations

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


class ConsoleSink(Sink):
    masked_input = False  # it shows no header and no body: nothing that masking changes

    def __init__(self, stream: TextIO, templates: bool = False) -> None:
        self.stream = stream
        self.templates = templates

    def message(self, message: FlowMessage) -> None:
        self.stream.write(line(message, self.templates) + "\n")
        self.stream.flush()
