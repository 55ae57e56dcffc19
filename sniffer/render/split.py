"""One page per command: the pages of each command (see `commands`) in a folder of its own,
numbered from 1, and an index of the commands above them.

Each command's pages are written into a hidden folder while its calls come, and the folder gets
its name when its title is known: when the command has ended (live, where the site grows as
you work) or at the end of the run. A run that found one command, and nothing in the
background (and, live, that did not write a folder yet), keeps the flat layout: its pages go
straight into the directory.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import owned
from ..atomic import AtomicFile, OutputError
from ..commands import Summary
from ..flow import Call, Command, FlowMessage
from ..stats import Stats
from . import inert
from .console import took
from .markdown import DocumentSink
from .selecting import Renumbering
from .sink import FanOut, Sink
from .site import snippet_prefix

INDEX = "index.md"
# live: seconds of capture time a command whose process has exited stays open, for its last
# calls still being ordered (see `correlate`)
QUIET = 2.0


@dataclass
class Group:
    """A command's pages while they are written."""

    key: tuple[int, str]  # its command's number, and for background work the service
    summary: Summary
    folder: str  # where they are written (hidden until done)
    sinks: FanOut
    shown: Renumbering = field(default_factory=Renumbering)
    open_calls: int = 0
    last: float = 0.0  # when its latest message came (capture time)
    name: str = ""  # its folder's name once done


class SplitSink(Sink):
    """Hands each command's calls to pages of its own, made by `open_pages(folder)`."""

    def __init__(
        self,
        directory: str,
        open_pages: Callable[[str], list[Sink]],
        title: str,
        force: bool = False,
        live: bool = False,
        base: str | None = None,
    ) -> None:
        self.directory = directory
        self.open_pages = open_pages
        self.title = title
        self.force = force
        self.live = live  # write each command's folder as soon as it ends
        self.base = base  # the snippets base, when known (see `site.snippet_prefix`)
        self.groups: dict[tuple[int, str], Group] = {}
        self.done: list[Group] = []
        self.now = 0.0  # the capture time of the latest message

    def message(self, message: FlowMessage) -> None:
        call = message.call
        shown = call.request if message.is_request else call.response
        if shown is not None:
            self.now = max(self.now, shown.ts)
        if self.live:
            self._finish_exited()
        group = self._group(call.command)
        group.last = self.now
        if message.is_request:
            group.open_calls += 1
        group.sinks.message(group.shown.message(message))

    def call(self, call: Call) -> None:
        group = self._group(call.command)
        view = group.shown.end(call)
        if view is not None:
            group.sinks.call(view)
            group.summary.add(view)
        group.open_calls -= 1
        if self.live:
            self._finish_exited()

    def tick(self, now: float) -> None:
        if self.live:
            self.now = max(self.now, now)
            self._finish_exited()

    def _finish_exited(self) -> None:
        """Live: the pages of each command whose process has exited and whose calls are out."""
        for group in list(self.groups.values()):
            pid = group.summary.command.pid
            quiet = self.now - group.last > QUIET
            if pid and quiet and not group.open_calls and not os.path.exists(f"/proc/{pid}"):
                self._finish(group, None)

    def close(self, stats: Stats) -> None:
        flat = len(self.groups) == 1 and not self.done
        for group in list(self.groups.values()):
            self._finish(group, stats, flat)
        if not flat:
            self._write_index()

    def abort(self) -> None:
        for group in self.groups.values():
            group.sinks.abort()
            shutil.rmtree(group.folder, ignore_errors=True)

    def _group(self, command: Command | None) -> Group:
        command = command or Command(0, "unknown")
        key = (command.number, command.client if command.background else "")
        group = self.groups.get(key)
        if group is None:
            folder = os.path.join(self.directory, f".{len(self.groups) + len(self.done) + 1}.part")
            shutil.rmtree(folder, ignore_errors=True)  # (left by a run that was killed)
            os.makedirs(folder)
            group = Group(key, Summary(command), folder, FanOut(self.open_pages(folder)))
            self.groups[key] = group
        return group

    def _finish(self, group: Group, stats: Stats | None, flat: bool = False) -> None:
        """The command's pages, closed and moved to where they belong."""
        group.name = "" if flat else self._folder_name(group)
        target = os.path.join(self.directory, group.name) if group.name else self.directory
        for sink in group.sinks.sinks:
            if isinstance(sink, DocumentSink):  # its page: titled, its includes from there
                sink.title = group.summary.title if not flat else self.title
                sink.prefix = snippet_prefix(target, self.base)
        group.sinks.close(stats or Stats())
        del self.groups[group.key]
        if flat:
            self._move_files(group.folder, self.directory)
            return
        self._move_folder(group.folder, target)
        self.done.append(group)
        if self.live:
            self._write_index()

    def _folder_name(self, group: Group) -> str:
        command = group.summary.command
        if command.background:
            name = f"background-{slug(command.client)}"
        else:
            name = f"{command.number:03d}-{slug(group.summary.title)}"
        taken = {done.name for done in self.done}
        more = next(n for n in range(1, len(taken) + 2) if f"{name}-{n}" not in taken)
        return name if name not in taken else f"{name}-{more}"  # (calls after it ended: live)

    def _move_files(self, folder: str, target: str) -> None:
        """(Files the run was allowed to write when it began: see `outputs.Chosen.open`.)"""
        for name in sorted(os.listdir(folder)):
            os.replace(os.path.join(folder, name), os.path.join(target, name))
        os.rmdir(folder)

    def _move_folder(self, folder: str, target: str) -> None:
        if os.path.isdir(target):  # a folder of an earlier run: replaced only if it is all ours
            names = [name for name in os.listdir(target) if name != owned.RECORD]
            owned.check((os.path.join(target, name) for name in names), self.force)
            shutil.rmtree(target)
        os.replace(folder, target)
        owned.record(os.path.join(target, name) for name in os.listdir(target))

    def _write_index(self) -> None:
        out = AtomicFile(os.path.join(self.directory, INDEX))
        try:
            out.write(listing(self.title, self.done))
        except OutputError:
            out.abort()
            raise
        out.commit()


def listing(title: str, groups: list[Group]) -> str:
    """The index of the commands: time, title (a link to its page), calls, errors, duration."""
    commands = [group for group in groups if not group.summary.command.background]
    background = [group for group in groups if group.summary.command.background]
    lines = [f"# {inert.heading(title)}", ""]
    if commands:
        lines += ["| # | time | command | calls | errors | duration |", "|---|---|---|---|---|---|"]
        lines += [_row(group, str(group.summary.command.number)) for group in commands]
        lines.append("")
    if background:
        lines += ["## Background", ""]
        lines += ["| | time | service | calls | errors | duration |", "|---|---|---|---|---|---|"]
        lines += [_row(group, "") for group in background]
        lines.append("")
    return "\n".join(lines)


def _row(group: Group, number: str) -> str:
    summary = group.summary
    when = datetime.fromtimestamp(summary.start, UTC).strftime("%H:%M:%S") if summary.start else ""
    duration = ""
    if summary.start is not None and summary.end is not None:
        duration = took(summary.end - summary.start).strip()
    name = summary.command.client if summary.command.background else summary.title
    link = f"[{_cell(name)}]({group.name}/{INDEX})"
    return f"| {number} | {when} | {link} | {summary.calls} | {summary.errors} | {duration} |"


def _cell(text: str) -> str:
    """Text for a table cell: inert, and no `|` to end the cell."""
    return inert.heading(text).replace("|", "&#124;")


def slug(text: str) -> str:
    """A folder name from a title: lower-case words joined by dashes, at most 60 characters."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:60].strip("-") or "command"
