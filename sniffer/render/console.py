"""The terminal view: one line per message, in aligned columns: its number, time, caller →
callee indented by nesting depth, for a response the request it answers (`↩ 21`) and the call's
duration (`850 µs`, `1.97 ms`, `1.20 s`), then the method or status, and the path.

On a terminal (not through a pipe, where scripts read whole lines) lines are cut to its width
and coloured by status class, unless `NO_COLOR` is set (https://no-color.org). Whatever came
from the wire is escaped first (`\\x1b`): a capture must not drive the terminal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from ..flow import FlowMessage
from .sink import Sink
from .text import clock, target

WHO_MIN = 32  # the caller → callee column: this wide at first, wider as wider pairs are seen,
WHO_MAX = 48  # up to this; a wider pair overflows its line rather than widen every line after
TARGET_MIN = 12  # a cut line keeps at least this much of the path, else it is cut at its end
GAP = "  "

# SGR colours (https://en.wikipedia.org/wiki/ANSI_escape_code#SGR)
DIM, GREEN, CYAN, YELLOW, RED, MAGENTA = "2", "32", "36", "33", "31", "35"
STATUS_COLOURS = {2: GREEN, 3: CYAN, 4: YELLOW, 5: RED}


def escaped(text: str) -> str:
    """The text with everything a terminal could act on written out: C0 and C1 controls (ESC,
    CSI, BEL, ...), DEL, bidi overrides and other invisible format characters, line and
    paragraph separators. The backslash is doubled, so that an escape shown is one made here."""
    if text.isprintable() and "\\" not in text:
        return text  # (the common case, in C)
    return "".join(char if char.isprintable() and char != "\\" else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def cells(text: str) -> int:
    """Terminal cells the (escaped) text takes: wide East Asian characters two, combining ones
    none."""
    if text.isascii():
        return len(text)
    return sum(_cells(char) for char in text)


def _cells(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def clipped(text: str, width: int) -> str:
    """The longest start of the text that fits in `width` cells."""
    used = 0
    for index, char in enumerate(text):
        used += _cells(char)
        if used > width:
            return text[:index]
    return text


def took(seconds: float) -> str:
    """A duration with three significant digits in the unit that fits (`850 µs`, `12.3 ms`,
    `1.20 s`), its number right-aligned and its unit left-aligned, so that columns line up."""
    sign, value = ("-", -seconds) if seconds < 0 else ("", seconds)
    if round(value * 1e6) < 1000:
        number, unit = f"{value * 1e6:.0f}", "µs"
    elif value < 0.9995:
        number, unit = _three(value * 1e3), "ms"
    else:
        number, unit = _three(value), "s"
    return f"{sign + number:>4} {unit:<2}"


def _three(value: float) -> str:
    """A value of at least 1 with three significant digits (more above 999: no exponent)."""
    if value < 9.995:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 99.95 else f"{value:.0f}"


Segment = tuple[str, str]  # text (printable: escaped), SGR parameters ("" for none)


@dataclass
class Line:
    """A line in three parts: when it is too wide, the path is shortened first, so that the
    columns before it and the notes after it stay whole."""

    head: list[Segment]
    path: str
    notes: list[Segment] = field(default_factory=list)

    def text(self, colour: bool = False, width: int | None = None) -> str:
        parts = self.head + [(self.path, "")] + self.notes
        if width is not None and sum(cells(text) for text, _ in parts) > width:
            parts = self._fitted(parts, width)
        if not colour:
            return "".join(text for text, _ in parts)
        return "".join(f"\033[{sgr}m{text}\033[0m" if sgr else text for text, sgr in parts)

    def _fitted(self, parts: list[Segment], width: int) -> list[Segment]:
        around = sum(cells(text) for text, _ in self.head + self.notes)
        room = width - around - 1  # (one cell for the ellipsis)
        if room >= TARGET_MIN:
            return self.head + [(clipped(self.path, room) + "…", "")] + self.notes
        fitted: list[Segment] = []
        room = width - 1
        for text, sgr in parts:
            kept = clipped(text, room)
            fitted.append((kept, sgr))
            room -= cells(kept)
            if kept != text:
                break
        return fitted + [("…", "")]


class Columns:
    """The widths of the columns that depend on what is shown: they only grow, so that a line
    lines up with those before it."""

    def __init__(self) -> None:
        self.who = WHO_MIN
        self.number = 4

    def fields(
        self, number: int, ts: float, who: tuple[str, int], answers: int | None
    ) -> list[Segment]:
        """Number, time, caller → callee (`who`: text and width), and the request a response
        answers (`↩ N`)."""
        self.number = max(self.number, len(str(number)))
        pair, width = who
        if self.who < width <= WHO_MAX:
            self.who = width
        pair += " " * (self.who - width)
        reference = "" if answers is None else f"↩ {answers}"
        return [
            (f"{number:>{self.number}} ", ""),
            (clock(ts), DIM),
            (f" {pair}{GAP}{reference:>{self.number + 2}} ", ""),
        ]


def who(caller: str, callee: str, depth: int, request: bool) -> tuple[str, int]:
    """The caller → callee column, indented by depth, and its width in cells (measured by part:
    names are ASCII as a rule, and then measured in C)."""
    caller, callee = escaped(caller), escaped(callee)
    arrow = "→" if request else "←"
    width = 2 * depth + cells(caller) + 3 + cells(callee)
    return f"{'  ' * depth}{caller} {arrow} {callee}", width


def asked(method: str) -> list[Segment]:
    """A request's last columns: no duration, its method."""
    return [(" " * 7 + GAP + escaped(method) + " ", "")]


def answered(duration: float, code: int, reason: str) -> list[Segment]:
    """A response's last columns: the call's duration, its status coloured by class."""
    coloured = (f"{code} {escaped(reason)}", STATUS_COLOURS.get(code // 100, ""))
    return [(took(duration) + GAP, ""), coloured, (" ", "")]


def note(text: str) -> Segment:
    return (f"{GAP}[{escaped(text)}]", MAGENTA)


def line(message: FlowMessage, templates: bool = False, columns: Columns | None = None) -> Line:
    call = message.call
    shown = call.request if message.is_request else call.response
    assert shown is not None  # (a response message has one)
    answers = None if message.is_request or not call.numbers else call.numbers[0]
    pair = who(call.caller, call.callee, call.depth, message.is_request)
    head = (columns or Columns()).fields(message.number, shown.ts, pair, answers)
    if message.is_request:
        head += asked(call.request.method)
    else:
        assert call.response is not None and call.duration is not None
        head += answered(call.duration, call.response.status, call.response.reason)
    notes = []
    if message.is_request and call.note:
        notes.append(note(call.note))
    elif not shown.complete:
        notes.append(note("incomplete"))
    elif message.is_request and call.response is None:
        notes.append(note("no response"))
    return Line(head, escaped(target(call, templates)), notes)


def colour_wanted(tty: bool, environ: Mapping[str, str]) -> bool:
    """Colour on a terminal; never with NO_COLOR set (any value but empty); always with
    FORCE_COLOR set (but 0), for a pager that shows it (`| less -R`)."""
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    return tty and environ.get("TERM") != "dumb"


class Terminal:
    """Lines for a terminal or a pipe. On a terminal they are cut to its width and coloured (see
    `colour_wanted`); through a pipe they are whole and plain. When the reader goes away
    (`| head`), the rest is dropped and the run goes on: its files are still written."""

    def __init__(self, stream: TextIO, environ: Mapping[str, str] = os.environ) -> None:
        self.stream = stream
        self.gone = False
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):  # (no such method, or closed)
            self.tty = False
        self.colour = colour_wanted(self.tty, environ)

    def show(self, line: Line) -> None:
        # the width is asked each time: the window may have been resized
        width = shutil.get_terminal_size().columns if self.tty else None
        self.write(line.text(self.colour, width) + "\n")

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
        self.columns = Columns()

    def message(self, message: FlowMessage) -> None:
        self.out.show(line(message, self.templates, self.columns))
