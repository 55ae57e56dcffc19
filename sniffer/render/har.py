"""HAR 1.2: one entry per call (its innermost hop), streamed into one JSON document.

Correlation travels in `_`-prefixed fields (`_id`, `_caller`, `_callee`, `_parent`,
`_operation`, `_hops`, `_command`, `_background`), as HAR allows for custom data.
"""

from __future__ import annotations

import base64
from typing import NotRequired, TypedDict
from urllib.parse import parse_qsl

from .. import __version__
from ..content import decoded, encoded
from ..flow import Body, Call, Headers, header
from ..stats import Stats
from .jsonl import background_of, command_number, hop_records, timestamp
from .sink import FileSink
from .text import url


class HarPair(TypedDict):
    """A header or query parameter."""

    name: str
    value: str


class HarContent(TypedDict):
    size: int
    mimeType: str
    text: NotRequired[str]
    encoding: NotRequired[str]  # "base64" for a body that is not UTF-8 text
    comment: NotRequired[str]


class HarPostData(TypedDict):
    mimeType: str
    text: str


class HarRequest(TypedDict):
    method: str
    url: str
    httpVersion: str
    cookies: list[HarPair]
    headers: list[HarPair]
    queryString: list[HarPair]
    headersSize: int
    bodySize: int
    postData: NotRequired[HarPostData]


class HarResponse(TypedDict):
    status: int
    statusText: str
    httpVersion: str
    cookies: list[HarPair]
    headers: list[HarPair]
    content: HarContent
    redirectURL: str
    headersSize: int
    bodySize: int
    _error: NotRequired[str]  # when no response was captured


class HarOperation(TypedDict):
    title: str
    url: str


class HarEntry(TypedDict):
    startedDateTime: str | None
    request: HarRequest
    cache: dict[str, object]
    serverIPAddress: str
    connection: str
    _id: str
    _caller: str
    _callee: str
    _parent: str | None
    _operation: HarOperation | None
    _hops: list[dict]
    _incomplete: bool
    _caused_by: str | None  # the id of the call that began the work, asynchronously
    _command: int | None  # the command it belongs to (see sniffer.commands), None: background
    _background: str | None  # the service whose background work it is
    comment: NotRequired[str]
    # response, timings and time: always there once the entry is made
    response: NotRequired[HarResponse]
    timings: NotRequired[dict[str, float]]  # send, wait, receive (ms)
    time: NotRequired[float]


def _headers(headers: Headers) -> list[HarPair]:
    return [{"name": name, "value": value} for name, value in headers]


def _text(body: Body, headers: Headers) -> HarContent:
    """HAR content: text as text, anything else as base64, with its size."""
    data = decoded(body)
    content: HarContent = {
        "size": len(data) if not body.truncated else body.size,
        "mimeType": header(headers, "content-type") or "",
    }
    if not data:
        return content
    try:
        content["text"] = data.decode("utf-8")
    except UnicodeDecodeError:
        content["text"], content["encoding"] = base64.b64encode(data).decode(), "base64"
    if body.truncated:
        content["comment"] = f"{body.omitted} bytes not kept (--max-body)"
    return content


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0) * 1000, 3)


def entry(call: Call) -> HarEntry:
    request, response, hop = call.request, call.response, call.hop
    address = hop.server
    record: HarEntry = {
        "startedDateTime": timestamp(request.ts),
        "request": {
            "method": request.method,
            "url": url(call),
            "httpVersion": f"HTTP/{request.version}",
            "cookies": [],
            "headers": _headers(request.headers),
            "queryString": [{"name": k, "value": v} for k, v in parse_qsl(request.query, True)],
            "headersSize": -1,
            "bodySize": request.body.size,
        },
        "cache": {},
        "serverIPAddress": address[0],
        "connection": f"{hop.client[1]}",
        "_id": call.id,
        "_caller": call.caller,
        "_callee": call.callee,
        "_parent": call.parent_id,
        "_operation": (
            {"title": call.operation.title, "url": call.operation.url} if call.operation else None
        ),
        "_hops": hop_records(call),
        "_incomplete": not call.complete,
        "_caused_by": call.caused_by[0] if call.caused_by else None,
        "_command": command_number(call),
        "_background": background_of(call),
    }
    if call.note:
        record["comment"] = call.note
    if request.body.size:
        content = _text(request.body, request.headers)
        record["request"]["postData"] = {
            "mimeType": content["mimeType"],
            "text": content.get("text", ""),
        }
    send = request.end_ts - request.ts
    if response is None:
        record["response"] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": "no response captured",
        }
        record["timings"] = {"send": _ms(send), "wait": -1, "receive": -1}
        record["time"] = _ms(send)
        return record
    record["response"] = {
        "status": response.status,
        "statusText": response.reason,
        "httpVersion": f"HTTP/{response.version}",
        "cookies": [],
        "headers": _headers(response.headers),
        "content": _text(response.body, response.headers),
        "redirectURL": response.header("location") or "",
        "headersSize": -1,
        "bodySize": response.body.size,
    }
    wait, receive = response.ts - request.end_ts, response.end_ts - response.ts
    record["timings"] = {"send": _ms(send), "wait": _ms(wait), "receive": _ms(receive)}
    record["time"] = round(sum(record["timings"].values()), 3)
    return record


class HarSink(FileSink):
    binary = True

    def __init__(self, path: str) -> None:
        super().__init__(path)
        creator = {"name": "osflow-sniff", "version": __version__}
        self.out.write(
            b'{"log":{"version":"1.2","creator":' + encoded(creator) + b',"pages":[],"entries":[\n'
        )
        self.first = True

    def call(self, call: Call) -> None:
        if not self.first:
            self.out.write(b",\n")
        self.out.write(encoded(entry(call)))
        self.first = False

    def close(self, stats: Stats) -> None:
        self.out.write(b"\n]}}\n")
        super().close(stats)
