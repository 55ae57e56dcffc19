"""The API operation catalog: built from the api-ref sources, matched through deployment
prefixes and version roots."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from conftest import PCAPS

from sniffer.apiref import OperationIndex

INDEX = OperationIndex()
TABLE = json.loads(resources.files("sniffer").joinpath("data/operations.json").read_text())


def test_catalog_covers_seven_projects_with_recorded_commits():
    assert len(TABLE["operations"]) > 1000
    assert {source["project"] for source in TABLE["sources"]} == {
        "openstack/keystone",
        "openstack/glance",
        "openstack/nova",
        "openstack/neutron-lib",
        "openstack/cinder",
        "openstack/placement",
        "openstack/swift",
    }
    assert all(len(source["commit"]) == 40 for source in TABLE["sources"])


def test_the_seed_link():
    operation = INDEX.match("image", "GET", "/v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c")
    assert operation.title == "Show Image"
    assert operation.url == (
        "https://docs.openstack.org/api-ref/image/v2/index.html"
        "?expanded=show-image-detail#show-image"
    )


@pytest.mark.parametrize(
    ("service", "method", "path", "body", "title"),
    [
        (
            "identity",
            "POST",
            "/identity/v3/auth/tokens",
            b'{"auth": {"identity": {"methods": ["password"], "password": {}}, "scope": {}}}',
            "Password Authentication With Scoped Authorization",
        ),
        (
            "identity",
            "GET",
            "/identity/v3/auth/tokens",
            b"",
            "Validate And Show Information For Token",
        ),
        ("identity", "GET", "/identity/v3/projects", b"", "List Projects"),
        ("image", "GET", "/image/v2/images", b"", "List Images"),
        ("image", "PUT", "/v2/images/77aa/file", b"", "Upload Binary Image Data"),
        ("compute", "GET", "/compute/v2.1/servers/detail", b"", "List Servers Detailed"),
        ("compute", "GET", "/compute/v2.1/servers/5b9c", b"", "Show Server Details"),
        (
            "compute",
            "POST",
            "/compute/v2.1/servers/5b9c/action",
            b'{"os-start": null}',
            "Start Server (os-start Action)",
        ),
        (
            "compute",
            "POST",
            "/compute/v2.1/servers/5b9c/action",
            b'{"reboot": {"type": "HARD"}}',
            "Reboot Server (reboot Action)",
        ),
        ("network", "GET", "/networking/v2.0/ports", b"", "List Ports"),
        ("network", "POST", "/v2.0/networks", b'{"network": {}}', "Create Network"),
        (
            "block-storage",
            "GET",
            "/volume/v3/de5a/volumes/detail",
            b"",
            "List Accessible Volumes With Details",
        ),
        ("placement", "GET", "/placement/allocation_candidates", b"", "List Allocation Candidates"),
        (
            "object-store",
            "GET",
            "/v1/AUTH_de5a/images",
            b"",
            "Show Container Details And List Objects",
        ),
    ],
)
def test_a_sample_of_operations_per_service(service, method, path, body, title):
    operation = INDEX.match(service, method, path, body)
    assert operation is not None and operation.title == title
    assert operation.url.startswith("https://docs.openstack.org/api-ref/")


def test_unknown_paths_match_nothing():
    assert INDEX.match("image", "GET", "/v2/nothing/here") is None
    assert INDEX.match(None, "GET", "/v2/images/x") is None


def test_coverage_of_the_lab_scenarios(sniff):
    """The share of lab calls linked to an operation (reported in the README)."""
    matched = total = 0
    for name in ("image-show", "server-create", "image-upload", "protocol"):
        calls = sniff(PCAPS / f"{name}.pcap").calls()
        total += len(calls)
        matched += sum(1 for call in calls if call["operation"])
    assert (matched, total) == (66, 69)
