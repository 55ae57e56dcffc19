"""OpenStack API operations: match a request to its operation and its page in the API reference.

Templates are relative to the service's root as the client sees it, after any deployment prefix
(`/image`, `/compute`, ...). This table covers the operations of the seed flow and a few of their
neighbours; the full catalog, generated from the api-ref sources, replaces it later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .flow import Operation

# callee service name -> service type (as in a keystone catalog)
SERVICE_TYPES = {
    "keystone": "identity",
    "glance-api": "image",
    "nova-api": "compute",
    "neutron-server": "network",
    "cinder-api": "block-storage",
    "placement-api": "placement",
    "swift-proxy-server": "object-store",
    "trove-api": "database",
}

IMAGE = "https://docs.openstack.org/api-ref/image/v2/index.html"
COMPUTE = "https://docs.openstack.org/api-ref/compute/"


def _op(service: str, method: str, template: str, title: str, base: str) -> Operation:
    anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return Operation(service, method, template, title, f"{base}?expanded={anchor}-detail#{anchor}")


OPERATIONS: tuple[Operation, ...] = (
    _op("image", "GET", "/v2/images", "List Images", IMAGE),
    _op("image", "POST", "/v2/images", "Create Image", IMAGE),
    _op("image", "GET", "/v2/images/{image_id}", "Show Image", IMAGE),
    _op("image", "PATCH", "/v2/images/{image_id}", "Update Image", IMAGE),
    _op("image", "DELETE", "/v2/images/{image_id}", "Delete Image", IMAGE),
    _op("image", "PUT", "/v2/images/{image_id}/file", "Upload Binary Image Data", IMAGE),
    _op("image", "GET", "/v2/images/{image_id}/file", "Download Binary Image Data", IMAGE),
    _op("compute", "GET", "/v2.1/servers", "List Servers", COMPUTE),
    _op("compute", "POST", "/v2.1/servers", "Create Server", COMPUTE),
    _op("compute", "GET", "/v2.1/servers/{server_id}", "Show Server Details", COMPUTE),
)

LABELS = {"en": "API reference", "ko": "API 참조"}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(body + "/?")


class OperationIndex:
    """Operations by service type and method, matched by path template."""

    def __init__(self, operations: Iterable[Operation] = OPERATIONS) -> None:
        self.table: dict[tuple[str, str], list[tuple[re.Pattern[str], Operation]]] = {}
        for operation in operations:
            key = (operation.service, operation.method)
            self.table.setdefault(key, []).append((_pattern(operation.template), operation))

    def match(self, service_type: str | None, method: str, path: str) -> Operation | None:
        for pattern, operation in self.table.get((service_type or "", method), ()):
            if pattern.fullmatch(path):
                return operation
        return None
