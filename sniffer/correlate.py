"""Correlation: exchanges in, named and nested calls out, as numbered messages in first-byte order.

Theory of operation. A request head opens or joins a call:

* the same `X-Requestshook-Request-Id` on several connections is one call with several hops (a
  front door and the backend it proxies to); without the header, a request carrying
  `X-Forwarded-*` joins the open front-door call whose path ends with its path;
* a new call's callee is named from the layout (`services`).

Who made a call and for which parent (see `lineage`) is decided when its request is numbered:
by then every call that started before it is settled, so OpenStack's own ids in their responses
can be used. A call is *settled* when every hop's exchange is done; its two messages (the
innermost hop's request and response) then wait in a heap keyed by first-byte time. A message
leaves the heap, and gets its number, once nothing unsettled could still put a message before it:
its time is earlier than the start of every unsettled call and than `now - slack` (a request's
first byte is seen a little before its head is parsed, and captures are not always in time
order). Settled calls are retired once no future request can be their child, so memory follows
concurrency, not length.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from . import lineage
from .apiref import SERVICE_TYPES, OperationIndex
from .flow import Call, Exchange, FlowMessage
from .http import ID_HEADER, RequestHead
from .services import ServiceMap
from .stats import Stats

SLACK = 2.0  # seconds
SEEN_HOPS = 1 << 16  # exchanges remembered to recognise a copy from another host's capture


@dataclass
class _Track:
    """A call while it is open: its hop heads in start order and the exchanges done so far."""

    call: Call
    heads: list[RequestHead]
    done: dict[int, Exchange] = field(default_factory=dict)  # id(head) -> exchange
    settled: bool = False
    messages: int = 0  # messages to number: 2, or 1 when no response was captured
    emitted: int = 0  # messages numbered so far
    live_depth: int = 0  # the live view's guess, before the parent is decided


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
        on_progress: Callable[[str, Call, int, RequestHead], None] | None = None,
    ) -> None:
        self.services = services
        self.operations = operations
        self.stats = stats
        self.on_message = on_message
        self.on_call = on_call
        # a live view: ("request" | "response", call, guessed depth, head of the hop shown)
        self.on_progress = on_progress
        self.slack = slack
        self.tracks: dict[int, _Track] = {}  # id(head) -> track, for every hop of an open call
        self.active: dict[int, _Track] = {}  # id(call) -> track, in start order
        self.unsettled: dict[int, _Track] = {}  # the active calls still waiting for a hop
        self.by_request_id: dict[str, _Track] = {}
        self.seen_hops: OrderedDict[tuple, None] = OrderedDict()  # recent (id, client, server)
        self.serving: dict[str, dict[int, _Track]] = {}  # callee -> its active calls, in order
        self.ready: list[tuple[float, int, str, _Track]] = []
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
            track.call.hops.append(None)  # placeholder until the exchange is done
        self.tracks[id(head)] = track

    def exchange_done(self, head: RequestHead, exchange: Exchange) -> None:
        track = self.tracks.pop(id(head), None)
        if track is None:
            return
        track.done[id(head)] = exchange
        track.call.hops[track.heads.index(head)] = exchange
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
        if not (head.header("x-forwarded-for") or head.header("x-forwarded-host")):
            return None
        path = head.target.split("?", 1)[0]
        for track in reversed(self.active.values()):
            front = track.heads[0]
            if (
                not track.settled
                and len(track.heads) == 1
                and front.method == head.method
                and front.target.split("?", 1)[0].endswith(path)
                and front.server[1] in self.services.front_door_ports
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
            hops=[None],
        )
        track = _Track(call, [head])
        self.active[id(call)] = track
        self.unsettled[id(call)] = track
        self.serving.setdefault(callee, {})[id(call)] = track
        if request_id:
            self.by_request_id[request_id] = track
        if self.on_progress is not None:
            self._show_started(track)
        return track

    def _show_started(self, track: _Track) -> None:
        """A first guess of caller and depth, for a live view that cannot wait for numbering."""
        head = track.heads[0]
        agent = head.header("user-agent")
        call = track.call
        call.caller = (
            lineage.declared_caller(head)
            or self.services.agent(agent)
            or self.services.agent_product(agent)
            or head.client[0]
        )
        for other in reversed(self.serving.get(call.caller, {}).values()):
            if other is not track and other.heads[0].ts <= head.ts and not other.settled:
                track.live_depth = other.live_depth + 1
                break
        self.on_progress("request", call, track.live_depth, head)

    def _candidates(self, track: _Track) -> list[Call]:
        """Settled calls that were in progress when this call's first byte was seen."""
        start = track.heads[0].ts
        declared = lineage.declared_caller(track.heads[0])
        pool = self.serving.get(declared, {}) if declared else self.active
        found = []
        for other in pool.values():
            if other is track or not other.settled or other.heads[0].ts >= start:
                continue
            end = other.call.end
            if end is None or end >= start:
                found.append(other.call)
        return found

    def _name(self, track: _Track) -> None:
        """Caller, parent and depth, decided once every call that started earlier is settled."""
        call = track.call
        call.caller, call.parent = lineage.resolve(
            track.heads[0], self._candidates(track), self.services
        )
        call.depth = call.parent.depth + 1 if call.parent else 0

    # -- settling and numbering --------------------------------------------------------------

    def _settle(self, track: _Track) -> None:
        track.settled = True
        del self.unsettled[id(track.call)]
        call = track.call
        self.stats.count("calls")
        if not call.complete:
            self.stats.count("incomplete_calls")
        request = call.request
        if call.response is not None and request.path.endswith("/auth/tokens"):
            self.services.catalog.learn(call.response.body)  # names the callees from here on
        call.operation = self.operations.match(
            SERVICE_TYPES.get(call.callee), request.method, request.path, request.body.data
        )
        if self.on_progress is not None:
            self.on_progress("response", call, track.live_depth, track.heads[-1])
        heapq.heappush(self.ready, (call.request.ts, next(self.order), "request", track))
        track.messages = 1
        if call.response is not None:
            heapq.heappush(self.ready, (call.response.ts, next(self.order), "response", track))
            track.messages = 2

    def advance(self, now: float, final: bool = False) -> None:
        """Number and emit every message that nothing unsettled can precede any more."""
        self.now = max(self.now, now)
        limit = float("inf") if final else self.now - self.slack
        if self.unsettled:  # in start order: the first one bounds the rest
            limit = min(limit, next(iter(self.unsettled.values())).heads[0].ts)
        while self.ready and (final or self.ready[0][0] < limit):
            _, _, kind, track = heapq.heappop(self.ready)
            self._emit(kind, track)
        self._retire(limit)

    def _emit(self, kind: str, track: _Track) -> None:
        call = track.call
        if kind == "request":
            if not call.id:
                call.id = f"~{next(self.synthetic_ids)}"
            self._name(track)
        call.numbers.append(next(self.numbers))
        self.on_message(FlowMessage(call.numbers[-1], kind, call))
        track.emitted += 1
        if track.emitted == track.messages:
            self.on_call(call)

    def _retire(self, limit: float) -> None:
        """Forget settled, fully emitted calls that ended before any request still to come."""
        active = self.active
        while active:
            key = next(iter(active))
            track = active[key]
            if not track.settled or track.emitted < track.messages:
                return
            call = track.call
            if (call.end or call.start) >= limit:
                return  # the oldest call may still get children; later ones wait behind it
            del active[key]
            serving = self.serving[call.callee]
            del serving[key]
            if not serving:
                del self.serving[call.callee]
            if self.by_request_id.get(call.id) is track:
                del self.by_request_id[call.id]

    def flush(self) -> None:
        """End of input: settle what can be, and emit everything."""
        self.advance(self.now, final=True)
