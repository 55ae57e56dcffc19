"""The `osflow-sniff` command: wire capture files to the pipeline and the chosen outputs."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import click

from . import __version__, redact
from .afpacket import CaptureUnavailable, LiveCapture
from .atomic import OutputError
from .correlate import MAX_WAIT
from .decode import LINK_RAW, Undecodable, decode
from .filters import IgnoreFileError, Selection, load_ignore
from .flow import Endpoint
from .pcapfile import CaptureError, CaptureReader, Frame, read_captures
from .pcapwriter import PcapWriter
from .pipeline import Options, Pipeline
from .procnet import SocketOwners
from .render.console import ConsoleSink
from .render.har import HarSink
from .render.html import HtmlSink
from .render.jsonl import JsonlSink
from .render.live import LiveView
from .render.log import LogSink
from .render.markdown import DocumentSink
from .render.otlp import OtlpSink
from .render.sink import Sink
from .render.worker import WorkerSink
from .services import ServiceMap, ServicesFileError
from .stats import Stats

# exit codes: 0 clean, 1 failed (bad input, nothing processed), 2 bad usage (click's codes)
EXIT_WARNINGS = 3  # processed, but the capture was damaged (cut, truncated, with gaps)
EXIT_INTERRUPTED = 130
LIVE_SLACK = 0.25  # live packets come in time order: documents need wait only this long
SIZE = re.compile(r"(\d+)\s*([kmg]i?b?)?", re.IGNORECASE)


AUTO_JOBS_BYTES = 16_000_000


def parse_size(text: str) -> int:
    """`1048576`, `512K`, `1M`, `1MiB` -> bytes."""
    found = SIZE.fullmatch(text.strip())
    if not found:
        raise click.BadParameter(f"not a size: {text!r} (e.g. 65536, 512K, 1M)")
    unit = (found.group(2) or "")[:1].lower()
    return int(found.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]


@dataclass
class Outputs:
    """Where the flow goes and how it reads."""

    directory: str | None
    lang: str
    templates: bool
    quiet: bool
    har: str | None = None
    html: str | None = None
    otlp: str | None = None
    otlp_endpoint: str | None = None

    def open(self, jobs: int = 1, masked: bool = True) -> list[Sink]:
        """The file outputs; with 2 jobs, written by a second process (see render.worker),
        which also masks the secrets."""
        writes_files = self.directory or self.har or self.html or self.otlp
        if jobs < 2 or not writes_files or self.otlp_endpoint:
            return self.files()  # (an endpoint's network calls and warnings stay here)
        displays = bool(self.directory or self.html)
        try:
            return [WorkerSink(self.files, displays, redact.call if masked else None)]
        except OutputError as error:
            raise click.ClickException(str(error)) from None

    def files(self) -> list[Sink]:
        """Open every file output; if one cannot be, none is left behind."""
        makers: list[Callable[[], Sink]] = []
        if self.directory:
            directory, lang, templates = self.directory, self.lang, self.templates
            makers = [
                lambda: DocumentSink(directory, lang, templates),
                lambda: LogSink(os.path.join(directory, "log.md")),
                lambda: JsonlSink(os.path.join(directory, "calls.jsonl")),
                lambda: HarSink(os.path.join(directory, "flow.har")),
                lambda: HtmlSink(os.path.join(directory, "report.html")),
            ]
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as error:
                raise click.ClickException(
                    f"cannot write to {directory}: {error.strerror}"
                ) from None
        if self.har:
            makers.append(lambda: HarSink(self.har))
        if self.html:
            makers.append(lambda: HtmlSink(self.html))
        if self.otlp or self.otlp_endpoint:
            makers.append(lambda: OtlpSink(self.otlp, self.otlp_endpoint))
        sinks: list[Sink] = []
        try:
            for make in makers:
                sinks.append(make())
        except OutputError as error:
            for sink in sinks:
                sink.abort()
            raise click.ClickException(str(error)) from None
        return sinks


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
    "-i",
    "--interface",
    metavar="IFACE",
    help="Capture live on an interface (lo, eth0, any); needs root or CAP_NET_RAW.",
)
@click.option(
    "-o",
    "--output",
    metavar="DIR",
    help="Write body.md, diagram.md, index.md, log.md and calls.jsonl into DIR.",
)
@click.option(
    "-w",
    "--write",
    "write_file",
    metavar="FILE",
    help="Live: also save the captured packets as a pcap (raw, secrets included).",
)
@click.option("-c", "--count", type=click.IntRange(1), help="Live: stop after N calls.")
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    metavar="S",
    help="Live: stop after S seconds.",
)
@click.option(
    "-B",
    "--buffer-size",
    "buffer_mib",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    metavar="MiB",
    help="Live: kernel receive buffer.",
)
@click.option(
    "--max-body",
    default="1M",
    show_default=True,
    metavar="SIZE",
    help="Keep at most SIZE bytes of each body for display (framing is followed to the end "
    "regardless).",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(0, min_open=True),
    default=MAX_WAIT,
    show_default=True,
    metavar="S",
    help="Number a call still unanswered after S seconds (capture time) without waiting for "
    "its response, so that the calls after it are not held back.",
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
@click.option(
    "--ignore",
    "ignore_file",
    metavar="FILE",
    help="Drop the calls matching the filters of a requestshook ignore file (JSON).",
)
@click.option(
    "--only-service",
    multiple=True,
    metavar="NAME",
    help="Show only the calls NAME makes or serves (repeatable).",
)
@click.option(
    "--exclude-service",
    multiple=True,
    metavar="NAME",
    help="Drop the calls NAME makes or serves, and theirs (repeatable).",
)
@click.option(
    "--exclude-path",
    multiple=True,
    metavar="REGEX",
    help="Drop the calls whose path matches REGEX, and theirs (repeatable).",
)
@click.option(
    "--clock-offset",
    "clock_offsets",
    multiple=True,
    metavar="FILE=SECONDS",
    help="Correct the clock of one -r capture (a host's clock was off by -SECONDS).",
)
@click.option("--har", "har_file", metavar="FILE", help="Write the calls as HAR 1.2 to FILE.")
@click.option(
    "--html",
    "html_file",
    metavar="FILE",
    help="Write the self-contained HTML report to FILE (report.html is always written with -o).",
)
@click.option(
    "--otlp",
    "otlp_file",
    metavar="FILE",
    help="Write OpenTelemetry traces to FILE (OTLP/JSON, one export request per line).",
)
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    help="POST the traces as OTLP/HTTP protobuf to URL (http://collector:4318/v1/traces).",
)
@click.option(
    "--template-ids",
    is_flag=True,
    help="Show paths as their API templates in diagrams and headings (/v2/images/{image_id}).",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not print the flow on the terminal.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 2),
    metavar="N",
    help="2 writes the outputs in a second process, on a second core; 1 does all in one "
    "[default: 2 where two CPUs are available, live or for captures of 16 MB or more]",
)
@click.argument("expression", nargs=-1)
@click.version_option(__version__, "-V", "--version")
def main(
    files: tuple[str, ...],
    interface: str | None,
    output: str | None,
    write_file: str | None,
    count: int | None,
    duration: float | None,
    buffer_mib: int,
    max_body: str,
    max_wait: float,
    services_file: str | None,
    lang: str,
    show_secrets: bool,
    quiet: bool,
    ignore_file: str | None,
    only_service: tuple[str, ...],
    exclude_service: tuple[str, ...],
    exclude_path: tuple[str, ...],
    clock_offsets: tuple[str, ...],
    har_file: str | None,
    html_file: str | None,
    otlp_file: str | None,
    otlp_endpoint: str | None,
    template_ids: bool,
    jobs: int | None,
    expression: tuple[str, ...],
) -> None:
    """Rebuild the call flow of OpenStack services from HTTP/1.1 traffic.

    \b
    osflow-sniff -r capture.pcap              the flow of a capture, one line per message
    osflow-sniff -r capture.pcap -o flow/     the documents, in flow/
    osflow-sniff -i lo -o flow/ port 80       live; Ctrl-C writes the documents

    EXPRESSION (live only) is a tcpdump filter, applied in the kernel.
    """
    if bool(files) == bool(interface):
        raise click.UsageError("give a capture with -r FILE, or an interface with -i IFACE")
    if files and (expression or write_file or count or duration):
        raise click.UsageError("a filter expression, -w, -c and --duration apply to -i only")
    if interface and clock_offsets:
        raise click.UsageError("--clock-offset applies to -r captures")
    try:
        services = ServiceMap.load(services_file)
    except ServicesFileError as error:
        raise click.ClickException(str(error)) from None
    options = Options(parse_size(max_body), services, show_secrets)
    options.max_wait = max_wait
    options.selection = selection(ignore_file, only_service, exclude_service, exclude_path)
    if otlp_endpoint:
        try:
            import opentelemetry.proto  # noqa: F401
        except ImportError:
            raise click.ClickException(
                "--otlp-endpoint needs opentelemetry-proto: pip install 'osflow-sniff[otlp]'"
            ) from None
    outputs = Outputs(
        output, lang, template_ids, quiet, har_file, html_file, otlp_file, otlp_endpoint
    )
    if files:
        jobs = jobs or default_jobs(files)
        code = run_offline(files, outputs, options, parse_offsets(clock_offsets, files), jobs)
    else:
        code = run_live(
            interface,
            " ".join(expression) or None,
            buffer_mib << 20,
            write_file,
            Stop(count, duration),
            outputs,
            options,
            jobs or default_jobs(()),
        )
    sys.exit(code)


def default_jobs(files: tuple[str, ...]) -> int:
    """Two processes where a second CPU is free to use and the work repays starting one (about
    0.1 s): live, where the capture loop must keep up with the traffic, or captures this large."""
    size = 0
    for path in files:
        with contextlib.suppress(OSError):  # an unreadable file is reported when opened
            size += os.path.getsize(path)
    large = not files or size >= AUTO_JOBS_BYTES
    return 2 if large and len(os.sched_getaffinity(0)) >= 2 else 1


def selection(
    ignore_file: str | None,
    only: tuple[str, ...],
    exclude: tuple[str, ...],
    paths: tuple[str, ...],
) -> Selection:
    try:
        rules = load_ignore(ignore_file) if ignore_file else []
        patterns = tuple(re.compile(path) for path in paths)
    except IgnoreFileError as error:
        raise click.ClickException(str(error)) from None
    except re.error as error:
        raise click.BadParameter(f"--exclude-path: {error}") from None
    return Selection(rules, frozenset(only), frozenset(exclude), patterns)


def parse_offsets(texts: tuple[str, ...], files: tuple[str, ...]) -> dict[str, float]:
    """`FILE=SECONDS` for captures given with -r."""
    offsets = {}
    for text in texts:
        path, _, seconds = text.rpartition("=")
        if path not in files:
            raise click.BadParameter(f"{text!r}: FILE must be one of the -r captures")
        try:
            offsets[path] = float(seconds)
        except ValueError:
            raise click.BadParameter(f"{text!r}: SECONDS must be a number") from None
    return offsets


@contextlib.contextmanager
def writing(pipeline: Pipeline, writer: PcapWriter | None = None) -> Iterator[None]:
    """An output that cannot be written ends the run with one line and no partial file; the
    packets saved so far (-w) are kept. So does a bug, named as one (OSFLOW_DEBUG=1: with its
    traceback)."""
    try:
        yield
    except Exception as error:
        pipeline.abort()
        if writer is not None:
            with contextlib.suppress(OutputError):
                writer.close()
        if isinstance(error, OutputError):
            raise click.ClickException(str(error)) from None
        if os.environ.get("OSFLOW_DEBUG"):
            raise
        raise click.ClickException(
            f"internal error: {type(error).__name__}: {error} (a bug: please report it, "
            "with the capture if you can share it)"
        ) from None


def run_offline(
    files: tuple[str, ...],
    outputs: Outputs,
    options: Options,
    offsets: dict[str, float],
    jobs: int = 1,
) -> int:
    readers = [_open(path, offsets.get(path, 0.0)) for path in files]
    sinks: list[Sink] = [] if outputs.quiet else [ConsoleSink(sys.stdout, outputs.templates)]
    sinks += outputs.open(jobs, not options.show_secrets)
    pipeline = Pipeline(sinks, options)
    warnings: list[str] = []
    stop = Interrupt()
    progress = (
        Progress(pipeline.stats, readers) if sys.stderr.isatty() and not outputs.quiet else None
    )
    with writing(pipeline), stop_signals(stop.request):
        try:
            frames = stop.until(read_captures(readers))
            pipeline.run(progress.follow(frames) if progress else frames)
        except CaptureError as error:
            warnings.append(f"{error}; processed what came before")
        if progress:
            progress.done()
        stats = pipeline.finish()
    for reader in readers:
        reader.stream.close()
        if reader.truncated:
            warnings.append(f"{reader.path}: cut short mid-record; processed what came before")
    return report(stats, warnings + damage(stats) + pipeline.warnings(), stop.requested)


class Progress:
    """A progress line on a terminal while large captures are read: packets, bytes, calls."""

    def __init__(self, stats: Stats, readers: list[CaptureReader]) -> None:
        self.stats = stats
        self.readers = readers
        self.total = sum(os.fstat(reader.stream.fileno()).st_size for reader in readers)
        self.next = time.monotonic() + 0.5

    def follow(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        for count, frame in enumerate(frames):
            if not count % 2048 and time.monotonic() >= self.next:
                self.next = time.monotonic() + 0.25
                self.show()
            yield frame

    def show(self) -> None:
        read = sum(reader.stream.tell() for reader in self.readers)
        percent = f" ({100 * read / self.total:.0f}%)" if self.total else ""
        click.echo(
            f"\r\033[K{self.stats.packets} packets, {read / 1e6:.1f} of {self.total / 1e6:.1f} MB"
            f"{percent}, {self.stats.calls} calls",
            err=True,
            nl=False,
        )

    def done(self) -> None:
        click.echo("\r\033[K", err=True, nl=False)


@contextlib.contextmanager
def stop_signals(handler: Callable[[int, object], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM (as PID 1 of a container) go to `handler` for the duration."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)


class Interrupt:
    """Ctrl-C or SIGTERM while reading a capture: reading stops before the next frame and the
    run ends as usual, outputs written whole. A flag rather than an exception, so that no
    output is left mid-message."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, signum: int, frame: object) -> None:
        self.requested = True

    def until(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        for frame in frames:
            if self.requested:
                return
            yield frame


@dataclass
class Stop:
    """When a live capture ends by itself."""

    calls: int | None
    seconds: float | None
    requested: bool = False

    def reached(self, stats: Stats, elapsed: float) -> bool:
        return (
            self.requested
            or (self.calls is not None and stats.calls >= self.calls)
            or (self.seconds is not None and elapsed >= self.seconds)
        )


def run_live(
    interface: str,
    expression: str | None,
    buffer: int,
    write_file: str | None,
    stop: Stop,
    outputs: Outputs,
    options: Options,
    jobs: int = 1,
) -> int:
    # first: a forked output worker must not hold the capture socket
    sinks = outputs.open(jobs, not options.show_secrets)
    try:
        live = LiveCapture(interface, expression, buffer)
    except CaptureUnavailable as error:
        for sink in sinks:
            sink.abort()
        raise click.ClickException(str(error)) from None
    status = sys.stderr if sys.stderr.isatty() else None
    view = None if outputs.quiet else LiveView(sys.stdout, status, options.selection)
    options.slack, options.owners = LIVE_SLACK, SocketOwners()
    options.progress = view.progress if view else None
    pipeline = Pipeline(sinks, options)
    writer = _writer(write_file)
    click.echo(
        f"listening on {interface}"
        + (f", filter: {expression}" if expression else "")
        + " (Ctrl-C to stop)",
        err=True,
    )

    def request_stop(signum: int, frame: object) -> None:
        stop.requested = True
        live.stop(drain=True)

    started = time.monotonic()
    with writing(pipeline, writer):
        with stop_signals(request_stop):
            for frame in _read_ahead(live, options.owners):
                if frame is not None:
                    if writer is not None:
                        writer.write(frame)
                    pipeline.feed(frame)
                else:
                    pipeline.tick(time.time())
                if stop.reached(pipeline.stats, time.monotonic() - started):
                    live.stop()
                if view is not None and view.due(time.monotonic()):
                    view.show_status(
                        f"{pipeline.stats.packets} packets, {pipeline.stats.calls} calls, "
                        f"{live.statistics()[1]} dropped by the kernel"
                    )
        stats = pipeline.finish()
        if view is not None:
            view.done()
        if writer is not None:
            writer.close()
    _, drops = live.statistics()
    warnings = damage(stats)
    if drops:
        warnings.insert(0, f"the kernel dropped {drops} packets (raise -B, or narrow the filter)")
    click.echo(f"{stats.packets} packets captured, {drops} dropped by the kernel", err=True)
    return report(stats, warnings + pipeline.warnings(), False)


def _read_ahead(live: LiveCapture, owners: SocketOwners | None) -> Iterator[Frame | None]:
    """Frames from a reader thread, which asks for the owners of a connection's sockets the
    moment its SYN arrives (a short-lived client may be gone by the time the SYN is analysed)."""
    frames: queue.SimpleQueue[Frame | None | bool] = queue.SimpleQueue()

    def read() -> None:
        try:
            for frame in live.frames():
                if frame is not None and owners is not None:
                    opening = _syn(frame)
                    if opening is not None:
                        owners.prefetch(*opening)
                frames.put(frame)
        finally:
            frames.put(False)

    sys.setswitchinterval(0.0005)  # let the reader and the lookups in quickly
    threading.Thread(target=read, daemon=True).start()
    while True:
        try:
            frame = frames.get(timeout=0.2)
        except queue.Empty:
            continue
        if frame is False:
            return
        yield frame


def _syn(frame: Frame) -> tuple[Endpoint, Endpoint] | None:
    """The two ends of a connection opening (SYN without ACK), else None."""
    data = frame.data
    tcp = (data[0] & 0x0F) * 4 if data[0] >> 4 == 4 else 40
    if len(data) < tcp + 14 or data[tcp + 13] & 0x12 != 0x02:
        return None
    try:
        segment = decode(frame.ts, LINK_RAW, data, frame.wirelen)
    except (Undecodable, IndexError, ValueError, OSError):
        return None
    return (segment.src, segment.sport), (segment.dst, segment.dport)


def _writer(path: str | None) -> PcapWriter | None:
    if path is None:
        return None
    try:
        return PcapWriter(path, LINK_RAW)
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None


def damage(stats: Stats) -> list[str]:
    """What the capture lacked, as warnings: the flow is there, but not all of it."""
    found = []
    if stats.snapped_packets:
        found.append(
            f"{stats.snapped_packets} packets were cut by the snap length; their messages are "
            "incomplete (capture with a larger snap length, e.g. tcpdump -s 0)"
        )
    if stats.late_hops:
        found.append(
            f"{stats.late_hops} hops came after their call had ended and are shown as calls of "
            "their own: are the captures' clocks aligned? (--clock-offset FILE=SECONDS)"
        )
    if stats.gaps:
        found.append(
            f"{stats.gap_bytes} bytes missing from TCP streams ({stats.gaps} gaps); "
            f"{stats.incomplete_calls} calls are incomplete"
        )
    return found


def report(stats: Stats, warnings: list[str], interrupted: bool) -> int:
    """Print warnings and the summary; the exit code."""
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(stats.summary(), err=True)
    reason = explain(stats)
    if reason:
        click.echo(f"note: {reason}", err=True)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_WARNINGS if warnings else 0


def _open(path: str, offset: float = 0.0) -> CaptureReader:
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed after the run
    except OSError as error:
        raise click.ClickException(f"{path}: {error.strerror}") from None
    try:
        return CaptureReader(path, stream, offset)
    except CaptureError as error:
        with contextlib.suppress(OSError):
            stream.close()
        raise click.ClickException(str(error)) from None
