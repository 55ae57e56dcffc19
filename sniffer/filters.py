"""Less noise: drop calls (and the calls made while serving them) from every output.

Rules come from an ignore file in the JSON format the original requestshook tool read:

    {"mappings": {"{uuid}": "[0-9a-f-]{32,36}"},
     "filters": [{"from": "nova-compute", "to": "placement-api", "method": "GET",
                  "urls": ["/placement/resource_providers/{uuid}/inventories"]}]}

A filter drops a call when every field it has matches (`urls`: any of them matches the whole
path of one of the call's hops, `mappings` standing for parts of it), and from the command line:
`--only-service` keeps the calls a service makes or serves, `--exclude-service` drops them, and
`--exclude-path` drops calls whose path matches a regular expression. The kept messages are
numbered again from 1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .flow import Call


class IgnoreFileError(ValueError):
    """The ignore file cannot be used."""


@dataclass(frozen=True)
class Rule:
    caller: str | None = None
    callee: str | None = None
    method: str | None = None
    urls: tuple[re.Pattern[str], ...] = ()

    def matches(self, caller: str, callee: str, method: str, paths: list[str]) -> bool:
        if self.caller is not None and caller != self.caller:
            return False
        if self.callee is not None and callee != self.callee:
            return False
        if self.method is not None and method != self.method.upper():
            return False
        return not self.urls or any(url.fullmatch(path) for url in self.urls for path in paths)


def load_ignore(path: str) -> list[Rule]:
    try:
        with open(path, encoding="utf-8") as stream:
            table = json.load(stream)
        mappings = dict(table.get("mappings", {}))
        return [_rule(entry, mappings) for entry in table.get("filters", [])]
    except OSError as error:
        raise IgnoreFileError(f"{path}: {error.strerror}") from None
    except (ValueError, TypeError, AttributeError, re.error) as error:
        raise IgnoreFileError(f"{path}: {error}") from None


def _rule(entry: dict, mappings: dict[str, str]) -> Rule:
    unknown = set(entry) - {"from", "to", "method", "urls"}
    if unknown:
        raise ValueError(f"unknown filter field {sorted(unknown)[0]!r}")
    return Rule(
        entry.get("from"),
        entry.get("to"),
        entry.get("method"),
        tuple(_url(url, mappings) for url in entry.get("urls", [])),
    )


def _url(url: str, mappings: dict[str, str]) -> re.Pattern[str]:
    """A URL pattern: the mappings' placeholders are regular expressions, the rest is literal."""
    if not mappings:
        return re.compile(re.escape(url))
    placeholders = "|".join(re.escape(name) for name in mappings)
    parts = re.split(f"({placeholders})", url)
    return re.compile("".join(mappings.get(part, re.escape(part)) for part in parts))


@dataclass
class Selection:
    """Which calls the outputs show."""

    rules: list[Rule] = field(default_factory=list)
    only_services: frozenset[str] = frozenset()
    exclude_services: frozenset[str] = frozenset()
    exclude_paths: tuple[re.Pattern[str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rules or self.only_services or self.exclude_services or self.exclude_paths)

    def drops(self, call: Call) -> bool:
        paths = [hop.request.path for hop in call.hops]
        return self.drops_parts(call.caller, call.callee, call.request.method, paths)

    def drops_parts(self, caller: str, callee: str, method: str, paths: list[str]) -> bool:
        """Whether a call so described is left out (its paths: one per hop, innermost last)."""
        services = {caller, callee}
        if self.only_services and not services & self.only_services:
            return True
        if services & self.exclude_services:
            return True
        if any(pattern.search(paths[-1]) for pattern in self.exclude_paths):
            return True
        return any(rule.matches(caller, callee, method, paths) for rule in self.rules)
