"""Service names from the keystone catalog seen in the capture, and their precedence."""

from __future__ import annotations

import json

import pytest
from conftest import PCAPS

from sniffer.catalog import Catalog
from sniffer.flow import Body
from sniffer.services import ServiceMap

SEED = PCAPS / "image-show.pcap"


def callees(run) -> list[tuple[str, str]]:
    calls = sorted(run.calls(), key=lambda call: call["numbers"])
    return [(call["method"] + " " + call["path"], call["callee"]) for call in calls]


def test_catalog_names_later_calls_without_any_layout(sniff, tmp_path):
    """With the built-in layout switched off, the calls before the token response are named by
    address; every call after it is named from the catalog the response carried."""
    services = tmp_path / "services.toml"
    services.write_text("layout = false\nfront_door_ports = []\n")
    run = sniff(SEED, options=("--services", str(services)))
    image = "GET /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c"
    assert callees(run) == [
        ("GET /identity/", "127.0.0.1:80"),
        ("POST /identity/v3/auth/tokens", "127.0.0.1:80"),
        (image, "glance-api"),  # http://182.161.114.101/image in the catalog
        ("GET /identity/v3/auth/tokens", "keystone"),  # http://182.161.114.101/identity
    ]
    nested = next(call for call in run.calls() if call["caller"] == "glance-api")
    assert nested["parent"] is not None  # and the names make the nesting


def test_the_users_file_comes_before_the_catalog(sniff, tmp_path):
    services = tmp_path / "services.toml"
    services.write_text('front_door_ports = [80]\n[prefixes]\n"/image" = "glance-apache"\n')
    named = dict(callees(sniff(SEED, options=("--services", str(services)))))
    assert named["GET /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c"] == "glance-apache"


def test_the_catalog_comes_before_the_layout():
    """A deployment whose /image serves something else than devstack's: the catalog says so."""
    catalog = {
        "token": {
            "catalog": [
                {
                    "type": "object-store",
                    "name": "swift",
                    "endpoints": [{"url": "http://10.0.0.5/image", "interface": "public"}],
                },
            ]
        }
    }
    data = json.dumps(catalog).encode()
    services = ServiceMap()
    server = ("10.0.0.5", 80)
    assert services.callee(server, "/image/v1/AUTH_x", host="10.0.0.5") == "glance-api"
    assert services.catalog.learn(Body(data, len(data)))
    assert services.callee(server, "/image/v1/AUTH_x", host="10.0.0.5") == "swift-proxy-server"
    # a process name (live) still comes first, and the user's file before that
    assert services.callee(server, "/image/x", "nova-api", "10.0.0.5") == "nova-api"
    services.addresses[server] = "mine"
    assert services.callee(server, "/image/x", "nova-api", "10.0.0.5") == "mine"


@pytest.mark.parametrize(
    "token",
    [
        {"catalog": "not a list"},
        {"catalog": [1, "x", None, {"type": ["a"], "endpoints": [{"url": 5}, "u"]}]},
        {"catalog": [{"type": "image", "endpoints": {"url": "http://h/"}}]},
        {"catalog": [{"type": "image", "endpoints": [{"url": "http://h:80F0/x"}]}]},
        {"catalog": [{"type": "image", "endpoints": [{"url": "http://[::1/x"}]}]},
        {"catalog": [{"name": 7, "endpoints": [{"url": "http://h/"}]}]},
    ],
)
def test_a_catalog_of_the_wrong_shape_names_nothing(token) -> None:
    """The body is the peer's: whatever is not shaped as a catalog is passed over, no error."""
    catalog = Catalog()
    data = json.dumps({"token": token}).encode()
    catalog.learn(Body(data, len(data)))
    assert catalog.endpoints == {}
