"""Who called whom, for which parent: OpenStack's own keys, then User-Agents, then containment."""

from __future__ import annotations

import json

import pytest
from conftest import PCAPS, disagreements

from sniffer import lineage
from sniffer.flow import EMPTY, Call, Exchange, Request, Response
from sniffer.http import RequestHead
from sniffer.services import ServiceMap

CLIENT, SERVER = ("127.0.0.1", 40000), ("127.0.0.1", 80)


def head(ts: float, *headers: tuple[str, str]) -> RequestHead:
    return RequestHead(CLIENT, SERVER, "GET", "/identity/v3/auth/tokens", "1.1", headers, ts)


def served(callee: str, start: float, end: float, request=(), response=()) -> Call:
    request_ = Request("GET", "/x", "1.1", tuple(request), EMPTY, start, start)
    response_ = Response(200, "OK", "1.1", tuple(response), EMPTY, end, end)
    return Call("p", "openstack", callee, [Exchange(CLIENT, SERVER, request_, response_)])


SERVICES = ServiceMap()


def resolve(child: RequestHead, calls: list[Call]) -> tuple[str, Call | None]:
    return lineage.resolve(child, [lineage.Candidate.of(call) for call in calls], SERVICES)


def test_subject_token_beats_containment():
    outer = served("glance-api", 1.0, 9.0, request=[("X-Auth-Token", "alice")])
    inner = served("glance-api", 2.0, 9.0, request=[("X-Auth-Token", "bob")])
    child = head(3.0, ("X-Subject-Token", "alice"), ("X-Requestshook-Request-From", "glance-api"))
    assert resolve(child, [outer, inner]) == ("glance-api", outer)
    plain = head(3.0, ("X-Requestshook-Request-From", "glance-api"))
    assert resolve(plain, [outer, inner]) == ("glance-api", inner)


def test_global_request_id_beats_token_and_containment():
    first = served(
        "nova-api",
        1.0,
        9.0,
        request=[("X-Auth-Token", "t")],
        response=[("x-openstack-request-id", "req-1")],
    )
    second = served(
        "nova-api", 2.0, 9.0, request=[("X-Auth-Token", "t"), ("X-OpenStack-Request-ID", "req-0")]
    )
    by_local = head(3.0, ("X-OpenStack-Request-ID", "req-1"), ("X-Subject-Token", "t"))
    assert resolve(by_local, [first, second]) == ("nova-api", first)
    by_global = head(3.0, ("X-OpenStack-Request-ID", "req-0"))
    assert resolve(by_global, [first, second]) == ("nova-api", second)


def test_user_agents_without_the_hook():
    busy = served("nova-api", 1.0, 9.0)
    cli = head(2.0, ("User-Agent", "openstacksdk/0.101.0 keystoneauth1/5.0.0"))
    assert resolve(cli, [busy]) == ("openstack", None)
    compute = head(2.0, ("User-Agent", "nova-compute keystoneauth1/5.0.0"))
    assert resolve(compute, [busy]) == ("nova-compute", None)


def test_containment_only_when_unambiguous():
    one = served("glance-api", 1.0, 9.0)
    other = served("neutron-server", 1.5, 9.0)
    generic = head(2.0, ("User-Agent", "python-keystoneclient"))
    assert resolve(generic, [one]) == ("glance-api", one)
    assert resolve(generic, [one, other]) == ("python-keystoneclient", None)


@pytest.mark.parametrize("hook", ["", "-nohook"], ids=["hook", "no-hook"])
def test_keys_decide_real_overlaps(sniff, monkeypatch, hook):
    """In the server-create capture, containment alone nests some calls wrongly; the keys fix
    them (so the scenario really exercises them)."""
    capture = PCAPS / f"server-create{hook}.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    assert disagreements(sniff(capture), truth) == []
    monkeypatch.setattr(lineage, "link_score", lambda child, parent: 0)
    assert disagreements(sniff(capture), truth) != []
