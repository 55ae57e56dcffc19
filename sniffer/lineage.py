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

1. a linked candidate is the parent, and its callee is the caller (of candidates linked as
   strongly, the one served by the owner of the request's token, below, if there is one);
2. else the token the request carries names the caller: whoever obtained that token (`POST
   /v3/auth/tokens`, the `X-Subject-Token` of the answer; or the service whose
   keystonemiddleware sent it as its own `X-Auth-Token` while validating another's) made the
   request, whatever client library it used (the command line's project lookups with
   python-keystoneclient are `openstack`'s, a service's calls with its own token are its own);
   the parent, if any, is the innermost candidate that caller serves. Not for asynchronous
   work, though, when the token's owner made the call that began it: nova-compute binding a
   port with the token of the user whose `POST /servers` it serves was handed that token with
   the work;
3. else, for a request that carries a global request id (services send one with all they do),
   the service whose work the operation is (`work` in data/openstack.toml: placement claims are
   nova-scheduler's, port binding nova-compute's), or whose work an earlier request on the same
   connection was (nova-compute's port listing after its port update);
4. else, when exactly one call is in progress, containment is unambiguous: it is the parent and
   its callee the caller;
5. else the User-Agent's first product is the caller, unless it names a client library
   (python-keystoneclient, python-requests: never a service's name); then the client's address
   and port (one process per connection, as far as the wire tells). No parent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .flow import Call, Endpoint, endpoint_name
from .http import RequestHead
from .recent import Recent
from .services import FROM_HEADER, ServiceMap


@dataclass
class Known:
    """What earlier requests said about who is who: the caller named for sure on each TCP
    connection, who obtained each token, and whose work a connection's requests were."""

    connections: Recent[tuple[Endpoint, Endpoint], str] = field(default_factory=Recent)
    tokens: Recent[str, str] = field(default_factory=Recent)
    works: Recent[tuple[Endpoint, Endpoint], str] = field(default_factory=Recent)

    def connection(self, head: RequestHead) -> str | None:
        return self.connections.get((head.client, head.server))

    def named(self, head: RequestHead, caller: str) -> None:
        self.connections.remember((head.client, head.server), caller)

    def work(self, head: RequestHead, services: ServiceMap, callee: str | None) -> str | None:
        """The service whose work this request, or an earlier one on its connection, is. Only
        a request that carries a global request id is a service's work: services send one with
        all they do (a request's, or their periodic task's); the CLI and a proxy in its name
        do not."""
        connection = (head.client, head.server)
        owner = None
        if callee and head.header("x-openstack-request-id"):
            owner = services.work_owner(callee, head.method, head.target)
        if owner:
            self.works.remember(connection, owner)
            return owner
        return self.works.get(connection)

    def owner(self, head: RequestHead) -> str | None:
        token = head.header("x-auth-token")
        return self.tokens.get(token) if token else None

    def validating(self, head: RequestHead, caller: str) -> None:
        """keystonemiddleware checks a user's token (`X-Subject-Token`) with its service's own
        (`X-Auth-Token`): from then on, that token names the service, login seen or not."""
        token = head.header("x-auth-token")
        if token and head.header("x-subject-token") and self.tokens.get(token) is None:
            self.tokens.remember(token, caller)

    def login(self, call: Call) -> None:
        """A call answered: if it obtained a token, its caller owns it."""
        token = obtained_token(call)
        if token:
            self.tokens.remember(token, call.caller)


@dataclass(frozen=True, slots=True)
class Origin:
    """A call that began asynchronous work, as far as the calls caused by it need it."""

    id: str
    root_id: str
    caller: str
    end: float  # when it was answered: only requests begun after that are its asynchronous work

    @classmethod
    def of(cls, call: Call) -> Origin:
        return cls(call.id, call.root_id, call.caller, call.end or 0.0)


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


def link_score(child: RequestHead, parent: Candidate, caused: bool = False) -> int:
    """How strongly OpenStack's own headers tie a request to a call that may have made it. The
    global request id of asynchronous work (`caused`: its origin has ended) ties nothing: every
    call of that work carries it, parent or cousin."""
    score = 0
    subject = child.header("x-subject-token")
    if subject and subject in parent.tokens:
        score += 1
    request_id = None if caused else child.header("x-openstack-request-id")
    if request_id and request_id in parent.ids:
        score += 2
    return score


def _best(
    child: RequestHead, candidates: Iterable[Candidate], caused: bool = False
) -> tuple[int, Call] | None:
    """The candidate with the strongest link, the innermost (latest start; of equal starts, the
    last given) among equals."""
    best = None
    for candidate in candidates:
        key = (link_score(child, candidate, caused), candidate.call.start)
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
    callee: str | None = None,
    origin: Origin | None = None,
) -> tuple[str, Call | None]:
    """(caller, parent) of a call to `callee`, given the calls in progress when it started (and
    what earlier requests said, which it adds to). `origin`: the call whose global request id
    the request carries, if its callee gave it that id; a token obtained by its caller was
    handed on with the work and does not name who sends it now, and once it was answered
    before the request began, the id links no parent."""
    known = known if known is not None else Known()
    passed_on = origin.caller if origin is not None else None
    caused = origin is not None and origin.end < child.ts
    agent = child.header("user-agent")
    caller = declared_caller(child) or known.connection(child) or services.agent(agent)
    if caller:
        known.named(child, caller)
        known.validating(child, caller)
        return caller, _parent(_served(child, candidates, caller, caused))
    owner = known.owner(child)
    if owner == passed_on:
        owner = None
    linked = _linked(child, candidates, owner, caused)
    if linked is not None:
        known.validating(child, linked[0])
        return linked
    owner = owner or known.work(child, services, callee)
    if owner is not None:
        return owner, _parent(_served(child, candidates, owner, caused))
    if len(candidates) == 1:
        return candidates[0].call.callee, candidates[0].call
    return services.own_product(agent) or endpoint_name(child.client), None


def _served(
    child: RequestHead, candidates: list[Candidate], caller: str, caused: bool
) -> tuple[int, Call] | None:
    """The best-linked call in progress that `caller` serves."""
    return _best(child, (c for c in candidates if c.call.callee == caller), caused)


def _parent(best: tuple[int, Call] | None) -> Call | None:
    return best[1] if best is not None else None


def _linked(
    child: RequestHead, candidates: list[Candidate], owner: str | None, caused: bool
) -> tuple[str, Call] | None:
    """(its callee, the call) that OpenStack's keys tie the request to; of calls tied as
    strongly, the one the owner of the request's token serves, if there is one."""
    best = _best(child, candidates, caused)
    if best is None or best[0] == 0:
        return None
    if owner is not None and owner != best[1].callee:
        own = _served(child, candidates, owner, caused)
        if own is not None and own[0] == best[0]:
            return owner, own[1]
    return best[1].callee, best[1]
