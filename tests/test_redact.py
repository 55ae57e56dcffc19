"""Secrets seen on the wire never reach an output unless the user asks for them."""

from __future__ import annotations

import contextlib
import gzip
import json

import lab
import pytest
from conftest import OUTPUTS, PCAPS, REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffer import redact
from sniffer.content import decoded, display
from sniffer.flow import Body

SEED = PCAPS / "image-show.pcap"


SECRET_HEADERS = (
    "x-auth-token",
    "x-subject-token",
    "x-service-token",
    "authorization",
    "cookie",
    "set-cookie",
)
SECRET_KEYS = ("password", "adminPass", "secret")


def secrets_on_the_wire(scenario: str) -> set[str]:
    """Every credential a lab scenario puts on the wire, read from the bytes the lab sends."""
    found: set[str] = set()

    def walk_json(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in SECRET_KEYS and isinstance(value, str):
                    found.add(value)
                walk_json(value)
        elif isinstance(node, list):
            for item in node:
                walk_json(item)

    def read(message: bytes) -> None:
        head, _, body = message.partition(b"\r\n\r\n")
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(": ")
            if name.lower() in SECRET_HEADERS:
                found.add(value)
        with contextlib.suppress(ValueError):
            walk_json(json.loads(body))

    def calls(call: lab.Call) -> None:
        for message in (call.request, call.backend_request, call.response):
            if message:
                read(message)
        for child in call.children:
            calls(child)

    built = lab.Lab(json.loads((REPO / f"scripts/scenarios/{scenario}.json").read_text()))
    for roots in built.roots:
        for root in roots:
            calls(root)
    return found


@pytest.mark.parametrize("jobs", ["1", "2"])  # with 2, the output process masks
@pytest.mark.parametrize("hook", ["", "-nohook"])
@pytest.mark.parametrize("scenario", ["image-show", "server-create", "image-upload"])
def test_no_output_contains_a_secret(sniff, scenario, hook, jobs):
    secrets = secrets_on_the_wire(scenario)
    capture = (PCAPS / f"{scenario}{hook}.pcap").read_bytes()
    assert secrets and all(secret.encode() in capture for secret in secrets)
    run = sniff(PCAPS / f"{scenario}{hook}.pcap", options=("-j", jobs))
    texts = [run.read(name) for name in OUTPUTS] + [run.stdout, run.stderr]
    for secret in secrets:
        shown = f'"{secret}"' if len(secret) < 8 else secret  # a short word: match it as a value
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
    assert all(secret in body for secret in secrets_on_the_wire("image-show"))


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


SENTINEL = "s3ntinel"


def _secret_holders(draw_key: st.SearchStrategy[str]) -> st.SearchStrategy[dict]:
    """Objects holding a secret the way services send them: under a secret key (any case, any
    scalar), as a token's id, or as an access token."""
    scalar = st.sampled_from([f"{SENTINEL}-1", f"a {SENTINEL} b"]) | st.just(71737)
    return (
        st.builds(lambda key, value: {key: value}, draw_key, scalar)
        | st.just({"token": {"id": f"{SENTINEL}-2", "expires_at": "x"}})
        | st.just({"access_token": f"{SENTINEL}-3"})
    )


_secret_key = st.sampled_from(sorted(redact.SECRET_KEYS)).flatmap(
    lambda key: st.lists(st.booleans(), min_size=len(key), max_size=len(key)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(key, upper, strict=True))
    )
)
_documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers().filter(lambda n: "71737" not in str(n))  # not the secret by chance
    | st.text(max_size=8)
    | _secret_holders(_secret_key),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    _documents,
    st.sampled_from([0, 3, 1100, 2500]),  # nesting past orjson's parser and Python's recursion
    st.booleans(),  # a lone surrogate escape somewhere (JSON allows it, UTF-8 does not)
    st.booleans(),  # gzip-encoded
    st.booleans(),  # cut by the body bound
)
def test_no_secret_survives_masking_whatever_the_json(document, depth, surrogate, gzipped, cut):
    """Whatever shape a JSON body takes, the masked copy, and its display in the documents,
    hold none of the secrets in it (71737 stands for a numeric secret)."""
    text = json.dumps([document, "\\ud800" if surrogate else ""])
    data = ("[" * depth + text + "]" * depth).encode()
    omitted = 0
    if cut:
        omitted, data = len(data) // 3, data[: len(data) - len(data) // 3]
    size = len(data) + omitted
    body = Body(gzip.compress(data) if gzipped else data, size, "gzip" if gzipped else "", omitted)
    masked = redact.body(body)
    for shown in (decoded(masked), display(masked)[1]):
        assert SENTINEL.encode() not in shown and b"71737" not in shown
