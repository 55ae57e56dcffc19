"""The `osflow-sniff` command: wire capture files to the pipeline and the chosen outputs."""

from __future__ import annotations

import contextlib
import os
import re
import sys

import click

from . import __version__
from .pcapfile import CaptureError, CaptureReader, read_captures
from .pipeline import Options, Pipeline
from .render.console import ConsoleSink
from .render.jsonl import JsonlSink
from .render.log import LogSink
from .render.markdown import DocumentSink
from .render.sink import Sink
from .services import ServiceMap, ServicesFileError
from .stats import Stats

# exit codes: 0 clean, 1 failed (bad input, nothing processed), 2 bad usage (click's codes)
EXIT_WARNINGS = 3  # processed, but the capture was damaged (cut, truncated, with gaps)
EXIT_INTERRUPTED = 130
SIZE = re.compile(r"(\d+)\s*([kmg]i?b?)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`1048576`, `512K`, `1M`, `1MiB` -> bytes."""
    found = SIZE.fullmatch(text.strip())
    if not found:
        raise click.BadParameter(f"not a size: {text!r} (e.g. 65536, 512K, 1M)")
    unit = (found.group(2) or "")[:1].lower()
    return int(found.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]


def output_sinks(directory: str, lang: str) -> list[Sink]:
    try:
        os.makedirs(directory, exist_ok=True)
        return [
            DocumentSink(directory, lang),
            LogSink(os.path.join(directory, "log.md")),
            JsonlSink(os.path.join(directory, "calls.jsonl")),
        ]
    except OSError as error:
        raise click.ClickException(f"cannot write to {directory}: {error.strerror}") from None


def explain(stats: Stats) -> str | None:
    """Why a run found no call, in one line."""
    if stats.calls:
        return None
    if not stats.packets:
        return "no packets in the input"
    if not stats.connections:
        return "no TCP connections carrying data in the input"
    if stats.non_http_streams == stats.connections:
        return "no HTTP/1.1 found: every TCP connection carried something else (TLS?)"
    return "no complete HTTP/1.1 request found"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-r",
    "--read",
    "files",
    multiple=True,
    metavar="FILE",
    help="Read a pcap/pcapng capture (repeat to merge several in time order).",
)
@click.option(
    "-o",
    "--output",
    metavar="DIR",
    help="Write body.md, diagram.md, index.md, log.md and calls.jsonl into DIR.",
)
@click.option(
    "--max-body",
    default="1M",
    show_default=True,
    metavar="SIZE",
    help="Keep at most SIZE bytes of each body for display (framing is followed to "
    "the end regardless).",
)
@click.option(
    "--services",
    "services_file",
    metavar="FILE",
    help="TOML file naming services by port, address or path prefix.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "ko"]),
    default="en",
    show_default=True,
    help="Language of the document labels.",
)
@click.option(
    "--show-secrets",
    is_flag=True,
    help="Write tokens and passwords as captured (by default they are masked in every output).",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not print the flow on the terminal.")
@click.version_option(__version__, "-V", "--version")
def main(
    files: tuple[str, ...],
    output: str | None,
    max_body: str,
    services_file: str | None,
    lang: str,
    show_secrets: bool,
    quiet: bool,
) -> None:
    """Rebuild the call flow of OpenStack services from captured HTTP/1.1 traffic.

    \b
    osflow-sniff -r capture.pcap              the flow, one line per message
    osflow-sniff -r capture.pcap -o flow/     the documents, in flow/
    """
    if not files:
        raise click.UsageError("no input: give a capture with -r FILE")
    try:
        services = ServiceMap.load(services_file)
    except ServicesFileError as error:
        raise click.ClickException(str(error)) from None
    readers = [_open(path) for path in files]
    sinks: list[Sink] = [] if quiet else [ConsoleSink(sys.stdout)]
    if output:
        sinks += output_sinks(output, lang)
    options = Options(parse_size(max_body), services, show_secrets)
    pipeline = Pipeline(sinks, options)
    warnings: list[str] = []
    interrupted = False
    try:
        pipeline.run(read_captures(readers))
    except KeyboardInterrupt:
        interrupted = True  # keep what was read: the outputs are still written whole
    except CaptureError as error:
        warnings.append(f"{error}; processed what came before")
    stats = pipeline.finish()
    for reader in readers:
        reader.stream.close()
        if reader.truncated:
            warnings.append(f"{reader.path}: cut short mid-record; processed what came before")
    warnings += damage(stats)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(stats.summary(), err=True)
    reason = explain(stats)
    if reason:
        click.echo(f"note: {reason}", err=True)
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if warnings:
        sys.exit(EXIT_WARNINGS)


def damage(stats: Stats) -> list[str]:
    """What the capture lacked, as warnings: the flow is there, but not all of it."""
    found = []
    if stats.snapped_packets:
        found.append(
            f"{stats.snapped_packets} packets were cut by the snap length; their messages are "
            "incomplete (capture with a larger snap length, e.g. tcpdump -s 0)"
        )
    if stats.gaps:
        found.append(
            f"{stats.gap_bytes} bytes missing from TCP streams ({stats.gaps} gaps); "
            f"{stats.incomplete_calls} calls are incomplete"
        )
    return found


def _open(path: str) -> CaptureReader:
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed after the run
    except OSError as error:
        raise click.ClickException(f"{path}: {error.strerror}") from None
    try:
        return CaptureReader(path, stream)
    except CaptureError as error:
        with contextlib.suppress(OSError):
            stream.close()
        raise click.ClickException(str(error)) from None
