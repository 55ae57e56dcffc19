"""HAR 1.2: one entry per call (its innermost hop), streamed into one JSON document.

Correlation travels in `_`-prefixed fields (`_id`, `_caller`, `_callee`, `_parent`,
`_operation`, `_hops`), as HAR allows for custom data.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl

from .. import __version__
from ..content import decoded, encoded
from ..flow import Body, Call, Headers, header
from ..stats import Stats
from .jsonl import hop_records, timestamp
from .sink import FileSink
from .text import url


def _headers(headers: Headers) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in headers]


def _text(body: Body, headers: Headers) -> dict:
    """HAR content: text as text, anything else as base64, with its size."""
    data = decoded(body)
    content = {
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


def entry(call: Call) -> dict:
    request, response, hop = call.request, call.response, call.hop
    address = hop.server
    record = {
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
