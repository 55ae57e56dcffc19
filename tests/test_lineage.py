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
    assert resolve(generic, [one, other]) == ("127.0.0.1", None)  # (a library names no one)


@pytest.mark.parametrize("hook", ["", "-nohook"], ids=["hook", "no-hook"])
def test_keys_decide_real_overlaps(sniff, monkeypatch, hook):
    """In the server-create capture, containment alone nests some calls wrongly; the keys fix
    them (so the scenario really exercises them)."""
    capture = PCAPS / f"server-create{hook}.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    assert disagreements(sniff(capture), truth) == []
    monkeypatch.setattr(lineage, "link_score", lambda child, parent: 0)
    assert disagreements(sniff(capture), truth) != []


def login(caller: str, token: str) -> Call:
    """A `POST /v3/auth/tokens` made by `caller`, answered with `token`."""
    request = Request("POST", "/identity/v3/auth/tokens", "1.1", (), EMPTY, 0.0, 0.0)
    answer = Response(201, "Created", "1.1", (("X-Subject-Token", token),), EMPTY, 0.1, 0.1)
    return Call("l", caller, "keystone", [Exchange(CLIENT, SERVER, request, answer)])


def test_a_token_names_who_obtained_it_before_containment():
    """A client library's request carrying the token the command line obtained is the command
    line's, not a child of the one call in progress (a placement call the library knows nothing
    of); with no login seen, containment decides as before."""
    known = lineage.Known()
    known.login(login("openstack", "user-token"))
    busy = served("placement-api", 1.0, 9.0, request=[("X-Auth-Token", "compute-token")])
    lookup = head(2.0, ("User-Agent", "python-keystoneclient"), ("X-Auth-Token", "user-token"))
    candidates = [lineage.Candidate.of(busy)]
    assert lineage.resolve(lookup, candidates, SERVICES, known) == ("openstack", None)
    assert lineage.resolve(lookup, candidates, SERVICES) == ("placement-api", busy)
    # a failed login obtains nothing
    refused = login("mallory", "other-token")
    refused.hops[0] = Exchange(
        CLIENT, SERVER, refused.request, Response(401, "Unauthorized", "1.1", (), EMPTY, 0.1, 0.1)
    )
    known.login(refused)
    other = head(2.0, ("User-Agent", "python-keystoneclient"), ("X-Auth-Token", "other-token"))
    assert lineage.resolve(other, candidates, SERVICES, known) == ("placement-api", busy)


def test_a_token_a_service_obtained_makes_its_requests_its_own():
    known = lineage.Known()
    known.login(login("nova-compute", "service-token"))
    serving, elsewhere = served("nova-compute", 1.0, 9.0), served("cinder-api", 1.5, 9.0)
    report = head(2.0, ("User-Agent", "python-requests/2.31"), ("X-Auth-Token", "service-token"))
    candidates = [lineage.Candidate.of(serving), lineage.Candidate.of(elsewhere)]
    assert lineage.resolve(report, candidates, SERVICES, known) == ("nova-compute", serving)
    assert lineage.resolve(report, candidates, SERVICES) == ("127.0.0.1", None)


def test_a_connection_named_once_names_all_its_requests():
    """Every request on one TCP connection comes from one process: named once (by its own
    User-Agent here), the connection names the next request, whose library's User-Agent says
    nothing, even with another call in progress to be its parent by containment."""
    known = lineage.Known()
    first = head(1.0, ("User-Agent", "nova-compute keystoneauth1/5.0.0"))
    assert lineage.resolve(first, [], SERVICES, known) == ("nova-compute", None)
    elsewhere = served("cinder-api", 1.5, 9.0)
    second = head(2.0, ("User-Agent", "python-neutronclient"))
    assert lineage.resolve(second, [lineage.Candidate.of(elsewhere)], SERVICES, known) == (
        "nova-compute",
        None,
    )
    other = RequestHead(("127.0.0.1", 40001), SERVER, "GET", "/", "1.1", second.headers, 2.0)
    assert lineage.resolve(other, [lineage.Candidate.of(elsewhere)], SERVICES, known) == (
        "cinder-api",
        elsewhere,
    )  # (another connection: containment, as before)


@pytest.mark.parametrize(
    ("agent", "caller"),
    [
        ("python-keystoneclient", "127.0.0.1"),
        ("python-requests/2.31.0", "127.0.0.1"),
        ("keystoneauth1/5.0.0 python-requests/2.28.1 CPython/3.8.10", "127.0.0.1"),
        ("curl/8.5.0", "127.0.0.1"),
        ("my-tool/1.0 python-requests/2.31", "my-tool"),
    ],
)
def test_a_client_library_never_names_the_caller(agent, caller):
    """The last resort, with nothing else to go by (two calls in progress, no keys): the
    User-Agent's first product, unless it is a client library; then the client's address."""
    busy = [served("cinder-api", 1.0, 9.0), served("nova-api", 1.5, 9.0)]
    assert resolve(head(2.0, ("User-Agent", agent)), busy) == (caller, None)
