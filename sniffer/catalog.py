"""Service names from the keystone catalog that a token response carries.

When the capture shows `POST /v3/auth/tokens` (or a validation) answered with a catalog, every
endpoint URL in it names the service behind that host, port and path prefix; later calls are
named from it (after the user's file and live process names, before the built-in layout).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .content import decoded, parse
from .flow import Body
from .openstack import services

# catalog service type (official or alias) -> the service name every output uses
TYPES = {kind: service.name for service in services() for kind in service.types}
DEFAULT_PORTS = {"http": 80, "https": 443}


class Catalog:
    """Endpoints learnt from the capture: (host, port, path prefix) -> service name."""

    def __init__(self) -> None:
        self.endpoints: dict[tuple[str, int, str], str] = {}
        self.last: object = None  # the catalog read last: every token validation repeats it

    def learn(self, body: Body) -> bool:
        """Read a token response's catalog, if it has one; whether it had."""
        data = decoded(body)
        if b'"catalog"' not in data or body.truncated:
            return False
        try:
            document = parse(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return False
        if not isinstance(document, dict):
            return False
        token = document.get("token", {})
        catalog = token.get("catalog") if isinstance(token, dict) else None
        if catalog == self.last:
            return True
        self.last = catalog
        for name, url in _endpoints(token):
            try:
                port = url.port or DEFAULT_PORTS.get(url.scheme, 80)
            except ValueError:  # not a port number: not an endpoint we can match
                continue
            if url.hostname:
                self.endpoints[(url.hostname, port, url.path.rstrip("/"))] = name
        return True

    def name(self, host: str | None, port: int, path: str) -> str | None:
        """The service of the endpoint with the longest path prefix that this request is under."""
        if not self.endpoints or not host:
            return None
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
        best, length = None, -1
        for (e_host, e_port, prefix), name in self.endpoints.items():
            under = not prefix or path == prefix or path.startswith(prefix + "/")
            if e_host == host and e_port == port and under and len(prefix) > length:
                best, length = name, len(prefix)
        return best


def _endpoints(token: object):
    """(service name, split URL) of each endpoint of a catalog; whatever is not shaped as one
    (the body is the peer's, it may be anything) is passed over."""
    catalog = token.get("catalog") if isinstance(token, dict) else None
    for service in catalog if isinstance(catalog, list) else ():
        if not isinstance(service, dict):
            continue
        kind, own = service.get("type"), service.get("name")
        name = TYPES.get(kind) if isinstance(kind, str) else None
        name = name or (own if isinstance(own, str) else None)
        endpoints = service.get("endpoints")
        for endpoint in endpoints if isinstance(endpoints, list) and name else ():
            url = endpoint.get("url") if isinstance(endpoint, dict) else None
            if isinstance(url, str):
                try:
                    yield name, urlsplit(url)
                except ValueError:  # an invalid IPv6 literal, say
                    continue
