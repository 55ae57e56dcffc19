"""The plain log: every message with its headers and body, as the original requestshook wrote it."""

from __future__ import annotations

from ..flow import FlowMessage
from . import inert
from .sink import FileSink
from .text import body_block, header_lines, parts, url


def entry(message: FlowMessage) -> tuple[bytes, ...]:
    """A message's log entry, in UTF-8 pieces (the body is one of them)."""
    call = message.call
    request = call.request
    if message.is_request:
        first = f"### ({call.caller}) REQ >>> ({call.callee}) : {request.method} {url(call)}"
        if call.note:
            first += f"  ({call.note})"
    else:
        response = call.response
        assert response is not None  # (a response message has one)
        first = (
            f"### ({call.caller}) RESP <<< ({call.callee}) : "
            f"{response.status} {response.reason} {request.method} {url(call)}"
        )
    headers, body = parts(message)
    head = "\n".join([first, *header_lines(headers), "", ""]).encode()
    # index.md includes the log with snippets, in a code block: what was captured stays inert
    head = inert.code_lines(head)
    if not body.size:
        return (head,)
    return head, inert.code_lines(body_block(message)[1]), b"\n\n"


class LogSink(FileSink):
    binary = True

    def message(self, message: FlowMessage) -> None:
        self.out.write_pieces(entry(message))
