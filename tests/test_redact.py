"""Secrets seen on the wire never reach an output unless the user asks for them."""

from __future__ import annotations

import json

from conftest import OUTPUTS, PCAPS, REPO

from sniffer import redact
from sniffer.flow import Body

SEED = PCAPS / "image-show.pcap"


def secrets_in_scenario() -> set[str]:
    """Every credential the seed capture carries, from the scenario that made it."""
    found: set[str] = set()

    def walk(call: dict) -> None:
        for message in (call, call["response"]):
            for headers in (message["headers"], message.get("backend_headers", [])):
                found.update(v for k, v in headers if k.lower() in redact.SECRET_HEADERS)
        password = (call["body"] or {}).get("auth", {}).get("identity", {}).get("password")
        if password:
            found.add(password["user"]["password"])
        for child in call.get("calls", []):
            walk(child)

    scenario = json.loads((REPO / "scripts/scenarios/image-show.json").read_text())
    for call in scenario["calls"]:
        walk(call)
    return found


def test_no_output_contains_a_secret(sniff):
    secrets = secrets_in_scenario()
    assert len(secrets) == 3  # the user's token, glance's service token, the password
    run = sniff(SEED)
    texts = [run.read(name) for name in OUTPUTS] + [run.stdout]
    for secret in secrets:
        shown = f'"{secret}"' if secret == "asdf" else secret  # a short word: match it as a value
        assert not any(shown in text for text in texts), secret


def test_the_same_token_gets_the_same_marker(sniff):
    calls = {c["method"] + " " + c["path"]: c for c in sniff(SEED).calls()}
    issued = dict(calls["POST /identity/v3/auth/tokens"]["response"]["headers"])["X-Subject-Token"]
    image = next(c for p, c in calls.items() if p.startswith("GET /v2/images/"))
    used = dict(image["request"]["headers"])["X-Auth-Token"]
    assert issued == used and issued.startswith("<redacted:")
    check = calls["GET /identity/v3/auth/tokens"]["request"]["headers"]
    assert dict(check)["X-Subject-Token"] == issued != dict(check)["X-Auth-Token"]


def test_show_secrets_writes_them_as_captured(sniff):
    run = sniff(SEED, options=("--show-secrets",))
    body = run.read("body.md")
    assert all(secret in body for secret in secrets_in_scenario())


def test_bodies_that_are_not_json_are_masked_by_pattern():
    form = Body(b"username=admin&password=hunter2&x=1", 36)
    assert redact.body(form).data == b"username=admin&password=<redacted>&x=1"
    cut = Body(b'{"auth": {"password": "hunter2", "name": "adm', 100, omitted=55)
    masked = redact.body(cut)
    assert b"hunter2" not in masked.data and masked.omitted == 55


def test_nested_secrets_and_bearer_tokens():
    data = json.dumps(
        {"server": {"adminPass": "s3cret", "name": "vm"}, "credential": {"secret": "abc"}}
    ).encode()
    masked = json.loads(redact.body(Body(data, len(data))).data)
    assert masked == {
        "server": {"adminPass": "<redacted>", "name": "vm"},
        "credential": {"secret": "<redacted>"},
    }
    assert redact.header_value("Authorization", "Bearer xyz").startswith("Bearer <redacted:")
    assert redact.header_value("Content-Type", "application/json") == "application/json"
