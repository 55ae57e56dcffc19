"""Who is who: caller and callee names from headers, the deployment layout, or a user file.

The defaults are the layouts in DESIGN.md: devstack's front door on port 80 routing by path prefix,
and the classic per-service ports. A user file (`--services FILE`, TOML) overrides or extends them:

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

import tomllib
from dataclasses import dataclass, field

from .flow import Endpoint

FRONT_DOOR_PORTS = (80,)
PREFIXES = {
    "/identity": "keystone",
    "/compute": "nova-api",
    "/placement": "placement-api",
    "/volume": "cinder-api",
    "/networking": "neutron-server",
    "/image": "glance-api",
    "/key-manager": "barbican-api",
    "/load-balancer": "octavia-api",
    "/heat-api": "heat-api",
}
PORTS = {
    5000: "keystone",
    35357: "keystone",
    9292: "glance-api",
    8774: "nova-api",
    8775: "nova-metadata-api",
    8776: "cinder-api",
    8778: "placement-api",
    9696: "neutron-server",
    8080: "swift-proxy-server",
    8004: "heat-api",
    8779: "trove-api",
    9311: "barbican-api",
    9876: "octavia-api",
    9001: "designate-api",
    8786: "manila-api",
    6385: "ironic-api",
    9511: "magnum-api",
}
FROM_HEADER = "X-Requestshook-Request-From"


class ServicesFileError(ValueError):
    """The user's services file cannot be used."""


@dataclass
class ServiceMap:
    front_door_ports: frozenset[int] = frozenset(FRONT_DOOR_PORTS)
    prefixes: dict[str, str] = field(default_factory=lambda: dict(PREFIXES))
    ports: dict[int, str] = field(default_factory=lambda: dict(PORTS))
    addresses: dict[Endpoint, str] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)

    def prefix_of(self, path: str) -> tuple[str, str] | None:
        """(prefix, service) of a front-door path, the longest prefix first."""
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return prefix, self.prefixes[prefix]
        return None

    def callee(self, server: Endpoint, path: str) -> str:
        """The service behind a server address, for a request with this path."""
        named = self.addresses.get(server)
        if named:
            return named
        if server[1] in self.front_door_ports:
            found = self.prefix_of(path)
            if found:
                return found[1]
        named = self.ports.get(server[1])
        if named:
            return named
        host = f"[{server[0]}]" if ":" in server[0] else server[0]
        return f"{host}:{server[1]}"

    def caller(self, headers_from: str | None, user_agent: str | None, client: Endpoint) -> str:
        """The Requestshook header, else the User-Agent's first product, else the address."""
        if headers_from:
            return headers_from.strip()
        if user_agent and user_agent.split():
            product = user_agent.split()[0].split("/", 1)[0]
            return self.agents.get(product, product)
        return client[0]

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
        unknown = set(table) - {"front_door_ports", "prefixes", "ports", "agents"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
        if "front_door_ports" in table:
            self.front_door_ports = frozenset(int(port) for port in table["front_door_ports"])
        self.prefixes.update({str(k): str(v) for k, v in table.get("prefixes", {}).items()})
        self.agents.update({str(k): str(v) for k, v in table.get("agents", {}).items()})
        for key, name in table.get("ports", {}).items():
            key = str(key)
            if key.isdigit():
                self.ports[int(key)] = str(name)
            else:
                host, _, port = key.rpartition(":")
                if not port.isdigit() or not host:
                    raise ValueError(f"bad port key {key!r} (use PORT or ADDRESS:PORT)")
                self.addresses[(host.strip("[]"), int(port))] = str(name)
