"""The OpenStack services this tool knows: one table, `data/openstack.toml`, read once.

Naming (services.py), the keystone catalog (catalog.py), the API reference (apiref.py) and the
live process lookup (procnet.py) each derive what they need from it, so a new service is one
entry in that file.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

FIELDS = frozenset(
    {"name", "types", "ports", "prefix", "processes", "agents", "api_ref", "work"}
)


@dataclass(frozen=True)
class Service:
    name: str
    types: tuple[str, ...] = ()  # catalog service types, the official one first
    ports: tuple[int, ...] = ()  # classic listening ports
    prefix: str | None = None  # devstack's path prefix behind the front door
    processes: tuple[str, ...] = ()  # regular expressions for command-line words
    agents: tuple[str, ...] = ()  # User-Agent products naming it as the caller
    api_ref: str | None = None  # the openstack/ project whose api-ref documents it
    work: tuple[str, ...] = ()  # "CALLEE METHOD PATH": operations on others that are its work


@dataclass(frozen=True)
class Work:
    """An operation on another service that is one service's work (port binding is
    nova-compute's): the caller of last resort when nothing on the wire names it."""

    owner: str
    callee: str
    method: re.Pattern[str]
    path: re.Pattern[str]  # matched against the end of the path, its query aside

    def covers(self, callee: str, method: str, path: str) -> bool:
        if callee != self.callee or not self.method.fullmatch(method):
            return False
        return self.path.search(path.partition("?")[0]) is not None


def parse(text: str) -> tuple[Service, ...]:
    """The services of a table in the data file's format, in its order; a mistake in it (an
    unknown field, a port, prefix, type or agent claimed twice) raises ValueError."""
    services = tuple(_service(entry) for entry in tomllib.loads(text).get("service", []))
    for claimed in ("types", "ports", "prefix", "agents"):
        _unique(services, claimed)
    names = {service.name for service in services}
    for service in services:
        for work in _work(service):
            if work.callee not in names:
                raise ValueError(f"service {service.name!r}: work on unknown {work.callee!r}")
    return services


def _work(service: Service) -> list[Work]:
    works = []
    for text in service.work:
        try:
            callee, method, path = text.split()
            works.append(Work(service.name, callee, re.compile(method), re.compile(f"{path}$")))
        except (ValueError, re.error):
            message = f"service {service.name!r}: work {text!r} is not CALLEE METHOD PATH"
            raise ValueError(message) from None
    return works


def _service(entry: dict) -> Service:
    if "name" not in entry:
        raise ValueError(f"a service without a name: {entry}")
    unknown = set(entry) - FIELDS
    if unknown:
        raise ValueError(f"service {entry['name']!r}: unknown field {sorted(unknown)[0]!r}")
    for pattern in entry.get("processes", ()):
        try:  # a bad pattern fails here, not at the first live connection
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"service {entry['name']!r}: pattern {pattern!r}: {error}") from None
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
    return Service(**fields)  # (checked against FIELDS above; TOML gives the types)


def _unique(services: tuple[Service, ...], field: str) -> None:
    """Each port, prefix, type and agent names one service: the derived maps need no order."""
    owner: dict[object, str] = {}
    for service in services:
        value = getattr(service, field)
        keys = value if isinstance(value, tuple) else (value,) if value else ()
        for key in keys:
            if owner.setdefault(key, service.name) != service.name:
                raise ValueError(f"{field} {key!r}: both {owner[key]} and {service.name}")


@functools.cache
def work() -> tuple[Work, ...]:
    """Every service's work, in the table's order."""
    return tuple(one for service in services() for one in _work(service))


@functools.cache
def services() -> tuple[Service, ...]:
    """The shipped table."""
    return parse(resources.files("sniffer").joinpath("data/openstack.toml").read_text())
