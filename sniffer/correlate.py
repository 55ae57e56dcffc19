"""Correlation: exchanges in, named and nested calls out, as numbered messages in first-byte order.

Theory of operation. A request head opens or joins a call:

* the same `X-Requestshook-Request-Id` on several connections is one call with several hops (a
  front door and the backend it proxies to); without the header, a request carrying
  `X-Forwarded-*` joins the open front-door call whose path ends with its path;
* a new call's callee is named from the layout (`services`).

A call is *settled* when every hop's exchange is done; its two messages (the innermost hop's
request and response) then wait in a heap keyed by first-byte time. A message leaves the heap, and
gets its number, once nothing unsettled could still put a message before it: its time is earlier
than the start of every call still *waiting* and than `now - slack` (a request's first byte is
seen a little before its head is parsed, and captures are not always in time order).

Waiting is bounded. A call still unsettled `max_wait` seconds (capture time) after its first
byte is *overdue*: it stops holding the others back. Its request is numbered with what is known
of it (the head, and the body if it was complete), and its response, if one comes, is numbered
when it is complete, among the messages of that moment. Everything that settles in time keeps
first-byte order.

Who made a call and for which parent (see `lineage`) is decided when its request is numbered: by
then every call that started before it is settled or overdue, so OpenStack's own ids in their
responses can be used. The candidates come from an index of the calls *in progress*: a call enters
it when its request is numbered (so in start order), and leaves it when the sweep of numbered
requests passes its end. A call's cost thus follows the calls in flight at its start, not the
traffic around it or a call that never ends; and a call leaves memory once it is out and swept.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import lineage
from .apiref import SERVICE_TYPES, OperationIndex
from .flow import Call, Exchange, FlowMessage, Kind, Operation, Request, endpoint_name
from .http import ID_HEADER, RequestHead
from .lineage import Origin
from .recent import Recent
from .services import ServiceMap
from .stats import Stats

SLACK = 0.5  # seconds: captures' disorder, a first TCP retransmission (RTO 200 ms)
MAX_WAIT = 10.0  # seconds of capture time a call may hold back the calls after it
# a live view's callback: a call's request or response, as soon as it is seen
Progress = Callable[[str, Call, int, RequestHead], None]
SEEN_HOPS = 1 << 16  # exchanges remembered to recognise a copy from another host's capture


def proxied(front: str, backend: str) -> bool:
    """Whether a front door may have sent a path on as another: it strips a leading prefix
    (`/image/v2/images` as `/v2/images`), and a bare prefix becomes `/` (`/identity` as `/`)."""
    return front.endswith(backend) or (backend == "/" and front.count("/") == 1)


@dataclass(eq=False)
class _Track:
    """A call from its first request head until it is out and no later request can be its child."""

    key: int  # in creation order
    call: Call
    heads: list[RequestHead]
    requests: dict[RequestHead, Request] = field(default_factory=dict)  # when read whole
    done: dict[RequestHead, Exchange] = field(default_factory=dict)
    settled: bool = False
    overdue: bool = False  # numbered before it settled
    messages: int = 2  # messages to number: 2, or 1 when no response was captured
    emitted: int = 0  # messages numbered so far
    indexed: bool = False  # among the calls in progress that later calls may be children of
    candidate: lineage.Candidate | None = None  # as it is indexed: its keys, read once
    end: float = float("inf")  # when it stopped being in progress, once settled
    live_depth: int = 0  # the live view's guess, before the parent is decided

    @property
    def start(self) -> float:
        return self.heads[0].ts

    @property
    def out(self) -> bool:
        return self.settled and self.emitted == self.messages


@dataclass
class Counters:
    """What correlation cost, for tests of how it scales (not shown to users)."""

    searches: int = 0  # candidate searches, one per numbered request
    examined: int = 0  # calls looked at by those searches
    held: int = 0  # calls in memory now
    held_peak: int = 0


def _leave(by_callee: dict[str, dict[int, _Track]], track: _Track) -> None:
    """Take a call out of a per-callee table, and its callee too once it has none left."""
    serving = by_callee[track.call.callee]
    del serving[track.key]
    if not serving:
        del by_callee[track.call.callee]


class Correlator:
    """ExchangeConsumer that emits FlowMessages in order, and each Call once it is numbered."""

    def __init__(
        self,
        services: ServiceMap,
        operations: OperationIndex,
        stats: Stats,
        on_message: Callable[[FlowMessage], None],
        on_call: Callable[[Call], None],
        slack: float = SLACK,
        on_progress: Progress | None = None,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.services = services
        self.operations = operations
        self.stats = stats
        self.on_message = on_message
        self.on_call = on_call
        # a live view: ("request" | "response", call, guessed depth, head of the hop shown)
        self.on_progress = on_progress
        self.slack = slack
        self.max_wait = max_wait
        self.counters = Counters()
        self.known = lineage.Known()  # who is who, from earlier requests (see `lineage`)
        # the request id each call's callee gave it -> the call (its Origin once it is out)
        self.origins: Recent[str, Call | Origin] = Recent()
        self.hops: dict[RequestHead, _Track] = {}  # every hop not done yet -> its call's track
        self.unsettled: dict[int, _Track] = {}  # key -> track, in start order
        self.waiting: dict[int, _Track] = {}  # the unsettled calls not overdue, in start order
        self.open_by_callee: dict[str, dict[int, _Track]] = {}  # the unsettled, per callee
        self.by_request_id: dict[str, _Track] = {}
        self.seen_hops: OrderedDict[tuple, None] = OrderedDict()  # recent (id, client, server)
        self.in_progress: dict[str, dict[int, _Track]] = {}  # callee -> numbered, not swept
        self.endings: list[tuple[float, int, _Track]] = []  # (end, key) of the settled indexed
        self.ready: list[tuple[float, int, Kind, _Track]] = []
        # one count for the calls' keys (their request heads, as parsed) and the responses (as
        # completed): on a tie of first-byte times, messages go in the order they were seen
        self.order = itertools.count()
        self.numbers = itertools.count(1)
        self.synthetic_ids = itertools.count(1)
        self.now = float("-inf")

    # -- ExchangeConsumer --------------------------------------------------------------------

    def request_started(self, head: RequestHead) -> None:
        self.now = max(self.now, head.ts)
        request_id = head.header(ID_HEADER)
        if request_id:
            hop = (request_id, head.client, head.server)
            if hop in self.seen_hops:  # the same exchange, captured on another host too
                self.stats.count("duplicate_exchanges")
                return
            self.seen_hops[hop] = None
            if len(self.seen_hops) > SEEN_HOPS:
                self.seen_hops.popitem(last=False)
        track = self._hop_of(head)
        if track is None:
            track = self._new_call(head)
        else:
            track.heads.append(head)
        self.hops[head] = track

    def request_done(self, head: RequestHead, request: Request) -> None:
        track = self.hops.get(head)
        if track is not None:  # kept in case the call is numbered before its response
            track.requests[head] = request

    def exchange_done(self, head: RequestHead, exchange: Exchange) -> None:
        track = self.hops.pop(head, None)
        if track is None:
            return
        track.done[head] = exchange
        if len(track.done) == len(track.heads):
            self._settle(track)
        end = exchange.response.end_ts if exchange.response else exchange.request.end_ts
        self.advance(end)

    # -- opening calls -----------------------------------------------------------------------

    def _hop_of(self, head: RequestHead) -> _Track | None:
        """The open call this request is another hop of, if any."""
        request_id = head.header(ID_HEADER)
        if request_id:
            track = self.by_request_id.get(request_id)
            if track is not None and track.settled:
                # a hop of a call that already ended: clocks of two captures disagree
                self.stats.count("late_hops")
                return None
            return track
        forwarded = head.header("x-forwarded-for") or head.header("x-forwarded-host")
        if not forwarded and head.server[1] in self.services.front_door_ports:
            return None
        path = head.target.split("?", 1)[0]
        for track in reversed(self.unsettled.values()):
            front = track.heads[0]
            if (
                len(track.heads) == 1
                and front.method == head.method
                and proxied(front.target.split("?", 1)[0], path)
                and front.server[1] in self.services.front_door_ports
                and (forwarded or _passed_on(front, head))
            ):
                return track
        return None

    def _new_call(self, head: RequestHead) -> _Track:
        request_id = head.header(ID_HEADER)
        callee = self.services.callee(
            head.server, head.target.split("?", 1)[0], head.server_name, head.header("host")
        )
        call = Call(
            id=request_id or "",  # without one, numbered in request order when emitted
            caller="",  # named with its parent, when its request is numbered
            callee=callee,
            hops=[],  # filled when it settles, or is numbered overdue
            key=next(self.order),
        )
        track = _Track(call.key, call, [head])
        self.unsettled[track.key] = track
        self.waiting[track.key] = track
        self.open_by_callee.setdefault(callee, {})[track.key] = track
        if request_id:
            self.by_request_id[request_id] = track
        self._hold(1)
        if self.on_progress is not None:
            self._show_started(track, self.on_progress)
        return track

    def _show_started(self, track: _Track, show: Progress) -> None:
        """A first guess of caller and depth, for a live view that cannot wait for numbering."""
        head = track.heads[0]
        agent = head.header("user-agent")
        call = track.call
        call.caller = (
            lineage.declared_caller(head)
            or self.services.agent(agent)
            or self.services.own_product(agent)
            or endpoint_name(head.client)
        )
        for other in reversed(self.open_by_callee.get(call.caller, {}).values()):
            if other is not track and other.start <= head.ts:
                track.live_depth = other.live_depth + 1
                break
        show("request", call, track.live_depth, head)

    # -- settling ----------------------------------------------------------------------------

    def _settle(self, track: _Track) -> None:
        self._close(track)
        call = track.call
        self.stats.count("calls")
        if not call.complete:
            self.stats.count("incomplete_calls")
        if call.response is not None and call.request.path.endswith("/auth/tokens"):
            self.services.catalog.learn(call.response.body)  # names the callees from here on
        track.end = call.end if call.end is not None else self.now
        if track.indexed:
            heapq.heappush(self.endings, (track.end, track.key, track))
        if not track.overdue:  # (an overdue call's was matched when it was numbered)
            call.operation = self._operation(call)
        for request_id in lineage.local_ids(call):  # its work: a later call may carry the id
            self.origins.remember(request_id, call)
        if self.on_progress is not None:
            self.on_progress("response", call, track.live_depth, track.heads[-1])
        if track.overdue:
            self._settle_overdue(track)
            return
        self._queue("request", track)
        if call.response is not None:
            self._queue("response", track, call.response.ts)
        else:
            track.messages = 1

    def _close(self, track: _Track) -> None:
        """Every hop is done: the call leaves the open ones and takes its exchanges."""
        track.settled = True
        call = track.call
        del self.unsettled[track.key]
        self.waiting.pop(track.key, None)
        _leave(self.open_by_callee, track)
        call.hops = [track.done[head] for head in track.heads]
        track.requests.clear()

    def _settle_overdue(self, track: _Track) -> None:
        """The rest of a call numbered early: its response, numbered now that it is complete."""
        call = track.call
        call.revision += 1  # its hops changed since its request was shown
        if track.indexed:  # its response's ids, for the calls that start from now on
            track.candidate = lineage.Candidate.of(call)
        if call.response is not None:
            self._queue("response", track, call.response.end_ts)
            return
        track.messages = 1
        if track.out:
            self._out(track)

    def _operation(self, call: Call) -> Operation | None:
        request = call.request
        return self.operations.match(
            SERVICE_TYPES.get(call.callee), request.method, request.path, request.body.data
        )

    def _queue(self, kind: Kind, track: _Track, ts: float | None = None) -> None:
        """Ready to be numbered: a request at its call's start, a response at `ts`."""
        if ts is None:
            entry = (track.start, track.key, kind, track)
        else:
            entry = (ts, next(self.order), kind, track)
        heapq.heappush(self.ready, entry)

    # -- waiting, numbering ------------------------------------------------------------------

    def advance(self, now: float, final: bool = False) -> None:
        """Number and emit every message that nothing waiting can precede any more."""
        self.now = max(self.now, now)
        if final:
            limit = float("inf")
        else:
            self._release(self.now - self.max_wait)
            limit = self.now - self.slack
            if self.waiting:  # in start order: the first one bounds the rest
                limit = min(limit, next(iter(self.waiting.values())).start)
        ready = self.ready
        while ready and ready[0][0] < limit:
            _, _, kind, track = heapq.heappop(ready)
            self._emit(kind, track)

    def _release(self, before: float) -> None:
        """Stop waiting for the calls that started before `before` and are still unsettled."""
        waiting = self.waiting
        while waiting:
            track = next(iter(waiting.values()))
            if track.start >= before:
                return
            del waiting[track.key]
            track.overdue = True
            self.stats.count("overdue_calls")
            call = track.call
            call.note = f"no response within {self.max_wait:g} s"
            call.hops = [self._so_far(track, head) for head in track.heads]
            call.operation = self._operation(call)
            self._queue("request", track)

    @staticmethod
    def _so_far(track: _Track, head: RequestHead) -> Exchange:
        """A hop as far as it was read: the request (or its head alone) and any response."""
        done = track.done.get(head)
        if done is not None:
            return done
        request = track.requests.get(head) or head.bare_request()
        return Exchange(head.client, head.server, request, None, head.tls)

    def _emit(self, kind: Kind, track: _Track) -> None:
        call = track.call
        if kind == "request":
            if not call.id:
                call.id = f"~{next(self.synthetic_ids)}"
            self._sweep(track.start)
            origin = self._origin(track.heads[0])
            call.caller, parent = lineage.resolve(
                track.heads[0],
                self._candidates(track),
                self.services,
                self.known,
                call.callee,
                origin,
            )
            if parent is None:
                call.root_id = call.id
                call.caused_by = (origin.id, origin.root_id) if origin else None
            else:
                call.parent, call.parent_id = parent.key, parent.id
                call.root_id, call.depth = parent.root_id, parent.depth + 1
            self._index(track)
        else:
            self.known.login(call)
        call.numbers.append(next(self.numbers))
        self.on_message(FlowMessage(call.numbers[-1], kind, call))
        track.emitted += 1
        if track.out:
            self._out(track)

    def _out(self, track: _Track) -> None:
        call = track.call
        for request_id in lineage.local_ids(call):  # out: only its ids are kept, not its bodies
            if self.origins.get(request_id) is call:
                self.origins[request_id] = Origin.of(call)
        self.on_call(call)
        if not track.indexed:
            self._forget(track)

    # -- the calls in progress ---------------------------------------------------------------

    def _origin(self, head: RequestHead) -> Origin | None:
        """The call that began the work whose global request id a request carries (its callee
        answered with that id): a root call was made for it, not while serving it."""
        request_id = head.header("x-openstack-request-id")
        origin = self.origins.get(request_id) if request_id else None
        if isinstance(origin, Call):
            return Origin.of(origin) if origin.id else None
        return origin

    def _candidates(self, track: _Track) -> list[lineage.Candidate]:
        """The calls in progress when this call's first byte was seen (numbered before it, not
        ended): among those its declared caller serves, if it has one. Of a call that started at
        the same time (a capture's clock ticks in microseconds), only if it came from another
        client: requests pipelined on one connection are not each other's children."""
        start, client = track.start, track.heads[0].client
        declared = lineage.declared_caller(track.heads[0])
        pools: Iterable[dict[int, _Track]] = (
            (self.in_progress.get(declared, {}),) if declared else self.in_progress.values()
        )
        counters = self.counters
        counters.searches += 1
        found = []
        for pool in pools:
            counters.examined += len(pool)
            found += [
                other.candidate
                for other in pool.values()
                if other.candidate is not None  # (always, once indexed: for the type checker)
                and (
                    other.start < start
                    or (other.start == start and other.heads[0].client != client)
                )
            ]
        return found

    def _index(self, track: _Track) -> None:
        track.indexed = True
        track.candidate = lineage.Candidate.of(track.call)
        self.in_progress.setdefault(track.call.callee, {})[track.key] = track
        if track.settled:
            heapq.heappush(self.endings, (track.end, track.key, track))

    def _sweep(self, start: float) -> None:
        """Drop from the index every call that ended before `start`: no call numbered from now
        on can be its child."""
        endings = self.endings
        while endings and endings[0][0] < start:
            _, _, track = heapq.heappop(endings)
            _leave(self.in_progress, track)
            track.indexed = False
            if track.out:
                self._forget(track)

    def _forget(self, track: _Track) -> None:
        if self.by_request_id.get(track.call.id) is track:
            del self.by_request_id[track.call.id]
        self._hold(-1)

    def _hold(self, change: int) -> None:
        counters = self.counters
        counters.held += change
        counters.held_peak = max(counters.held_peak, counters.held)

    def flush(self) -> None:
        """End of input: settle what is left as it is, and emit everything."""
        for track in list(self.unsettled.values()):
            for head in track.heads:
                track.done.setdefault(head, self._so_far(track, head))
            self._settle(track)
        self.hops.clear()
        self.advance(self.now, final=True)


# what a proxy passes on as it received it: without X-Forwarded-*, a request that matches its
# front-door request in all of these is that request's next hop
PASSED_ON = ("user-agent", "x-auth-token", "content-length", "x-openstack-request-id")


def _passed_on(front: RequestHead, backend: RequestHead) -> bool:
    """Whether `backend` is `front` as a proxy sends it on (its own headers aside)."""
    return all(front.header(name) == backend.header(name) for name in PASSED_ON)
