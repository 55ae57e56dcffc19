"""The mkdocs-material documents: body.md (one section per message), diagram.md and index.md.

mkdocs-material renders tabs and admonitions only with exact 4-space indents: keep them.
"""

from __future__ import annotations

import os

from ..apiref import LABELS
from ..atomic import AtomicFile, OutputError
from ..flow import FlowMessage
from ..stats import Stats
from .sink import Sink
from .text import body_block, header_lines, parts, title

INDENT = "    "
BODY_INDENT = b"\n" + INDENT.encode()
BODY_END = BODY_INDENT + b"```\n\n"
OVERDUE = {  # what the number of a message of an overdue call means (see `correlate`)
    "request": "Numbered without waiting for the response, so as not to hold back the rest.",
    "response": "Numbered when it was complete, after messages that began later.",
}
STILL_SENDING = "The request was still being sent then: its body is not shown here."


def section(message: FlowMessage, label: str, templates: bool = False) -> tuple[bytes, ...]:
    """One message as in the seed document, in UTF-8 pieces (the body is one of them)."""
    call = message.call
    heading = title(message, templates)
    attr = heading.replace('"', "'")
    arrow = "-->" if message.is_request else "<--"
    lines = ["", f"### ({message.number}) {heading}"]
    lines += [f"`{call.caller}` {arrow} `{call.callee}`", ""]
    if call.note:
        text = OVERDUE[message.kind]
        if message.is_request and not call.request.complete:
            text += " " + STILL_SENDING
        lines += [f'!!! warning "{call.note}"', INDENT + text, ""]
    if message.is_request and call.operation is not None:
        operation = call.operation
        lines += [f'!!! reference "{label}"', f"{INDENT}[{operation.title}]({operation.url})", ""]
    headers, _ = parts(message)
    language, body = body_block(message)
    lines += [
        '=== "Header"',
        f'{INDENT}``` http title="{attr}" linenums="1"',
        *(INDENT + line for line in header_lines(headers)),
        f"{INDENT}```",
        "",
        '=== "Body"',
        f'{INDENT}``` {language} title="{attr}" linenums="1"',
        INDENT,
    ]
    # the body, often most of the section, is indented by one call and not copied again
    return "\n".join(lines).encode(), body.replace(b"\n", BODY_INDENT), BODY_END


def diagram_line(message: FlowMessage, templates: bool = False) -> str:
    """A mermaid sequence message: request caller->>callee, response callee-->>caller."""
    call = message.call
    if message.is_request:
        return f"{call.caller}->>{call.callee}: {title(message, templates)}"
    return f"{call.callee}-->>{call.caller}: {title(message, templates)}"


class DocumentSink(Sink):
    """body.md, diagram.md and index.md, streamed; index.md is its header and diagram, with
    body.md appended when the flow ends (each section is rendered once, for both files)."""

    def __init__(
        self,
        directory: str,
        lang: str = "en",
        templates: bool = False,
        title_text: str = "Call flow",
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
        head = f"# {title_text}\n\n```mermaid\nsequenceDiagram\n{INDENT}autonumber\n"
        self.index.write(head.encode())

    def message(self, message: FlowMessage) -> None:
        line = (diagram_line(message, self.templates) + "\n").encode()
        self.diagram.write(line)
        self.index.write(INDENT.encode() + line)
        self.body.write_pieces(section(message, self.label, self.templates))

    def close(self, stats: Stats) -> None:
        self.index.write(b"```\n")
        self.index.append(self.body)
        for out in self.files:
            out.commit()

    def abort(self) -> None:
        for out in self.files:
            out.abort()
