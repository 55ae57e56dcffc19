"""Who is who: caller and callee names from headers, the deployment layout, or a user file.

The defaults are the two layouts the table of OpenStack services (data/openstack.toml) records:
devstack's front door on port 80 routing by path prefix, and the classic per-service ports. A
user file (`--services FILE`, TOML) overrides or extends them:

    front_door_ports = [80, 8000]      # ports where the path prefix names the service
    [prefixes]                         # path prefix behind the front door -> service
    "/identity" = "keystone"
    [ports]                            # "port" or "address:port" -> service
    "9292" = "glance-api"
    "127.0.0.1:60999" = "glance-api"
    [agents]                           # User-Agent product -> caller, for requests without
    "python-keystoneclient" = "keystone-client"   # X-Requestshook-Request-From
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

from .catalog import Catalog
from .flow import Endpoint, endpoint_name
from .openstack import services, work

FRONT_DOOR_PORTS = (80, 443)  # devstack's front door, and its tls-proxy
FROM_HEADER = "X-Requestshook-Request-From"
# devstack's path prefixes, the classic ports, and the User-Agent products that name a caller
# for sure (a service's own name first, or the command line's libraries for the user's
# `openstack`): no two services share one, so the order of these maps does not matter
PREFIXES = {service.prefix: service.name for service in services() if service.prefix}
PORTS = {port: service.name for service in services() for port in service.ports}
AGENTS = {product: service.name for service in services() for product in service.agents}


# HTTP client libraries and tools: whoever uses one, its name is not theirs
CLIENT_LIBRARY = re.compile(
    r"python-\w+client|keystoneauth1?|python-requests|requests|urllib3?|Python-urllib|"
    r"python-httpx|httpx|aiohttp|curl|Wget|Go-http-client|Java|okhttp|libwww-perl",
    re.IGNORECASE,
)


class ServicesFileError(ValueError):
    """The user's services file cannot be used."""


@dataclass
class Layout:
    """Where services listen: path prefixes behind a front door, and ports."""

    prefixes: dict[str, str] = field(default_factory=dict)
    ports: dict[int, str] = field(default_factory=dict)

    def name(self, port: int, path: str, front_doors: frozenset[int]) -> str | None:
        if port in front_doors:
            for prefix in sorted(self.prefixes, key=len, reverse=True):  # the longest first
                if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                    return self.prefixes[prefix]
        return self.ports.get(port)


@dataclass
class ServiceMap:
    front_door_ports: frozenset[int] = frozenset(FRONT_DOOR_PORTS)
    layout: Layout = field(default_factory=lambda: Layout(dict(PREFIXES), dict(PORTS)))
    user: Layout = field(default_factory=Layout)  # from the services file: before all else
    addresses: dict[Endpoint, str] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)
    catalog: Catalog = field(default_factory=Catalog)

    def callee(
        self, server: Endpoint, path: str, process: str | None = None, host: str | None = None
    ) -> str:
        """The service behind a server address, for a request with this path and Host: the
        user's file, the process that owns the socket (live), the catalog seen in the capture,
        the built-in layout, then the address."""
        port, doors = server[1], self.front_door_ports
        named = (
            self.addresses.get(server)
            or self.user.name(port, path, doors)
            or process
            or self.catalog.name(host, port, path)
            or self.layout.name(port, path, doors)
        )
        return named or endpoint_name(server)

    @staticmethod
    def agent_product(user_agent: str | None) -> str | None:
        """The first product of a User-Agent, without its version."""
        if not user_agent or not user_agent.split():
            return None
        return user_agent.split()[0].split("/", 1)[0]

    @classmethod
    def own_product(cls, user_agent: str | None) -> str | None:
        """The first product of a User-Agent, unless it names a client library, which says
        nothing of who uses it (python-keystoneclient, python-requests, keystoneauth1, curl)."""
        product = cls.agent_product(user_agent)
        return None if product is None or CLIENT_LIBRARY.fullmatch(product) else product

    @staticmethod
    def work_owner(callee: str, method: str, path: str) -> str | None:
        """The service whose work this operation is (placement claims are nova-scheduler's)."""
        return next((w.owner for w in work() if w.covers(callee, method, path)), None)

    def agent(self, user_agent: str | None) -> str | None:
        """The caller a User-Agent names for sure: the user file, the CLI, or a service."""
        product = self.agent_product(user_agent)
        if product is None:
            return None
        if product in self.agents:
            return self.agents[product]
        return AGENTS.get(product)

    @classmethod
    def load(cls, path: str | None) -> ServiceMap:
        services = cls()
        if path is None:
            return services
        try:
            with open(path, "rb") as stream:
                table = tomllib.load(stream)
        except OSError as error:
            raise ServicesFileError(f"{path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ServicesFileError(f"{path}: {error}") from None
        try:
            services._merge(table)
        except (TypeError, ValueError, AttributeError) as error:
            raise ServicesFileError(f"{path}: {error}") from None
        return services

    def _merge(self, table: dict) -> None:
        unknown = set(table) - {"front_door_ports", "prefixes", "ports", "agents", "layout"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
        if table.get("layout", True) is False:  # forget devstack's prefixes and classic ports
            self.layout = Layout()
        if "front_door_ports" in table:
            self.front_door_ports = frozenset(int(port) for port in table["front_door_ports"])
        self.user.prefixes.update({str(k): str(v) for k, v in table.get("prefixes", {}).items()})
        self.agents.update({str(k): str(v) for k, v in table.get("agents", {}).items()})
        for key, name in table.get("ports", {}).items():
            key = str(key)
            if key.isdigit():
                self.user.ports[int(key)] = str(name)
            else:
                host, _, port = key.rpartition(":")
                if not port.isdigit() or not host:
                    raise ValueError(f"bad port key {key!r} (use PORT or ADDRESS:PORT)")
                self.addresses[(host.strip("[]"), int(port))] = str(name)
