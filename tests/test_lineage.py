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
FROM_GLANCE = ("X-Requestshook-Request-From", "glance-api")


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
    assert resolve(generic, [one, other]) == ("127.0.0.1:40000", None)  # (a library names no one)


@pytest.mark.parametrize("hook", ["", "-nohook"], ids=["hook", "no-hook"])
def test_keys_decide_real_overlaps(sniff, monkeypatch, hook):
    """In the server-create capture, containment alone nests some calls wrongly; the keys fix
    them (so the scenario really exercises them)."""
    capture = PCAPS / f"server-create{hook}.pcap"
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    assert disagreements(sniff(capture), truth) == []
    monkeypatch.setattr(lineage, "link_score", lambda child, parent, caused=False: 0)
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
    assert lineage.resolve(report, candidates, SERVICES) == ("127.0.0.1:40000", None)


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
        ("python-keystoneclient", "127.0.0.1:40000"),
        ("python-requests/2.31.0", "127.0.0.1:40000"),
        ("keystoneauth1/5.0.0 python-requests/2.28.1 CPython/3.8.10", "127.0.0.1:40000"),
        ("curl/8.5.0", "127.0.0.1:40000"),
        ("my-tool/1.0 python-requests/2.31", "my-tool"),
    ],
)
def test_a_client_library_never_names_the_caller(agent, caller):
    """The last resort, with nothing else to go by (two calls in progress, no keys): the
    User-Agent's first product, unless it is a client library; then the client's address
    and port."""
    busy = [served("cinder-api", 1.0, 9.0), served("nova-api", 1.5, 9.0)]
    assert resolve(head(2.0, ("User-Agent", agent)), busy) == (caller, None)


def port_update(ts: float, *headers: tuple[str, str], request_id: str = "req-0") -> RequestHead:
    """nova-compute binding a port, by python-neutronclient, for the work of a request (whose
    global request id it carries)."""
    agent = ("User-Agent", "python-neutronclient")
    headers = (agent, ("X-OpenStack-Request-ID", request_id), *headers)
    return RequestHead(CLIENT, SERVER, "PUT", "/networking/v2.0/ports/p1", "1.1", headers, ts)


def test_the_service_whose_work_it_is_when_nothing_else_names_the_caller():
    """Placement claims are nova-scheduler's, port binding nova-compute's (data/openstack.toml
    `work`): the caller of a request no key, token or connection names. Not before the keys,
    nor for a callee whose work it is not, nor without the callee, nor for a request that
    carries no global request id (the CLI's, or a proxy's in its name)."""
    assert lineage.resolve(port_update(2.0), [], SERVICES, callee="neutron-server") == (
        "nova-compute",
        None,
    )
    assert lineage.resolve(port_update(2.0), [], SERVICES, callee="cinder-api")[0] == (
        "127.0.0.1:40000"
    )
    assert lineage.resolve(port_update(2.0), [], SERVICES)[0] == "127.0.0.1:40000"
    unsent = RequestHead(CLIENT, SERVER, "PUT", "/v2.0/ports/p1", "1.1", (), 2.0)
    assert lineage.resolve(unsent, [], SERVICES, callee="neutron-server")[0] == "127.0.0.1:40000"
    claim = RequestHead(
        CLIENT,
        SERVER,
        "PUT",
        "/placement/allocations/5b9c?x=1",
        "1.1",
        (
            ("User-Agent", "keystoneauth1/5.0.0 python-requests/2.28.1"),
            ("X-OpenStack-Request-ID", "req-0"),
        ),
        2.0,
    )
    assert lineage.resolve(claim, [], SERVICES, callee="placement-api")[0] == "nova-scheduler"
    serving = served(
        "nova-api", 1.0, 9.0, response=[("x-openstack-request-id", "req-1")]
    )  # a call in progress whose global id the request carries: the keys come first
    linked = port_update(2.0, request_id="req-1")
    assert lineage.resolve(
        linked, [lineage.Candidate.of(serving)], SERVICES, callee="neutron-server"
    ) == ("nova-api", serving)


def test_a_token_passed_on_with_the_work_does_not_name_who_sends_it():
    """nova-compute updates a port with the token of the user whose POST /servers began the
    work (the request carries that call's global id): the token was obtained by `openstack`,
    the call that began the work was `openstack`'s, so the token says nothing of the sender,
    and the work's owner names it. A token obtained by someone else still names them."""
    known = lineage.Known()
    known.login(login("openstack", "user-token"))
    update = port_update(2.0, ("X-Auth-Token", "user-token"))
    assert lineage.resolve(update, [], SERVICES, known, "neutron-server") == ("openstack", None)
    servers = lineage.Origin("p", "p", "openstack", 1.0)  # POST /servers, answered 202 at 1.0
    assert lineage.resolve(update, [], SERVICES, known, "neutron-server", servers) == (
        "nova-compute",
        None,
    )
    known.login(login("nova-conductor", "conductor-token"))
    own = port_update(2.0, ("X-Auth-Token", "conductor-token"))
    assert lineage.resolve(own, [], SERVICES, known, "neutron-server", servers) == (
        "nova-conductor",
        None,
    )


def test_a_service_token_seen_validating_names_its_service():
    """keystonemiddleware validates with its service's own token: once a validation was
    named, the same token names that service among calls linked as strongly (the glance call
    and the neutron call that both carry the user's token and global id)."""
    known = lineage.Known()
    keys = (("X-OpenStack-Request-ID", "req-1"), ("X-Subject-Token", "user"))
    glance_call = served("glance-api", 1.0, 9.0, request=[("X-Auth-Token", "user"), keys[0]])
    neutron_call = served("neutron-server", 2.0, 9.0, request=[("X-Auth-Token", "user"), keys[0]])
    candidates = [lineage.Candidate.of(glance_call), lineage.Candidate.of(neutron_call)]
    check = head(3.0, *keys, ("X-Auth-Token", "glance-service"))
    assert lineage.resolve(check, candidates, SERVICES, known) == ("neutron-server", neutron_call)
    named = head(3.0, *keys, ("X-Auth-Token", "glance-service"), FROM_GLANCE)
    assert lineage.resolve(named, candidates, SERVICES, known)[0] == "glance-api"
    assert lineage.resolve(check, candidates, SERVICES, known) == ("glance-api", glance_call)


def test_work_names_the_later_requests_of_its_connection():
    """nova-compute's port listing is nobody's work in the table, but its connection's port
    update was nova-compute's: the same process made it. Another connection is not."""
    known = lineage.Known()
    lineage.resolve(port_update(1.0), [], SERVICES, known, "neutron-server")
    listing = RequestHead(
        CLIENT,
        SERVER,
        "GET",
        "/networking/v2.0/ports?device_id=x",
        "1.1",
        (("User-Agent", "python-neutronclient"),),
        2.0,
    )
    assert lineage.resolve(listing, [], SERVICES, known, "neutron-server")[0] == "nova-compute"
    elsewhere = RequestHead(
        ("127.0.0.1", 40001), SERVER, "GET", "/networking/v2.0/ports", "1.1", listing.headers, 2.0
    )
    assert lineage.resolve(elsewhere, [], SERVICES, known, "neutron-server")[0] == (
        "127.0.0.1:40001"
    )
