"""OpenTelemetry export: OTLP/JSON that the protobuf definitions parse, and OTLP/HTTP to a
collector (a loopback receiver started here)."""

from __future__ import annotations

import http.server
import json
import threading

from conftest import PCAPS
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sniffer.render.otlp import to_protobuf

CREATE = PCAPS / "server-create.pcap"


def requests_in(path) -> list[ExportTraceServiceRequest]:
    """Each line, parsed by the protobuf definitions (OTLP/JSON ids are hex: to_protobuf
    converts them as the spec says)."""
    found = []
    for line in path.read_text().splitlines():
        message = ExportTraceServiceRequest()
        message.ParseFromString(to_protobuf(json.loads(line)))
        found.append(message)
    return found


def spans_by_id(requests: list[ExportTraceServiceRequest]) -> dict[bytes, tuple[str, object]]:
    spans = {}
    for request in requests:
        for resource in request.resource_spans:
            (service,) = [
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            ]
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans[span.span_id] = (service, span)
    return spans


def test_trace_tree_matches_the_flow(sniff, tmp_path):
    run = sniff(CREATE, options=("--otlp", str(tmp_path / "traces.jsonl")))
    requests = requests_in(tmp_path / "traces.jsonl")
    spans = spans_by_id(requests)
    calls = run.calls()
    assert len(spans) == 2 * len(calls)
    by_call = {}
    for service, span in spans.values():
        attributes = {a.key: a.value for a in span.attributes}
        by_call.setdefault(attributes["openstack.requestshook.id"].string_value, {})[span.kind] = (
            service,
            span,
        )
    roots = {call["id"] for call in calls if call["parent"] is None}
    assert len({span.trace_id for _, span in spans.values()}) == len(roots)
    for call in calls:
        (client_service, client), (server_service, server) = (
            by_call[call["id"]][3],
            by_call[call["id"]][2],
        )
        assert (client_service, server_service) == (call["caller"], call["callee"])
        assert server.parent_span_id == client.span_id
        if call["parent"] is None:
            assert client.parent_span_id == b""
        else:
            parent_server = by_call[call["parent"]][2][1]
            assert client.parent_span_id == parent_server.span_id
            assert client.trace_id == parent_server.trace_id
        attributes = {a.key: a.value for a in server.attributes}
        assert attributes["http.request.method"].string_value == call["method"]
        assert attributes["http.response.status_code"].int_value == call["status"]
        assert attributes["url.path"].string_value == call["path"]
        if call["operation"]:
            assert attributes["openstack.operation"].string_value == call["operation"]["title"]


def test_ids_are_the_same_on_every_run(sniff, tmp_path):
    first = sniff(CREATE, options=("--otlp", str(tmp_path / "a.jsonl")))
    second = sniff(CREATE, options=("--otlp", str(tmp_path / "b.jsonl")))
    assert first.exit_code == second.exit_code == 0
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_post_to_a_collector(sniff):
    received: list[bytes] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the handler's name is fixed by http.server
            assert self.path == "/v1/traces"
            assert self.headers["Content-Type"] == "application/x-protobuf"
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        run = sniff(CREATE, options=("--otlp-endpoint", endpoint))
    finally:
        server.shutdown()
    assert run.exit_code == 0
    spans = 0
    for body in received:
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        spans += sum(len(s.spans) for r in message.resource_spans for s in r.scope_spans)
    assert spans == 2 * len(run.calls())


def test_unreachable_collector_is_a_warning(sniff):
    run = sniff(PCAPS / "image-show.pcap", options=("--otlp-endpoint", "http://127.0.0.1:9/v1"))
    assert run.exit_code == 3 and "trace exports to http://127.0.0.1:9/v1 failed" in run.stderr
    assert len(run.calls()) == 4  # everything else was written
