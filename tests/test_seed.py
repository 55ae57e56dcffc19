"""The seed document, reproduced from real loopback traffic (pcaps/image-show.pcap)."""

from __future__ import annotations

import json

from conftest import PCAPS, assert_seed_document, disagreements

SEED = PCAPS / "image-show.pcap"


def test_body_md_is_the_seed(sniff):
    run = sniff(SEED, options=("--show-secrets", "--lang", "ko"))
    assert run.exit_code == 0
    assert_seed_document(run.read("body.md"))


def test_diagram_is_the_seed_flow(sniff):
    run = sniff(SEED)
    assert run.read("diagram.md").splitlines() == [
        "openstack->>keystone: GET /identity/",
        "keystone-->>openstack: 300 MULTIPLE CHOICES /identity/",
        "openstack->>keystone: POST /identity/v3/auth/tokens",
        "keystone-->>openstack: 201 CREATED /identity/v3/auth/tokens",
        "openstack->>glance-api: GET /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c",
        "glance-api->>keystone: GET /identity/v3/auth/tokens",
        "keystone-->>glance-api: 200 OK /identity/v3/auth/tokens",
        "glance-api-->>openstack: 200 OK /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c",
    ]


def test_calls_match_the_lab_truth(sniff):
    truth = json.loads((PCAPS / "image-show.truth.json").read_text())
    assert disagreements(sniff(SEED), truth) == []


def test_proxied_call_has_both_hops_and_shows_the_innermost(sniff):
    calls = sniff(SEED).calls()
    image = next(c for c in calls if c["callee"] == "glance-api")
    front, back = image["hops"]
    assert front["server"] == "127.0.0.1:80" and front["target"].startswith("/image/v2/images/")
    assert back["server"] == "127.0.0.1:60999" and back["target"].startswith("/v2/images/")
    assert image["path"] == back["target"]  # documents show the hop closest to the callee
    assert image["numbers"] == [5, 8]
    token_check = next(c for c in calls if c["caller"] == "glance-api")
    assert token_check["parent"] == image["id"] and token_check["depth"] == 1
    assert image["operation"]["title"] == "Show Image"


def test_index_includes_the_diagram_the_messages_and_the_log(sniff):
    """index.md is the page of the community's sites: it includes the generated files with
    pymdownx.snippets (a real build of it: test_site.py), it copies none of them."""
    run = sniff(SEED)
    index = run.read("index.md")
    assert index.startswith("# Call flow\n\n## Sequence Diagram\n\n```mermaid\n")
    assert 'sequenceDiagram\n    autonumber\n    --8<-- "diagram.md"\n```\n' in index
    assert '## Request / Response\n\n--8<-- "body.md"\n' in index
    assert '## Full Logs\n\n??? quote "log.md"\n\n    ``` text\n    --8<-- "log.md"\n' in index
    assert len(index) < 400


def test_log_has_every_message_with_its_url(sniff):
    log = sniff(SEED).read("log.md")
    assert log.startswith(
        "### (openstack) REQ >>> (keystone) : GET http://182.161.114.101/identity/"
    )
    assert (
        "### (glance-api) RESP <<< (keystone) : 200 OK GET "
        "http://182.161.114.101/identity/v3/auth/tokens" in log
    )
    assert log.count("REQ >>>") == 4 and log.count("RESP <<<") == 4


def test_terminal_view_indents_nested_calls(sniff):
    run = sniff(SEED)
    lines = run.stdout.splitlines()
    assert len(lines) == 8
    assert lines[5].startswith("   6 20:18:45.527   glance-api → keystone   ")
    assert lines[5].endswith("   GET /identity/v3/auth/tokens")
    assert lines[7].startswith("   8 20:18:45.527 openstack ← glance-api   ")
    assert lines[7].endswith("↩ 5  134 µs  200 OK /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c")
