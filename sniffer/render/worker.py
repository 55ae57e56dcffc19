"""Outputs written by a second process: `--jobs 2` puts the flow's formatting on another core.

The main process reads, reassembles, parses, correlates and masks; a forked worker formats and
writes the files (on captures with large bodies that is half the work). The largest single cost
of the documents, making bodies ready for display (decoded, JSON indented), goes to whichever
process has time: when the worker falls behind (batches pile up for it), this side prepares the
bodies of the next batch.

Events cross a pipe in pickled batches: a call crosses once, with its first message, and later
events name it by a key; its parent crosses as a bare stub (id, names, depth, and its own
parent), which is all that sinks read of a parent, so that a pickle never drags a parent's
bodies along. A thread sends the batches, so that the main process does not stop each time the
worker is busy for a moment (the pipe itself holds a few hundred KB), and the bounded queue
before it bounds what is in flight: a slow disk slows the reader instead of filling memory.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import count
from multiprocessing.connection import Connection

from ..atomic import OutputError
from ..flow import Call, FlowMessage
from ..stats import Stats
from .sink import FanOut, Sink
from .text import body_block, preset

BATCH_BYTES = 256 << 10  # body bytes per batch: few system calls, little held in flight
BATCH_EVENTS = 256
IN_FLIGHT = 32  # batches made and not yet sent: room for either process to run ahead
BEHIND = IN_FLIGHT // 4  # batches waiting past this: the worker is the slower process
MESSAGE, CALL, CLOSE, ABORT = range(4)


def stub(call: Call | None) -> Call | None:
    """What a sink reads of a parent call: who, how deep, and its own parent."""
    if call is None:
        return None
    return Call(call.id, call.caller, call.callee, [], stub(call.parent), call.depth)


def _size(call: Call) -> int:
    return sum(
        len(hop.request.body.data) + (len(hop.response.body.data) if hop.response else 0)
        for hop in call.hops
    )


class WorkerSink(Sink):
    """Runs the sinks that `open_sinks` makes in a forked worker process (which opens their
    files itself: nothing buffered here is inherited twice); this side forwards the flow."""

    def __init__(self, open_sinks: Callable[[], Iterable[Sink]], displays: bool = True) -> None:
        context = multiprocessing.get_context("fork")
        self.pipe, theirs = context.Pipe()
        self.worker = context.Process(
            target=_serve, args=(theirs, self.pipe, open_sinks), daemon=True
        )
        self.worker.start()
        theirs.close()
        # if this process ends without close or abort (a bug's traceback, an early Ctrl-C), hang
        # up before multiprocessing joins the worker: it then drops its files and ends, instead
        # of waiting for events forever
        atexit.register(self._hang_up)
        self._result()  # "ready", or why the files could not be opened
        self.keys: dict[int, int] = {}  # id(call) -> its key, from its first message to its end
        self.next_key = count()
        self.batch: list[tuple] = []
        self.batch_bytes = 0
        self.reported: list[str] = []
        self.displays = displays  # whether the sinks show bodies (the documents, the log)
        self.helping = False  # whether this side prepares the bodies' display for now
        self.outbox: queue.Queue[bytes | None] = queue.Queue(IN_FLIGHT)
        self.lost = threading.Event()  # a send failed: the worker is gone
        self.sender = threading.Thread(target=self._send, name="output-feed", daemon=True)
        self.sender.start()  # (after the fork: the worker has no copy of it)

    def message(self, message: FlowMessage) -> None:
        call = message.call
        key = self.keys.get(id(call))
        portable = None
        if key is None:
            key = self.keys[id(call)] = next(self.next_key)
            portable = replace(call, parent=stub(call.parent), numbers=[])
            self.batch_bytes += _size(call)
        block = None
        if self.helping:
            block = body_block(message)
            self.batch_bytes += len(block[1])
        self._queue((MESSAGE, key, message.number, message.kind, portable, block))

    def call(self, call: Call) -> None:
        self._queue((CALL, self.keys.pop(id(call))))

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
        self.pipe.close()
        self.worker.join()

    def _send(self) -> None:
        """The sending thread: waits for the worker to read, so that the main loop need not.
        After a failed send it goes on taking batches (and dropping them) until told to stop."""
        while (data := self.outbox.get()) is not None:
            if not self.lost.is_set():
                try:
                    self.pipe.send_bytes(data)
                except OSError:  # the worker is gone: the main loop reads why
                    self.lost.set()

    def _stop_sending(self) -> None:
        """Let the sending thread send what is queued, and end (the worker's answer tells
        whether all of it arrived)."""
        if self.sender.is_alive():
            self.outbox.put(None)
            self.sender.join()

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


def _serve(pipe: Connection, parents: Connection, open_sinks: Callable[[], Iterable[Sink]]) -> None:
    """The worker: open the sinks, replay the events into them until told to close or abort."""
    parents.close()  # inherited by the fork: only with it closed does the main's end mean EOF
    for sig in (signal.SIGINT, signal.SIGTERM):  # the main process decides when the run ends
        signal.signal(sig, signal.SIG_IGN)
    try:
        sinks = FanOut(open_sinks())
    except Exception as error:  # an unwritable directory: the message is the user's
        pipe.send(("failed", getattr(error, "message", None) or str(error)))
        return
    pipe.send(("ready", []))
    calls: dict[int, Call] = {}
    try:
        while True:
            try:
                batch = pickle.loads(pipe.recv_bytes())
            except EOFError:  # the main process died: leave no partial file
                sinks.abort()
                return
            for event in batch:
                if event[0] == MESSAGE:
                    _, key, number, kind, portable, block = event
                    call = calls.setdefault(key, portable)
                    call.numbers.append(number)
                    message = FlowMessage(number, kind, call)
                    if block is not None:
                        preset(message, block)
                    sinks.message(message)
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
