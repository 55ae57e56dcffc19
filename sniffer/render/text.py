"""What several formats say about a message: its title, arrow, headers, body and URL."""

from __future__ import annotations

from datetime import UTC, datetime

from ..content import display
from ..flow import EMPTY, Body, Call, FlowMessage, Headers, endpoint_name


def parts(message: FlowMessage) -> tuple[Headers, Body]:
    """The headers (trailers after them) and body a message shows (a missing response: none)."""
    call = message.call
    shown = call.request if message.is_request else call.response
    if shown is None:
        return (), EMPTY
    return shown.headers + shown.trailers, shown.body


def tls_hops(call: Call) -> list[str]:
    """The hops of a call read from inside TLS, `client → server` each."""
    return [
        f"{endpoint_name(hop.client)} → {endpoint_name(hop.server)}" for hop in call.hops if hop.tls
    ]


def title(message: FlowMessage, templates: bool = False) -> str:
    """`METHOD PATH` for a request, `STATUS REASON PATH` for a response; with `templates`, the
    path as its API template (`/v2/images/{image_id}`) where the operation is known."""
    call = message.call
    shown = target(call, templates)
    if message.is_request or call.response is None:
        return f"{call.request.method} {shown}"
    return f"{call.response.status} {call.response.reason} {shown}"


def target(call: Call, templates: bool = False) -> str:
    """The call's target as `title` shows it: as sent, or with `templates` its path as the API
    template where the operation is known."""
    if templates and call.operation is not None:
        return templated(call.request.path, call.operation.template)
    return call.request.target


def templated(path: str, template: str) -> str:
    """The path with the segments the template names replaced by their names; the template
    matches the path's end (a deployment prefix and version may come before it)."""
    names = [name for name in template.split("/") if name]
    segments = path.rstrip("/").split("/")
    if len(names) >= len(segments):
        return path
    head, tail = segments[: len(segments) - len(names)], segments[len(segments) - len(names) :]
    return "/".join(
        head + [n if n.startswith("{") else s for s, n in zip(tail, names, strict=True)]
    )


def header_lines(headers: Headers) -> list[str]:
    return [f"{name}: {value}" for name, value in headers]


def body_block(message: FlowMessage) -> tuple[str, bytes]:
    """The body for display: as the presenter prepared it, or made here for a message that
    comes without (a sink used on its own)."""
    if message.display is not None:
        return message.display
    return display(parts(message)[1])


def clock(ts: float) -> str:
    """A message's time of day in UTC, to the millisecond, as the terminal views print it."""
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def url(call: Call) -> str:
    """The URL the call's innermost request was for, as its Host header names the server."""
    request = call.request
    host = request.header("host") or "{}:{}".format(*call.hop.server)
    return f"http://{host}{request.target}"
