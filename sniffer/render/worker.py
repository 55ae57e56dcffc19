"""Outputs written by a second process: `--jobs 2` puts the flow's formatting on another core.

The main process reads, reassembles, parses and correlates; a forked worker masks the secrets,
formats and writes the files (on captures with large bodies that is half the work). The
largest single cost of the documents, making bodies ready for display (decoded, JSON indented),
goes to whichever process has time: when the worker falls behind (batches pile up for it), this
side masks the calls of the next batches and prepares their bodies.

Events cross a pipe in pickled batches: a call crosses once, with its first message, and later
events name it by its key (a call names its parent by key too, so that a pickle never drags a
parent's bodies along). A thread sends the batches, so that the main process does not stop each
time the worker is busy for a moment, and the bounded queue before it bounds what is in flight: a
slow disk slows the reader instead of filling memory. The pipe is widened to hold a whole batch,
and written and read through memoryviews: no copy of a batch on either side.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from multiprocessing.connection import Connection

from ..atomic import OutputError
from ..content import display
from ..flow import Call, FlowMessage
from ..stats import Stats
from .sink import MaskedCopies, Presenter, Sink
from .text import parts

BATCH_BYTES = 256 << 10  # body bytes per batch: few system calls, little held in flight
BATCH_EVENTS = 256
IN_FLIGHT = 32  # batches made and not yet sent: room for either process to run ahead
BEHIND = IN_FLIGHT // 4  # batches waiting past this: the worker is the slower process
MESSAGE, CALL, CLOSE, ABORT, TICK = range(5)
TICKS = 1.0  # seconds between the ticks that cross (live, without traffic)
PIPE_BYTES = 1 << 20  # a batch in one write, not in the default pipe's 64 KiB steps


def portable(call: Call) -> Call:
    """A call as it crosses: its message numbers are filled in over there."""
    return replace(call, numbers=[])


def _size(call: Call) -> int:
    return sum(
        len(hop.request.body.data) + (len(hop.response.body.data) if hop.response else 0)
        for hop in call.hops
    )


class WorkerSink(Sink):
    """Runs the sinks that `open_sinks` makes in a forked worker process (which opens their
    files itself: nothing buffered here is inherited twice); this side forwards the flow."""

    def __init__(
        self,
        open_sinks: Callable[[], Iterable[Sink]],
        displays: bool = True,
        mask: Callable[[Call], Call] | None = None,
    ) -> None:
        context = multiprocessing.get_context("fork")
        self.pipe, theirs = context.Pipe()  # the worker's answers
        feed, self.feed = os.pipe()  # the batches, one way, without copies on either side
        widen = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only: elsewhere, in more steps
        with contextlib.suppress(OSError):  # (a user's pipe quota spent: the default size)
            if widen is not None:
                fcntl.fcntl(self.feed, widen, PIPE_BYTES)
        self.worker = context.Process(
            target=_serve,
            args=(feed, theirs, (self.pipe, self.feed), open_sinks, mask, displays),
            daemon=True,
        )
        self.worker.start()
        theirs.close()
        os.close(feed)
        # if this process ends without close or abort (a bug's traceback, an early Ctrl-C), hang
        # up before multiprocessing joins the worker: it then drops its files and ends, instead
        # of waiting for events forever
        atexit.register(self._hang_up)
        self._result()  # "ready", or why the files could not be opened
        # call key -> the revision that crossed, from its first message to its end
        self.crossed: dict[int, int] = {}
        self.batch: list[tuple] = []
        self.batch_bytes = 0
        self.reported: list[str] = []
        self.displays = displays  # whether the sinks show bodies (the documents, the log)
        self.helping = False  # whether this side prepares the bodies' display for now
        self.ticked = 0.0
        # masking secrets is the worker's job too; this side masks the calls it helps with
        self.masked = MaskedCopies(mask) if mask is not None else None
        self.outbox: queue.Queue[bytes | None] = queue.Queue(IN_FLIGHT)
        self.lost = threading.Event()  # a send failed: the worker is gone
        self.sender = threading.Thread(target=self._send, name="output-feed", daemon=True)
        self.sender.start()  # (after the fork: the worker has no copy of it)

    def message(self, message: FlowMessage) -> None:
        call = message.call
        shown = self._view(call) if self.helping else call
        key = call.key
        crossing = None
        if self.crossed.get(key) != call.revision:  # new, or its hops changed since
            self.crossed[key] = call.revision
            crossing = portable(shown)
            self.batch_bytes += _size(call)
        block = None
        if self.helping:
            block = display(parts(FlowMessage(message.number, message.kind, shown))[1])
            self.batch_bytes += len(block[1])
        masked = shown is not call
        self._queue((MESSAGE, key, message.number, message.kind, crossing, masked, block))

    def tick(self, now: float) -> None:
        if now - self.ticked >= TICKS:
            self.ticked = now
            self._queue((TICK, now), flush=True)

    def call(self, call: Call) -> None:
        if self.masked is not None:
            self.masked.drop(call)
        del self.crossed[call.key]
        self._queue((CALL, call.key))

    def _view(self, call: Call) -> Call:
        """The call as the sinks show it (masked), for its display to be prepared here."""
        return call if self.masked is None else self.masked.of(call)

    def close(self, stats: Stats) -> None:
        self._queue((CLOSE, stats), flush=True)
        self._stop_sending()
        self.reported = self._result()
        atexit.unregister(self._hang_up)

    def abort(self) -> None:
        self.batch.clear()
        with contextlib.suppress(queue.Empty):
            while True:  # what was not sent yet need not be formatted to be dropped
                self.outbox.get_nowait()
        if self.worker.is_alive():
            with contextlib.suppress(OutputError):  # it failed first, and dropped its files
                self._queue((ABORT,), flush=True)
                self._stop_sending()
                self._result()
        self._stop_sending()
        self.worker.join()
        atexit.unregister(self._hang_up)

    def _hang_up(self) -> None:
        self._close_feed()
        self.pipe.close()
        self.worker.join()

    def _close_feed(self) -> None:
        if self.feed >= 0:
            os.close(self.feed)
            self.feed = -1

    def _send(self) -> None:
        """The sending thread: waits for the worker to read, so that the main loop need not.
        After a failed send it goes on taking batches (and dropping them) until told to stop."""
        while (data := self.outbox.get()) is not None:
            if not self.lost.is_set():
                try:
                    _write_batch(self.feed, data)
                except OSError:  # the worker is gone: the main loop reads why
                    self.lost.set()

    def _stop_sending(self) -> None:
        """Let the sending thread send what is queued, and end (the worker's answer tells
        whether all of it arrived)."""
        if self.sender.is_alive():
            self.outbox.put(None)
            self.sender.join()
        self._close_feed()  # all sent: the worker reads to the end, then hears it closed

    def warnings(self) -> list[str]:
        return self.reported

    def _queue(self, event: tuple, flush: bool = False) -> None:
        self.batch.append(event)
        if flush or self.batch_bytes >= BATCH_BYTES or len(self.batch) >= BATCH_EVENTS:
            # the worker only speaks once it has stopped: then it failed
            if self.lost.is_set() or self.pipe.poll():
                raise OutputError(self._result())
            # batches waiting: the worker is the slower process, and this side prepares the
            # bodies until it catches up
            self.helping = self.displays and self.outbox.qsize() > BEHIND
            self.outbox.put(pickle.dumps(self.batch, pickle.HIGHEST_PROTOCOL))
            self.batch, self.batch_bytes = [], 0

    def _result(self) -> list[str]:
        """The worker's last word: its warnings, or its failure raised as an OutputError."""
        try:
            kind, detail = self.pipe.recv()
        except (EOFError, OSError):
            kind, detail = "failed", "the output process ended unexpectedly"
        if kind != "ready":
            self.worker.join()
        if kind == "failed":
            raise OutputError(detail)
        return detail


def _write_batch(fd: int, data: bytes) -> None:
    """A batch, its length first; memoryview slices, so that a partial write copies nothing."""
    os.write(fd, len(data).to_bytes(8, "little"))  # (a pipe takes 8 bytes whole)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_batch(fd: int) -> bytearray:
    """The next batch, read into one buffer (EOFError when the main process hung up)."""
    size = int.from_bytes(_read_exactly(fd, 8), "little")
    return _read_exactly(fd, size)


def _read_exactly(fd: int, size: int) -> bytearray:
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    while done < size:
        got = os.readv(fd, [view[done:]])
        if not got:
            raise EOFError
        done += got
    return buffer


def _serve(
    feed: int,
    pipe: Connection,
    parents: tuple[Connection, int],
    open_sinks: Callable[[], Iterable[Sink]],
    mask: Callable[[Call], Call] | None,
    displays: bool,
) -> None:
    """The worker: open the sinks, replay the events into them until told to close or abort;
    mask each call as it comes, and prepare the display of bodies, unless the main process
    did."""
    # inherited by the fork: only with the main's ends closed here does its hanging up mean EOF
    parents[0].close()
    os.close(parents[1])
    for sig in (signal.SIGINT, signal.SIGTERM):  # the main process decides when the run ends
        signal.signal(sig, signal.SIG_IGN)
    try:
        sinks = Presenter(open_sinks(), None, displays)  # (masked here as calls cross)
    except Exception as error:  # an unwritable directory: the message is the user's
        pipe.send(("failed", getattr(error, "message", None) or str(error)))
        return
    pipe.send(("ready", []))
    calls: dict[int, Call] = {}
    try:
        while True:
            try:
                batch = pickle.loads(_read_batch(feed))
            except EOFError:  # the main process died: leave no partial file
                sinks.abort()
                return
            for event in batch:
                if event[0] == MESSAGE:
                    _, key, number, kind, crossing, masked, block = event
                    if crossing is not None:  # new, or crossing again with its hops changed
                        shown = crossing if masked or mask is None else mask(crossing)
                        if key in calls:
                            shown.numbers = calls[key].numbers
                        calls[key] = shown
                    call = calls[key]
                    call.numbers.append(number)
                    sinks.message(FlowMessage(number, kind, call, block))
                elif event[0] == TICK:
                    sinks.tick(event[1])
                elif event[0] == CALL:
                    sinks.call(calls.pop(event[1]))
                elif event[0] == CLOSE:
                    sinks.close(event[1])
                    pipe.send(("done", sinks.warnings()))
                    return
                else:
                    sinks.abort()
                    pipe.send(("aborted", []))
                    return
    except Exception as error:  # a failed write, or a bug: one line, rather than hang the reader
        sinks.abort()
        detail = str(error)
        if not isinstance(error, OutputError):
            detail = f"output process failed: {type(error).__name__}: {detail}"
        pipe.send(("failed", detail))
