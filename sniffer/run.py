"""A run from start to end: frames from captures or an interface through the pipeline to the
outputs, stopped by the user or by itself, then reported (warnings, summary, exit code).

What cannot go on is raised as `Failure` (one line for the user); the command line shows it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .afpacket import CaptureUnavailable, LiveCapture
from .atomic import OutputError
from .decode import LINK_RAW
from .ebpf.owners import ConnectionReports, Unavailable
from .ebpf.plaintext import TlsReader
from .outputs import Chosen
from .pcapfile import CaptureError, CaptureReader, Frame, read_captures
from .pcapwriter import PcapWriter
from .pipeline import Options, Pipeline
from .procnet import SocketOwners
from .render.console import ConsoleSink
from .render.live import LiveView
from .render.sink import Sink
from .stats import Stats

# exit codes: 0 clean, 1 failed (bad input, nothing processed), 2 bad usage (click's codes)
EXIT_WARNINGS = 3  # processed, but the capture was damaged (cut, truncated, with gaps)
EXIT_INTERRUPTED = 130
LIVE_SLACK = 0.25  # live packets come in time order: documents need wait only this long
AUTO_JOBS_BYTES = 16_000_000


class Failure(Exception):
    """The run cannot go on: one line for the user."""


@dataclass
class Run:
    """What every run shares: its outputs and how it reads."""

    outputs: Chosen
    options: Options
    quiet: bool = False
    show_secrets: bool = False
    jobs: int = 1

    def sinks(self) -> list[Sink]:
        try:
            return self.outputs.open(self.show_secrets, self.jobs)
        except OutputError as error:
            raise Failure(str(error)) from None

    def finish(self) -> None:
        """The outputs are written: what goes around them."""
        try:
            self.outputs.finish()
        except (OutputError, OSError) as error:
            raise Failure(str(error)) from None


def default_jobs(files: tuple[str, ...]) -> int:
    """Two processes where a second CPU is free to use and the work repays starting one (about
    0.1 s): live, where the capture loop must keep up with the traffic, or captures this large."""
    size = 0
    for path in files:
        with contextlib.suppress(OSError):  # an unreadable file is reported when opened
            size += os.path.getsize(path)
    large = not files or size >= AUTO_JOBS_BYTES
    return 2 if large and len(os.sched_getaffinity(0)) >= 2 else 1


def run_offline(run: Run, files: tuple[str, ...], offsets: dict[str, float]) -> int:
    readers = [open_capture(path, offsets.get(path, 0.0)) for path in files]
    templates = run.outputs.style.templates
    sinks: list[Sink] = [] if run.quiet else [ConsoleSink(sys.stdout, templates)]
    sinks += run.sinks()
    pipeline = Pipeline(sinks, run.options)
    warnings: list[str] = []
    stop = Interrupt()
    progress = Progress(pipeline.stats, readers) if sys.stderr.isatty() and not run.quiet else None
    with writing(pipeline), stop_signals(stop.request):
        try:
            frames = stop.until(read_captures(readers))
            pipeline.run(progress.follow(frames) if progress else frames)
        except CaptureError as error:
            warnings.append(f"{error}; processed what came before")
        if progress:
            progress.done()
        stats = pipeline.finish()
    run.finish()
    for reader in readers:
        reader.stream.close()
        if reader.truncated:
            warnings.append(f"{reader.path}: cut short mid-record; processed what came before")
    return report(stats, warnings + damage(stats) + pipeline.warnings(), stop.requested)


@dataclass
class Live:
    """Where and what a live run captures, and when it ends by itself."""

    interface: str
    expression: str | None = None
    buffer: int = 256 << 20
    write_file: str | None = None  # -w: the packets saved as a pcap
    calls: int | None = None
    seconds: float | None = None
    ebpf: bool = True  # the kernel reports who opens each connection (else /proc alone)
    tls_libraries: tuple[str, ...] = ()  # where TLS plaintext is read (none given: ldconfig's)
    requested: bool = False  # the user asked to stop

    def reached(self, stats: Stats, elapsed: float) -> bool:
        return (
            self.requested
            or (self.calls is not None and stats.calls >= self.calls)
            or (self.seconds is not None and elapsed >= self.seconds)
        )


def run_live(run: Run, live: Live) -> int:
    sinks = run.sinks()  # first: a forked output worker must not hold the capture socket
    try:
        capture = LiveCapture(live.interface, live.expression, live.buffer)
    except CaptureUnavailable as error:
        for sink in sinks:
            sink.abort()
        raise Failure(str(error)) from None
    owners = SocketOwners()
    reports = connection_reports(owners) if live.ebpf else None
    tls = tls_reader(live.tls_libraries) if reports is not None else None  # (said once, above)
    try:
        return capture_live(run, live, capture, sinks, owners, tls)
    finally:
        if tls is not None:
            tls.close()
        if reports is not None:
            reports.close()


def connection_reports(owners: SocketOwners) -> ConnectionReports | None:
    """The kernel reporting who opens each connection from now on (eBPF), and /proc read once
    for those open already; without eBPF, one line says why, and /proc names processes."""
    try:
        reports = ConnectionReports(owners)
    except Unavailable as reason:
        _say(f"osflow-sniff: eBPF unavailable ({reason}); naming processes from /proc")
        return None
    owners.remember_open()
    return reports


def tls_reader(libraries: tuple[str, ...] = ()) -> TlsReader | None:
    """The plaintext of TLS connections, from libssl (eBPF uprobes); without it, one line."""
    try:
        return TlsReader(libraries or None)
    except Unavailable as reason:
        _say(f"osflow-sniff: TLS plaintext unavailable ({reason}); TLS connections stay unread")
        return None


def capture_live(
    run: Run,
    live: Live,
    capture: LiveCapture,
    sinks: list[Sink],
    owners: SocketOwners,
    tls: TlsReader | None = None,
) -> int:
    options = run.options
    status = sys.stderr if sys.stderr.isatty() else None
    view = None if run.quiet else LiveView(sys.stdout, status, options.selection)
    options.slack, options.owners = LIVE_SLACK, owners
    options.progress = view.progress if view else None
    pipeline = Pipeline(sinks, options)
    writer = _writer(live.write_file)
    filtered = f", filter: {live.expression}" if live.expression else ""
    _say(f"listening on {live.interface}{filtered} (Ctrl-C to stop)")

    def read_tls() -> None:  # what the libraries handled before the next packet is read
        for piece in tls.drain() if tls is not None else ():
            pipeline.plaintext(piece)

    def request_stop(signum: int, frame: object) -> None:
        live.requested = True
        capture.stop(drain=True)

    started = time.monotonic()
    with writing(pipeline, writer):
        with stop_signals(request_stop):
            for frame in capture.read_ahead(options.owners):
                read_tls()
                if frame is not None:
                    if writer is not None:
                        writer.write(frame)
                    pipeline.feed(frame)
                else:
                    pipeline.tick(time.time())
                if live.reached(pipeline.stats, time.monotonic() - started):
                    capture.stop()
                if view is not None and view.due(time.monotonic()):
                    view.show_status(
                        f"{pipeline.stats.packets} packets, {pipeline.stats.calls} calls, "
                        f"{capture.statistics()[1]} dropped by the kernel"
                    )
        read_tls()
        stats = pipeline.finish()
        if view is not None:
            view.done()
        if writer is not None:
            writer.close()
    run.finish()
    _, drops = capture.statistics()
    warnings = damage(stats)
    if drops:
        warnings.insert(0, f"the kernel dropped {drops} packets (raise -B, or narrow the filter)")
    lost = tls.lost() if tls is not None else 0
    if lost:
        warnings.insert(0, f"{lost} pieces of TLS plaintext were lost (the reader fell behind)")
    _say(f"{stats.packets} packets captured, {drops} dropped by the kernel")
    return report(stats, warnings + pipeline.warnings(), False)


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
            raise Failure(str(error)) from None
        if os.environ.get("OSFLOW_DEBUG"):
            raise
        raise Failure(
            f"internal error: {type(error).__name__}: {error} (a bug: please report it, "
            "with the capture if you can share it)"
        ) from None


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
        _say(
            f"\r\033[K{self.stats.packets} packets, {read / 1e6:.1f} of {self.total / 1e6:.1f} MB"
            f"{percent}, {self.stats.calls} calls",
            end="",
        )

    def done(self) -> None:
        _say("\r\033[K", end="")


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


def explain(stats: Stats) -> str | None:
    """Why a run found no call, in one line."""
    if stats.calls:
        return None
    if not stats.packets:
        return "no packets in the input"
    if not stats.connections:
        return "no TCP connections carrying data in the input"
    if stats.encrypted_streams == stats.connections:
        return "no HTTP/1.1 found: every TCP connection was TLS, and its plaintext not read"
    if stats.non_http_streams + stats.encrypted_streams == stats.connections:
        return "no HTTP/1.1 found: every TCP connection carried something else"
    return "no complete HTTP/1.1 request found"


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
        _say(f"warning: {warning}")
    _say(stats.summary())
    reason = explain(stats)
    if reason:
        _say(f"note: {reason}")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_WARNINGS if warnings else 0


def _say(text: str, end: str = "\n") -> None:
    sys.stderr.write(text + end)
    sys.stderr.flush()


def open_capture(path: str, offset: float = 0.0) -> CaptureReader:
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed after the run
    except OSError as error:
        raise Failure(f"{path}: {error.strerror}") from None
    try:
        return CaptureReader(path, stream, offset)
    except CaptureError as error:
        with contextlib.suppress(OSError):
            stream.close()
        raise Failure(str(error)) from None


def _writer(path: str | None) -> PcapWriter | None:
    if path is None:
        return None
    try:
        return PcapWriter(path, LINK_RAW)
    except OSError as error:
        raise Failure(f"cannot write {path}: {error.strerror}") from None
