"""The mkdocs-material documents: body.md (one section per message), diagram.md and index.md.

mkdocs-material renders tabs and admonitions only with exact 4-space indents: keep them.
"""

from __future__ import annotations

import os
import shutil

from ..apiref import LABELS
from ..flow import FlowMessage
from ..stats import Stats
from .sink import AtomicFile, FileSink, Sink
from .text import body_block, header_lines, parts, title

INDENT = "    "


def section(message: FlowMessage, label: str) -> str:
    """One message as in the seed document."""
    call = message.call
    heading = title(message)
    attr = heading.replace('"', "'")
    arrow = "-->" if message.is_request else "<--"
    lines = ["", f"### ({message.number}) {heading}"]
    lines += [f"`{call.caller}` {arrow} `{call.callee}`", ""]
    if message.is_request and call.operation is not None:
        operation = call.operation
        lines += [f'!!! reference "{label}"', f"{INDENT}[{operation.title}]({operation.url})", ""]
    headers, _ = parts(message)
    language, text = body_block(message)
    lines += [
        '=== "Header"',
        f'{INDENT}``` http title="{attr}" linenums="1"',
        *(INDENT + line for line in header_lines(headers)),
        f"{INDENT}```",
        "",
        '=== "Body"',
        f'{INDENT}``` {language} title="{attr}" linenums="1"',
        *(INDENT + line for line in text.split("\n")),
        f"{INDENT}```",
        "",
        "",
    ]
    return "\n".join(lines)


def diagram_line(message: FlowMessage) -> str:
    """A mermaid sequence message: request caller->>callee, response callee-->>caller."""
    call = message.call
    if message.is_request:
        return f"{call.caller}->>{call.callee}: {title(message)}"
    return f"{call.callee}-->>{call.caller}: {title(message)}"


class BodySink(FileSink):
    def __init__(self, path: str, lang: str = "en") -> None:
        super().__init__(path)
        self.label = LABELS.get(lang, LABELS["en"])

    def message(self, message: FlowMessage) -> None:
        self.out.write(section(message, self.label))


class DiagramSink(FileSink):
    def message(self, message: FlowMessage) -> None:
        self.out.write(diagram_line(message) + "\n")


class IndexSink(Sink):
    """A page with the diagram, then the body: streamed into two parts, joined at close."""

    def __init__(self, path: str, lang: str = "en", title_text: str = "Call flow") -> None:
        self.out = AtomicFile(path)
        self.body = AtomicFile(path + ".body")
        self.label = LABELS.get(lang, LABELS["en"])
        self.out.write(f"# {title_text}\n\n```mermaid\nsequenceDiagram\n{INDENT}autonumber\n")

    def message(self, message: FlowMessage) -> None:
        self.out.write(INDENT + diagram_line(message) + "\n")
        self.body.write(section(message, self.label))

    def close(self, stats: Stats) -> None:
        self.out.write("```\n")
        self.body.stream.flush()
        with open(self.body.temp, encoding="utf-8") as body:
            self.out.stream.flush()
            shutil.copyfileobj(body, self.out.stream)
        self.body.abort()
        self.out.commit()


def document_sinks(directory: str, lang: str) -> list[Sink]:
    return [
        BodySink(os.path.join(directory, "body.md"), lang),
        DiagramSink(os.path.join(directory, "diagram.md")),
        IndexSink(os.path.join(directory, "index.md"), lang),
    ]
