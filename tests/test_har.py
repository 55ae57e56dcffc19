"""HAR 1.2 export: valid by the format's rules, and read by a real HAR consumer (haralyzer)."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

from conftest import PCAPS
from haralyzer import HarEntry, HarParser

ENTRY = {
    "startedDateTime": str,
    "time": (int, float),
    "request": dict,
    "response": dict,
    "cache": dict,
    "timings": dict,
}
REQUEST = {
    "method": str,
    "url": str,
    "httpVersion": str,
    "cookies": list,
    "headers": list,
    "queryString": list,
    "headersSize": int,
    "bodySize": int,
}
RESPONSE = {
    "status": int,
    "statusText": str,
    "httpVersion": str,
    "cookies": list,
    "headers": list,
    "content": dict,
    "redirectURL": str,
    "headersSize": int,
    "bodySize": int,
}


def check(record: dict, fields: dict) -> None:
    for name, kind in fields.items():
        assert isinstance(record.get(name), kind), (name, record.get(name))


def test_har_structure_and_consumer(sniff, tmp_path):
    run = sniff(PCAPS / "server-create.pcap", options=("--har", str(tmp_path / "x.har")))
    har = json.loads((tmp_path / "x.har").read_text())
    assert json.loads(run.read("flow.har")) == har  # -o writes the same as --har
    log = har["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "osflow-sniff"
    calls = {call["id"]: call for call in run.calls()}
    assert len(log["entries"]) == len(calls) == 48
    for entry in log["entries"]:
        check(entry, ENTRY)
        check(entry["request"], REQUEST)
        check(entry["response"], RESPONSE)
        assert all({"name", "value"} <= set(h) for h in entry["request"]["headers"])
        assert {"send", "wait", "receive"} <= set(entry["timings"])
        call = calls[entry["_id"]]
        assert (entry["_caller"], entry["_callee"], entry["_parent"]) == (
            call["caller"],
            call["callee"],
            call["parent"],
        )
        assert entry["response"]["status"] == call["status"]
        assert entry["serverIPAddress"] == call["hops"][-1]["server"].rsplit(":", 1)[0]

    parsed = HarParser(har)
    assert sum(len(page.entries) for page in parsed.pages) == 48
    first = HarEntry(log["entries"][0])
    assert first.request.method and first.response.status and first.request.url.startswith("http")


def test_har_content_query_and_binary(sniff):
    har = json.loads(sniff(PCAPS / "server-create.pcap").read("flow.har"))
    by_path = {}
    for entry in har["log"]["entries"]:
        parts = urlsplit(entry["request"]["url"])
        by_path[parts.path + ("?" + parts.query if parts.query else "")] = entry
    networks = by_path["/networking/v2.0/networks?name=private"]
    assert networks["request"]["queryString"] == [{"name": "name", "value": "private"}]
    create = by_path["/compute/v2.1/servers"]
    assert create["request"]["postData"]["mimeType"] == "application/json"
    assert "<redacted>" in create["request"]["postData"]["text"]  # adminPass, masked here too
    image_file = next(e for p, e in by_path.items() if p.endswith("/file"))
    content = image_file["response"]["content"]
    assert content["encoding"] == "base64" and content["size"] == 262144
    assert len(base64.b64decode(content["text"])) == 262144
    assert image_file["_operation"]["title"] == "Download Binary Image Data"
    assert [hop["server"] for hop in image_file["_hops"]] == ["127.0.0.1:80", "127.0.0.1:60999"]
