"""What a run can write: one table of outputs, and the sinks a run hands the flow to.

An output is one entry: its name (also its option, `--har FILE`, when it has one), the files it
writes into an `-o` directory, how its sink opens, whether it shows bodies (their display is then
prepared once per message for all of them) and whether it shows what masking changes. The
command line's options and help, the `-o` file list and the wiring below all derive from it.

Secrets are masked here and only here: by a `Presenter` in this process, or by the output
process that `--jobs 2` starts (see `render.worker`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from . import owned, redact
from .atomic import OutputError
from .flow import Call
from .render import site
from .render.har import HarSink
from .render.html import HtmlSink
from .render.jsonl import JsonlSink
from .render.log import LogSink
from .render.markdown import TITLE, DocumentSink
from .render.otlp import OtlpSink
from .render.sink import FanOut, Presenter, Sink
from .render.split import SplitSink
from .render.worker import WorkerSink


@dataclass(frozen=True)
class Style:
    """How the documents read."""

    lang: str = "en"
    templates: bool = False  # paths as their API templates
    title: str = TITLE  # the page's
    base: str | None = None  # the snippets base of the mkdocs project being written (--mkdocs)


@dataclass(frozen=True)
class Output:
    name: str
    files: tuple[str, ...]  # what it writes into -o DIR (the first is its path); (): not there
    open: Callable[[str, Style], Sink]  # its sink, given its path (or URL)
    help: str | None = None  # its own option's help (one sentence); None: written with -o only
    metavar: str = "FILE"
    bodies: bool = False  # shows bodies
    masked: bool = True  # shows headers or bodies: takes calls with their secrets masked
    local: bool = False  # stays in this process with --jobs 2 (network calls and warnings)
    needs: tuple[str, str] | None = None  # a module it needs, and the extra that installs it
    page: bool = False  # part of a command's page: one per command (see `render.split`)


OUTPUTS = (
    Output(
        "documents",
        ("index.md", "body.md", "diagram.md"),
        lambda path, style: DocumentSink(
            os.path.dirname(path), style.lang, style.templates, style.title, style.base
        ),
        bodies=True,
        page=True,
    ),
    Output("log", ("log.md",), lambda path, style: LogSink(path), bodies=True, page=True),
    Output("calls", ("calls.jsonl",), lambda path, style: JsonlSink(path)),
    Output(
        "har",
        ("flow.har",),
        lambda path, style: HarSink(path),
        "Write the calls as HAR 1.2 to FILE",
    ),
    Output(
        "html",
        ("report.html",),
        lambda path, style: HtmlSink(path, style.templates),
        "Write the self-contained HTML report to FILE",
        bodies=True,
    ),
    Output(
        "otlp",
        (),
        lambda path, style: OtlpSink(path),
        "Write OpenTelemetry traces to FILE (OTLP/JSON, one export request per line)",
    ),
    Output(
        "otlp-endpoint",
        (),
        lambda url, style: OtlpSink(None, url),
        "POST the traces as OTLP/HTTP protobuf to URL (http://collector:4318/v1/traces)",
        metavar="URL",
        local=True,
        needs=("opentelemetry.proto", "otlp"),
    ),
)


def directory_files() -> list[str]:
    """The files -o writes, in the table's order."""
    return [name for output in OUTPUTS for name in output.files]


class Target(NamedTuple):
    output: Output
    path: str  # (or URL)
    writes: tuple[str, ...]  # the files it writes


@dataclass
class Chosen:
    """The outputs a run writes: everything in `directory` (in `directory/docs` of an mkdocs
    project there with `site`), and each output given its own file (by output name). A file
    this tool did not write is not overwritten unless `force` (see `owned`)."""

    directory: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    style: Style = Style()
    site: bool = False
    force: bool = False
    split: bool = True  # one page per command (see `render.split`)
    live: bool = False  # (each command's page written as soon as it ends)

    def pages(self) -> str | None:
        """Where the files of -o go."""
        if self.directory and self.site:
            return os.path.join(self.directory, "docs")
        return self.directory

    def targets(self) -> list[Target]:
        pages = self.pages()
        chosen = []
        for output in OUTPUTS:
            if pages and output.files and not (output.page and self.split):
                writes = tuple(os.path.join(pages, name) for name in output.files)
                chosen.append(Target(output, writes[0], writes))
            given = self.files.get(output.name)
            if given:
                chosen.append(Target(output, given, (given,) if output.metavar == "FILE" else ()))
        if pages and self.split:
            output = self._splitting([output for output in OUTPUTS if output.page])
            writes = tuple(os.path.join(pages, name) for name in output.files)
            chosen.insert(0, Target(output, writes[0], writes))
        return chosen

    def _splitting(self, outputs: list[Output]) -> Output:
        """The pages as one output: each command's in a folder of its own."""

        def open_pages(folder: str, style: Style) -> list[Sink]:
            return _open([Target(o, os.path.join(folder, o.files[0]), ()) for o in outputs], style)

        def open_split(path: str, style: Style) -> Sink:
            directory = os.path.dirname(path)
            return SplitSink(
                directory,
                lambda f: open_pages(f, style),
                style.title,
                self.force,
                self.live,
                style.base,
            )

        names = tuple(name for output in outputs for name in output.files)
        return Output("pages", names, open_split, bodies=True)

    def written(self) -> list[str]:
        """Every file the run writes."""
        project = site.project_files(self.directory) if self.directory and self.site else []
        return [path for target in self.targets() for path in target.writes] + project

    def open(self, show_secrets: bool = False, jobs: int = 1) -> list[Sink]:
        """The sinks of the chosen outputs, masking their calls unless `show_secrets`; with 2
        jobs, those that can are written by a second process."""
        mask = None if show_secrets else redact.call
        if self.directory and self.site:  # (its mkdocs.yml is written when the pages are)
            self.style = replace(self.style, base=self.pages())
        targets = self.targets()
        for target in targets:
            _check_needs(target.output)
        owned.check(self.written(), self.force)
        pages = self.pages()
        if pages and any(target.output.files for target in targets):
            _make_directory(pages)
        local = [t for t in targets if t.output.local or jobs < 2]
        apart = [t for t in targets if t not in local]
        sinks: list[Sink] = []
        try:
            if apart:
                sinks.append(WorkerSink(lambda: _open(apart, self.style), _bodies(apart), mask))
            if local:
                sinks.append(_presented(local, self.style, mask))
        except OutputError:
            for sink in sinks:
                sink.abort()
            raise
        return sinks

    def finish(self) -> None:
        """After the outputs are written: the mkdocs project around them, and the record of
        what this run wrote."""
        if self.directory and self.site:
            site.write_project(self.directory, self.style.title)
        owned.record(self.written())


def _bodies(targets: list[Target]) -> bool:
    return any(target.output.bodies for target in targets)


def _presented(targets: list[Target], style: Style, mask: Callable[[Call], Call] | None) -> Sink:
    """The sinks, behind a presenter that masks the calls for those that show secrets."""
    sinks = _open(targets, style)
    bodies = _bodies(targets)
    masked = [sink for sink, target in zip(sinks, targets, strict=True) if target.output.masked]
    if len(masked) == len(sinks):
        return Presenter(sinks, mask, bodies)
    rest = [sink for sink in sinks if sink not in masked]
    return FanOut([Presenter(masked, mask, bodies), Presenter(rest, None, bodies)])


def _open(targets: list[Target], style: Style) -> list[Sink]:
    """Open every sink; if one cannot be, none is left behind."""
    sinks: list[Sink] = []
    try:
        for target in targets:
            sinks.append(target.output.open(target.path, style))
    except OutputError:
        for sink in sinks:
            sink.abort()
        raise
    return sinks


def _check_needs(output: Output) -> None:
    if output.needs is None:
        return
    module, extra = output.needs
    try:
        importlib.import_module(module)
    except ImportError:
        raise OutputError(
            f"--{output.name} needs {module}: pip install 'osflow-sniff[{extra}]'"
        ) from None


def _make_directory(directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write to {directory}: {error.strerror}") from None
