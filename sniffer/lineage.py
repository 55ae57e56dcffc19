"""Who made a call, and while serving which other call: names and parents from the wire.

A call's *candidates* are the calls in progress when its first byte was seen (started before it,
answered after it). Among them, OpenStack's own keys point at the parent when present:

* keystonemiddleware validating a token sends it as `X-Subject-Token`, equal to the `X-Auth-Token`
  of the call being served (score 1);
* a service calling another on behalf of a request sends `X-OpenStack-Request-ID`, equal to the
  served call's own global id (its `X-OpenStack-Request-ID`) or its `x-openstack-request-id`
  (score 2, the more specific key).

The caller is known for sure from `X-Requestshook-Request-From`, in live mode the process that
owns the client socket, an earlier request on the same TCP connection named for sure (every
request on a connection comes from one process), or a User-Agent that names a client or a
service (`openstacksdk` -> `openstack`, `nova-compute ...` -> `nova-compute`); its parent is then
the best-linked, then innermost, candidate served by that caller (none: a root call, such as
nova-compute's work for a request whose global id it carries but which it does not serve).
Without any of these:

1. a linked candidate is the parent, and its callee is the caller;
2. else the token the request carries names the caller: whoever obtained that token (`POST
   /v3/auth/tokens`, the `X-Subject-Token` of the answer) made the request, whatever client
   library it used (the command line's project lookups with python-keystoneclient are
   `openstack`'s, a service's calls with its own token are its own); the parent, if any, is the
   innermost candidate that caller serves;
3. else, when exactly one call is in progress, containment is unambiguous: it is the parent and
   its callee the caller;
4. else the User-Agent's first product is the caller, unless it names a client library
   (python-keystoneclient, python-requests: never a service's name); then the client's address.
   No parent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .flow import Call, Endpoint
from .http import RequestHead
from .recent import Recent
from .services import FROM_HEADER, ServiceMap


@dataclass
class Known:
    """What earlier requests said about who is who: the caller named for sure on each TCP
    connection, and who obtained each token."""

    connections: Recent[tuple[Endpoint, Endpoint], str] = field(default_factory=Recent)
    tokens: Recent[str, str] = field(default_factory=Recent)

    def connection(self, head: RequestHead) -> str | None:
        return self.connections.get((head.client, head.server))

    def named(self, head: RequestHead, caller: str) -> None:
        self.connections.remember((head.client, head.server), caller)

    def owner(self, head: RequestHead) -> str | None:
        token = head.header("x-auth-token")
        return self.tokens.get(token) if token else None

    def login(self, call: Call) -> None:
        """A call answered: if it obtained a token, its caller owns it."""
        token = obtained_token(call)
        if token:
            self.tokens.remember(token, call.caller)


def obtained_token(call: Call) -> str | None:
    """The token a call obtained: a login's (`POST /v3/auth/tokens` answered 2xx with an
    `X-Subject-Token`)."""
    response = call.response
    if response is None or call.request.method != "POST" or response.status >= 300:
        return None
    if not call.request.path.endswith("/auth/tokens"):
        return None
    return response.header("x-subject-token")


def local_ids(call: Call) -> list[str]:
    """The request ids the callee's side gave a call (`x-openstack-request-id` of its answers)."""
    return [
        request_id
        for hop in call.hops
        if hop.response is not None
        and (request_id := hop.response.header("x-openstack-request-id"))
    ]


def global_ids(call: Call) -> set[str]:
    """The request ids a child of this call may carry as X-OpenStack-Request-ID: those it came
    with, and those its callee gave it."""
    incoming = (hop.request.header("x-openstack-request-id") for hop in call.hops)
    return {request_id for request_id in incoming if request_id} | set(local_ids(call))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A call in progress as a possible parent, with the keys a child may share with it (read
    once: a call is a candidate for each call it makes, and for those of its callee's peers)."""

    call: Call
    tokens: frozenset[str]  # the X-Auth-Token of each of its hops
    ids: frozenset[str]  # its global_ids

    @classmethod
    def of(cls, call: Call) -> Candidate:
        tokens = (hop.request.header("x-auth-token") for hop in call.hops)
        return cls(call, frozenset(token for token in tokens if token), frozenset(global_ids(call)))


def link_score(child: RequestHead, parent: Candidate) -> int:
    """How strongly OpenStack's own headers tie a request to a call that may have made it."""
    score = 0
    subject = child.header("x-subject-token")
    if subject and subject in parent.tokens:
        score += 1
    request_id = child.header("x-openstack-request-id")
    if request_id and request_id in parent.ids:
        score += 2
    return score


def _best(child: RequestHead, candidates: Iterable[Candidate]) -> tuple[int, Call] | None:
    """The candidate with the strongest link, the innermost (latest start; of equal starts, the
    last given) among equals."""
    best = None
    for candidate in candidates:
        key = (link_score(child, candidate), candidate.call.start)
        if best is None or key >= best[0]:
            best = (key, candidate.call)
    return (best[0][0], best[1]) if best else None


def declared_caller(child: RequestHead) -> str | None:
    """The caller named for sure: the Requestshook header, else the process owning the socket."""
    declared = child.header(FROM_HEADER)
    return declared.strip() if declared else child.client_name


def resolve(
    child: RequestHead,
    candidates: list[Candidate],
    services: ServiceMap,
    known: Known | None = None,
) -> tuple[str, Call | None]:
    """(caller, parent) of a call, given the calls in progress when it started (and what earlier
    requests said, which it adds to)."""
    known = known if known is not None else Known()
    agent = child.header("user-agent")
    caller = declared_caller(child) or known.connection(child) or services.agent(agent)
    if caller:
        known.named(child, caller)
        best = _best(child, (c for c in candidates if c.call.callee == caller))
        return caller, best[1] if best else None
    best = _best(child, candidates)
    if best is not None and best[0] > 0:
        return best[1].callee, best[1]
    named = known.owner(child)
    if named is not None:
        served = _best(child, (c for c in candidates if c.call.callee == named))
        return named, served[1] if served else None
    if len(candidates) == 1:
        return candidates[0].call.callee, candidates[0].call
    return services.own_product(child.header("user-agent")) or child.client[0], None
