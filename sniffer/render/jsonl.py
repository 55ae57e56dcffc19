"""calls.jsonl: one JSON object per call, written when the call's messages are numbered.

The schema is documented in the README ("calls.jsonl").
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

from ..content import encoded
from ..flow import Body, Call, Exchange, Headers, endpoint_name, header
from .sink import FileSink


def timestamp(ts: float | None) -> str | None:
    """ISO 8601 UTC to the microsecond (rounded as datetime rounds), `Z`-suffixed."""
    if ts is None:
        return None
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    return f"{_second(int(whole))}.{micros:06d}Z"


@lru_cache(maxsize=64)
def _second(whole: int) -> str:
    """The date and time to the second: the same for every message of that second."""
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _body(body: Body, headers: Headers) -> dict:
    encoding = header(headers, "content-encoding")
    return {"size": body.size, "kept": body.size - body.omitted, "encoding": encoding}


def hop_record(hop: Exchange) -> dict:
    response = hop.response
    return {
        "client": endpoint_name(hop.client),
        "server": endpoint_name(hop.server),
        "method": hop.request.method,
        "target": hop.request.target,
        "status": response.status if response else None,
        "request_time": timestamp(hop.request.ts),
        "response_time": timestamp(response.end_ts if response else None),
        "incomplete": not hop.complete,
        "tls": hop.tls,  # read from inside TLS (its plaintext, from the TLS library)
    }


def hop_records(call: Call) -> list[dict]:
    return [hop_record(hop) for hop in call.hops]


def command_number(call: Call) -> int | None:
    """The number of the command the call belongs to (None: a service's background)."""
    command = call.command
    return command.number if command is not None and not command.background else None


def background_of(call: Call) -> str | None:
    """The service whose background work the call is, if it is."""
    command = call.command
    return command.client if command is not None and command.background else None


def call_record(call: Call) -> dict:
    request, response = call.request, call.response
    operation = call.operation
    return {
        "id": call.id,
        "numbers": call.numbers,
        "caller": call.caller,
        "callee": call.callee,
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "status": response.status if response else None,
        "reason": response.reason if response else None,
        "request_time": timestamp(request.ts),
        "response_time": timestamp(response.end_ts if response else None),
        "duration_ms": round(call.duration * 1000, 3) if call.duration is not None else None,
        "parent": call.parent_id,
        "depth": call.depth,
        "operation": {"title": operation.title, "url": operation.url} if operation else None,
        "hops": hop_records(call),
        "request": {
            "headers": request.headers,
            "trailers": request.trailers,
            "body": _body(request.body, request.headers),
        },
        "response": {
            "headers": response.headers,
            "trailers": response.trailers,
            "informational": list(response.informational),
            "body": _body(response.body, response.headers),
        }
        if response
        else None,
        "incomplete": not call.complete,
        "note": call.note or None,
        "caused_by": call.caused_by[0] if call.caused_by else None,
        "command": command_number(call),
        "background": background_of(call),
    }


class JsonlSink(FileSink):
    binary = True

    def call(self, call: Call) -> None:
        self.out.write(encoded(call_record(call)) + b"\n")
