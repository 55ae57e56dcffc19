"""OpenTelemetry traces: one trace per root call, a client and a server span per call.

Each call becomes a CLIENT span in its caller's resource and a SERVER span in its callee's
(`service.name`), the server span the child of the client span, the client span the child of the
server span of the call it was made for, so a trace viewer draws both sides of every arrow. Ids
are derived from the calls' ids (a hash), so analysing the same capture again gives the same
trace. A tree is written when its root call ends: as one OTLP/JSON `ExportTraceServiceRequest`
per line of a file (the OpenTelemetry Collector's file format), and/or POSTed as OTLP/HTTP
protobuf to a collector (which needs the `otlp` extra: opentelemetry-proto).
"""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
from collections.abc import Mapping

from .. import __version__
from ..atomic import AtomicFile
from ..content import encoded
from ..flow import Call
from ..stats import Stats
from .jsonl import background_of, command_number
from .sink import Sink

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
STATUS_ERROR = 2


def _id(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def trace_id(call: Call) -> str:
    return _id("trace:" + call.root_id, 32)


def span_id(call_id: str, side: str) -> str:
    return _id(f"{side}:{call_id}", 16)


def _value(value: object) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": str(value)}


def _attributes(pairs: Mapping[str, object]) -> list[dict]:
    return [
        {"key": key, "value": _value(value)}
        for key, value in pairs.items()
        if value not in (None, "")
    ]


def spans(call: Call) -> list[tuple[str, dict]]:
    """(service name, span) for the client and the server side of a call."""
    request, response = call.request, call.response
    start = int(request.ts * 1e9)
    end = int((response.end_ts if response else request.end_ts) * 1e9)
    route = call.operation.template if call.operation else None
    name = f"{request.method} {route or request.path}"
    host, port = call.hop.server
    common = {
        "http.request.method": request.method,
        "url.path": request.path,
        "url.query": request.query,
        "http.route": route,
        "server.address": request.header("host") or host,
        "server.port": port,
        "http.response.status_code": response.status if response else None,
        "openstack.requestshook.id": None if call.id.startswith("~") else call.id,
        "openstack.operation": call.operation.title if call.operation else None,
        "openstack.global_request_id": request.header("x-openstack-request-id"),
        "openstack.request_id": response.header("x-openstack-request-id") if response else None,
        "osflow.incomplete": not call.complete or None,
        "osflow.tls": any(hop.tls for hop in call.hops) or None,  # read from inside TLS
        "osflow.command": command_number(call),
        "osflow.background": background_of(call),
    }
    failed = response is None or response.status >= 500
    status = {"code": STATUS_ERROR} if failed else {}
    trace = trace_id(call)
    client = {
        "traceId": trace,
        "spanId": span_id(call.id, "client"),
        "name": name,
        "kind": SPAN_KIND_CLIENT,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": _attributes({**common, "peer.service": call.callee}),
        "status": status,
    }
    if call.parent_id is not None:
        client["parentSpanId"] = span_id(call.parent_id, "server")
    if call.caused_by is not None:  # asynchronous work: a link to its cause, in its own trace
        cause, root = call.caused_by
        client["links"] = [
            {"traceId": _id("trace:" + root, 32), "spanId": span_id(cause, "server")}
        ]
    server = {
        "traceId": trace,
        "spanId": span_id(call.id, "server"),
        "parentSpanId": span_id(call.id, "client"),
        "name": name,
        "kind": SPAN_KIND_SERVER,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": _attributes(common),
        "status": status,
    }
    return [(call.caller, client), (call.callee, server)]


def export_request(calls: list[Call]) -> dict:
    """An OTLP/JSON ExportTraceServiceRequest for these calls, spans grouped by service."""
    by_service: dict[str, list[dict]] = {}
    for call in calls:
        for service, span in spans(call):
            by_service.setdefault(service, []).append(span)
    scope = {"name": "osflow-sniff", "version": __version__}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes({"service.name": service})},
                "scopeSpans": [{"scope": scope, "spans": service_spans}],
            }
            for service, service_spans in by_service.items()
        ]
    }


def to_protobuf(request: dict) -> bytes:
    """The same request as OTLP protobuf (ids are hex in OTLP/JSON, bytes in protobuf)."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    def as_base64(node: object) -> object:
        if isinstance(node, dict):
            return {
                key: base64.b64encode(bytes.fromhex(value)).decode()
                if key in ("traceId", "spanId", "parentSpanId")
                else as_base64(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [as_base64(item) for item in node]
        return node

    message = json_format.ParseDict(as_base64(request), ExportTraceServiceRequest())
    return message.SerializeToString()


class OtlpSink(Sink):
    """Writes and/or sends each call tree when its root call ends."""

    def __init__(self, path: str | None = None, endpoint: str | None = None) -> None:
        self.out = AtomicFile(path, binary=True) if path else None
        self.endpoint = endpoint
        self.pending: dict[str, list[Call]] = {}  # trace id -> its calls that ended so far
        self.failures: list[str] = []

    def call(self, call: Call) -> None:
        trace = trace_id(call)
        self.pending.setdefault(trace, []).append(call)
        if call.parent is None:  # the root ends last: the tree is whole
            self._flush(self.pending.pop(trace))

    def _flush(self, calls: list[Call]) -> None:
        request = export_request(calls)
        if self.out is not None:
            self.out.write(encoded(request) + b"\n")
        if self.endpoint:
            self._send(self.endpoint, request)

    def _send(self, endpoint: str, request: dict) -> None:
        post = urllib.request.Request(
            endpoint,
            data=to_protobuf(request),
            method="POST",
            headers={"Content-Type": "application/x-protobuf"},
        )
        try:
            with urllib.request.urlopen(post, timeout=10) as reply:
                reply.read()
        except (urllib.error.URLError, OSError) as error:
            self.failures.append(str(getattr(error, "reason", error)))

    def close(self, stats: Stats) -> None:
        for calls in self.pending.values():  # trees whose root never ended
            self._flush(calls)
        self.pending.clear()
        if self.out is not None:
            self.out.commit()

    def abort(self) -> None:
        if self.out is not None:
            self.out.abort()

    def warnings(self) -> list[str]:
        if not self.failures:
            return []
        return [
            f"{len(self.failures)} trace exports to {self.endpoint} failed ({self.failures[0]})"
        ]
