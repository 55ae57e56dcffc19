"""The mkdocs-material documents: body.md (one section per message), diagram.md and index.md.

mkdocs-material renders tabs and admonitions only with exact 4-space indents: keep them.
"""

from __future__ import annotations

import os

from ..apiref import LABELS
from ..atomic import AtomicFile, OutputError
from ..flow import FlowMessage
from ..stats import Stats
from . import inert
from .sink import Sink
from .site import snippet_prefix
from .text import body_block, header_lines, parts, title, tls_hops

INDENT = "    "
BODY_INDENT = b"\n" + INDENT.encode()
OVERDUE = {  # what the number of a message of an overdue call means (see `correlate`)
    "request": "Numbered without waiting for the response, so as not to hold back the rest.",
    "response": "Numbered when it was complete, after messages that began later.",
}
TITLE = "Call flow"
CAUSED_BY = (
    "Made for the call {}, which had answered already: it carries that call's "
    "X-OpenStack-Request-ID (asynchronous work, such as nova's over RPC)."
)
# a wide sequence keeps its size and scrolls, instead of shrinking to the page's width
WIDE_DIAGRAM = '%%{init: {"sequence": {"useMaxWidth": false}}}%%'
STILL_SENDING = "The request was still being sent then: its body is not shown here."
TLS = (
    "Read from inside TLS on {}: the bytes the TLS library wrote and read, not the packets, "
    "which carried them encrypted."
)


def section(
    message: FlowMessage, label: str, templates: bool = False
) -> tuple[tuple[bytes, ...], int]:
    """One message as in the seed document, in UTF-8 pieces (the body is one of them), and the
    longest run of backticks in what was captured. That is made inert (see `inert`): it shows
    as sent, and never as markup."""
    call = message.call
    text = title(message, templates)
    attr = _attribute(text)
    arrow = "-->" if message.is_request else "<--"
    lines = ["", f"### ({message.number}) {inert.heading(text)}"]
    lines += [f"{inert.code_span(call.caller)} {arrow} {inert.code_span(call.callee)}", ""]
    if call.note:
        note = OVERDUE[message.kind]
        if message.is_request and not call.request.complete:
            note += " " + STILL_SENDING
        lines += [f'!!! warning "{call.note}"', INDENT + note, ""]
    if message.is_request and call.caused_by is not None:
        cause = inert.code_span(call.caused_by[0])
        lines += ['!!! note "caused by"', f"{INDENT}{CAUSED_BY.format(cause)}", ""]
    encrypted = tls_hops(call) if message.is_request else []
    if encrypted:
        spans = ", ".join(inert.code_span(hop) for hop in encrypted)
        lines += ['!!! info "TLS"', f"{INDENT}{TLS.format(spans)}", ""]
    if message.is_request and call.operation is not None:
        operation = call.operation
        lines += [f'!!! reference "{label}"', f"{INDENT}[{operation.title}]({operation.url})", ""]
    headers, _ = parts(message)
    shown = inert.code_lines("\n".join(header_lines(headers)).encode())
    language, body = body_block(message)
    body = inert.code_lines(body)
    header_ticks, body_ticks = inert.longest_run(shown), inert.longest_run(body)
    ticks = max(header_ticks, body_ticks)
    if "`" in call.caller or "`" in call.callee:  # (the log shows the names too)
        ticks = max(ticks, inert.longest_run(call.caller.encode(), call.callee.encode()))
    header_fence, body_fence = inert.fence_of(header_ticks), inert.fence_of(body_ticks)
    lines += [
        '=== "Header"',
        f'{INDENT}{header_fence} http title="{attr}" linenums="1"',
        *(INDENT + line for line in shown.decode().split("\n") if headers),
        f"{INDENT}{header_fence}",
        "",
        '=== "Body"',
        f'{INDENT}{body_fence} {language} title="{attr}" linenums="1"',
        INDENT,
    ]
    # the body, often most of the section, is indented by one call and not copied again
    end = f"\n{INDENT}{body_fence}\n\n".encode()
    return ("\n".join(lines).encode(), body.replace(b"\n", BODY_INDENT), end), ticks


def _attribute(text: str) -> str:
    """A code block's title: no character that could end the attribute or the fence's line."""
    if text.isprintable() and not any(char in text for char in '"`\\'):
        return text
    return "".join(
        "'" if char in '"`' else char if char.isprintable() and char != "\\" else "?"
        for char in text
    )


def diagram_lines(
    message: FlowMessage, participants: inert.Participants, templates: bool = False
) -> list[str]:
    """A mermaid sequence message: request caller->>callee, response callee-->>caller; before
    it, the declaration of a participant whose name needs one (see `inert.Participants`)."""
    call = message.call
    lines: list[str] = []
    caller = participants.name(call.caller, lines)
    callee = participants.name(call.callee, lines)
    text = inert.mermaid_text(title(message, templates))
    if message.is_request:
        return [*lines, f"{caller}->>{callee}: {text}"]
    return [*lines, f"{callee}-->>{caller}: {text}"]


class DocumentSink(Sink):
    """body.md and diagram.md, streamed, and index.md, the page that includes them and log.md
    (pymdownx.snippets), written when the flow ends."""

    def __init__(
        self,
        directory: str,
        lang: str = "en",
        templates: bool = False,
        title_text: str = TITLE,
        base: str | None = None,
    ) -> None:
        self.templates = templates
        self.files: list[AtomicFile] = []
        try:
            for name in ("body.md", "diagram.md", "index.md"):
                self.files.append(AtomicFile(os.path.join(directory, name), binary=True))
        except OutputError:
            self.abort()
            raise
        self.body, self.diagram, self.index = self.files
        self.label = LABELS.get(lang, LABELS["en"])
        self.title = title_text
        self.prefix = snippet_prefix(directory, base)
        self.participants = inert.Participants()
        self.ticks = 0  # the longest run of backticks the log can hold: its fence is longer

    def message(self, message: FlowMessage) -> None:
        lines = diagram_lines(message, self.participants, self.templates)
        self.diagram.write(("\n".join(lines) + "\n").encode())
        pieces, ticks = section(message, self.label, self.templates)
        self.body.write_pieces(pieces)
        self.ticks = max(self.ticks, ticks)

    def close(self, stats: Stats) -> None:
        self.index.write(index(self.title, self.prefix, inert.fence_of(self.ticks)).encode())
        for out in self.files:
            out.commit()

    def abort(self) -> None:
        for out in self.files:
            out.abort()


def index(title_text: str, prefix: str, log_fence: str) -> str:
    """The page: the diagram, the messages and the log, each included from its file."""
    return f"""# {inert.heading(title_text)}

## Sequence Diagram

```mermaid
{WIDE_DIAGRAM}
sequenceDiagram
{INDENT}autonumber
{INDENT}--8<-- "{prefix}diagram.md"
```

## Request / Response

--8<-- "{prefix}body.md"

## Full Logs

??? quote "log.md"

{INDENT}{log_fence} text
{INDENT}--8<-- "{prefix}log.md"
{INDENT}{log_fence}
"""
