"""Captured text made inert where the documents embed it: whatever bytes a request or response
carries, they show as sent and never become markup of the page (mkdocs-material's markdown and
its extensions) or of the sequence diagram (mermaid).

- Code blocks: a fence longer than any run of backticks in its content (so no line of it
  closes the block), snippet markers (`--8<--`, which pymdownx.snippets expands even inside code
  blocks) escaped the way the extension reads them (`;--8<--` shows `--8<--`), and a lone
  carriage return, which markdown takes for a line break, shown as one (otherwise the rest of
  the line would leave the block's indentation).
- Headings: markdown's punctuation backslash-escaped, and what has no backslash escape (HTML,
  entities, the marks of the tilde, caret and mark extensions) written as a numeric entity.
- Mermaid: message text and participant labels as entity codes (`#59;`), participants whose
  names the grammar would misread declared under an alias.
"""

from __future__ import annotations

import re

FENCE = 3  # the shortest backtick fence
BACKTICKS = re.compile(rb"`{3,}")
SNIPPET = re.compile(rb"^([ \t]*)(;*-+8<-+)", re.MULTILINE)
LONE_CR = re.compile(rb"\r(?!\n)")

# inside a line (never at its start): markdown punctuation that opens markup and has a backslash
# escape (emphasis, code, links, attribute lists, trailing hashes, keys), and what needs an entity
# (HTML, entities, the tilde, caret, mark, emoji and arithmatex extensions' marks)
BACKSLASHED = frozenset("\\`*_{}[]#+")
ENTITIES = frozenset("<&~^=:$")
HEADING_MARKUP = re.compile("[" + re.escape("".join(BACKSLASHED | ENTITIES)) + r"]|[^\x20-\x7e]")

# mermaid: message text keeps these as they are; anything else becomes an entity code
MERMAID_PLAIN = re.compile(r"[A-Za-z0-9 /_.,:?=%{}()\[\]@!*+'$|~^-]*")
# a participant name the grammar reads as one word (and no keyword)
MERMAID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*(?:-[A-Za-z0-9_.]+)*")
MERMAID_KEYWORDS = frozenset(
    "participant actor as autonumber activate deactivate note left right over loop alt else opt"
    " par and rect end critical break box create destroy title links link properties details"
    " accTitle accDescr option".lower().split()
)


def fence_of(ticks: int) -> str:
    """A backtick fence longer than `ticks` backticks."""
    return "`" * max(FENCE, ticks + 1)


def longest_run(*contents: bytes) -> int:
    """The longest run of three backticks or more in `contents` (0 if none)."""
    longest = 0
    for data in contents:
        if b"```" in data:  # (a substring search: far faster than the pattern's, and rare)
            longest = max(longest, *(len(run) for run in BACKTICKS.findall(data)))
    return longest


def code_lines(data: bytes) -> bytes:
    """A code block's content, inert: snippet markers escaped, a lone CR made a line break."""
    if b"8<" in data:
        data = SNIPPET.sub(rb"\1;\2", data)
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):  # (counts: fast, in C)
        data = LONE_CR.sub(b"\n", data)
    return data


def heading(text: str) -> str:
    """Text for a heading or a line of prose, shown as it is."""
    if not HEADING_MARKUP.search(text):
        return text
    return "".join(_heading_char(char) for char in text)


def _heading_char(char: str) -> str:
    if char in BACKSLASHED:
        return "\\" + char
    if char in ENTITIES or not char.isprintable():
        return f"&#{ord(char)};"
    return char


def code_span(text: str) -> str:
    """Inline code showing `text` as it is, whatever backticks it holds."""
    if "`" not in text and text.isprintable() and text.strip():
        return f"`{text}`"
    ticks = max((len(run) for run in re.findall("`+", text)), default=0)
    delimiter = "`" * (ticks + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    if not text.isprintable():
        text = "".join(char if char.isprintable() else "\N{REPLACEMENT CHARACTER}" for char in text)
    return f"{delimiter}{pad}{text}{pad}{delimiter}"


def mermaid_text(text: str) -> str:
    """Message text (or a label) as mermaid shows it: special characters as entity codes."""
    if MERMAID_PLAIN.fullmatch(text):
        return text
    return "".join(char if MERMAID_PLAIN.fullmatch(char) else f"#{ord(char)};" for char in text)


class Participants:
    """Mermaid names for the services of a diagram: a service's own name where the grammar reads
    it as one word, else an alias (`_1`, `_2`, ...; no plain name starts with `_`) declared with
    the name as its label before its first message."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}

    def name(self, service: str, declarations: list[str]) -> str:
        """The diagram's name for `service`; its declaration appended when it is new."""
        if MERMAID_NAME.fullmatch(service) and service.lower() not in MERMAID_KEYWORDS:
            return service
        alias = self.aliases.get(service)
        if alias is None:
            alias = self.aliases[service] = f"_{len(self.aliases) + 1}"
            declarations.append(f"participant {alias} as {mermaid_text(service)}")
        return alias
