#!/usr/bin/env python3
"""Write session.json: a user's session on a devstack, five `openstack` commands back to back
while nova-compute reports to placement in the background.

Each command is one process, as the real client runs: version discovery `GET /identity/` (300),
a password login `POST /identity/v3/auth/tokens` (201, a new token in `X-Subject-Token`), the
service's version discovery, then its API calls with that token; name lookups as openstacksdk's
`find` makes them (a GET by id answered 404, then a search); services validate each new token
once at keystone (keystonemiddleware caches it). `project show` looks the project up with
python-keystoneclient. nova-compute logs in once, then every cycle lists its inventories (and
updates them when they changed) and its allocations. scripts/lab.py plays it on a clock.

    python3 scripts/scenarios/session.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = "http://182.161.114.101"
IMG, IMG2 = "a42bfade-78ec-4c95-b7b4-272ba265072c", "6d3f1e2c-8b7a-4c59-9e0d-1a2b3c4d5e6f"
SRV = "5b9c3c6e-2f0b-4f5e-9d1a-8f6f7c1d2e3a"
RP = "e8c4d3b2-1a09-4f7e-8d6c-5b4a39281706"
ADMIN, DEMO = "de5af600557d44d0996e667499376dbb", "0f4c3b2a19e84d7c8b6a5f4e3d2c1b0a"
SERVICE = "8a1b2c3d4e5f40718293a4b5c6d7e8f9"  # the service project
KEYSTONECLIENT = "python-keystoneclient"  # osc's identity commands, as keystonemiddleware's
COMPUTE_VERSION = [
    ["OpenStack-API-Version", "compute 2.96"],
    ["X-OpenStack-Nova-API-Version", "2.96"],
]
PLACEMENT_VERSION = [["OpenStack-API-Version", "placement 1.26"]]


def call(
    caller: str,
    method: str,
    path: str,
    status: int = 200,
    *,
    body: object = None,
    rbody: object = None,
    headers: list | None = None,
    rheaders: list | None = None,
    subject_token: bool = False,
    calls: list | None = None,
    **spec: object,
) -> dict:
    """A scenario call; `spec` takes lab.py's other keys (token, user_agent, delay, took)."""
    call_ = {"caller": caller, "method": method, "path": path, **spec}
    if body is not None:
        call_["body"] = body
    if headers:
        call_["extra_headers"] = headers
    response: dict = {"status": status}
    if rbody is not None:
        response["body"] = rbody
    if rheaders:
        response["extra_headers"] = rheaders
    if subject_token:
        response["subject_token"] = True
    call_["response"] = response
    if calls:
        call_["calls"] = calls
    return call_


def check(service: str, project: str = "admin") -> dict:
    """keystonemiddleware validating a new token (once: it caches the answer)."""
    token = {
        "methods": ["password"],
        "expires_at": "2026-12-03T15:00:00.000000Z",
        "project": {"id": ADMIN if project == "admin" else SERVICE, "name": project},
        "roles": [{"name": "admin"}, {"name": "member"}, {"name": "reader"}],
    }
    path = "/identity/v3/auth/tokens"
    return call(service, "GET", path, rbody={"token": token}, subject_token=True, took=0.018)


def catalog() -> list[dict]:
    entries = [
        ("identity", "keystone", "/identity"),
        ("image", "glance", "/image"),
        ("compute", "nova", "/compute/v2.1"),
        ("placement", "placement", "/placement"),
    ]
    return [
        {
            "type": kind,
            "name": name,
            "endpoints": [{"url": HOST + path, "interface": "public", "region": "RegionOne"}],
        }
        for kind, name, path in entries
    ]


def login(caller: str, user: str, password: str, project: str) -> dict:
    """A password login (no token sent); the answer carries the new token."""
    domain = {"id": "default"}
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": domain, "password": password}},
            },
            "scope": {"project": {"name": project, "domain": domain}},
        }
    }
    token = {
        "methods": ["password"],
        "user": {"name": user, "domain": domain},
        "project": {"name": project, "domain": domain},
        "expires_at": "2026-12-03T15:00:00.000000Z",
        "catalog": catalog(),
    }
    return call(
        caller,
        "POST",
        "/identity/v3/auth/tokens",
        201,
        body=body,
        rbody={"token": token},
        subject_token=True,
        token=False,
        took=0.12,  # keystone checks the password's bcrypt hash: the slowest call of a command
    )


def start() -> list[dict]:
    """Every command starts the same way: keystone's versions, then a password login."""
    link = {"rel": "self", "href": f"{HOST}/identity/v3/"}
    versions = {"versions": {"values": [{"id": "v3.14", "status": "stable", "links": [link]}]}}
    return [
        call("openstack", "GET", "/identity/", 300, rbody=versions, token=False, took=0.004),
        login("openstack", "admin", "secret", "admin"),
    ]


def image(id_: str, name: str) -> dict:
    return {
        "id": id_,
        "name": name,
        "status": "active",
        "visibility": "public",
        "disk_format": "qcow2",
        "container_format": "bare",
        "size": 21233664,
        "min_ram": 0,
        "min_disk": 0,
        "self": f"/v2/images/{id_}",
        "schema": "/v2/schemas/image",
    }


CIRROS, UBUNTU = image(IMG, "cirros"), image(IMG2, "ubuntu-22.04")
IMAGES = {"images": [CIRROS, UBUNTU], "first": "/v2/images", "schema": "/v2/schemas/images"}
FLAVORS = {
    "flavors": [
        {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1, "extra_specs": {}},
        {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20, "extra_specs": {}},
    ]
}


def glance(path: str, status: int = 200, rbody: object = None, check_: bool = False) -> dict:
    calls = [check("glance-api")] if check_ else None
    took = 0.03 if status == 200 else 0.008
    return call("openstack", "GET", "/image" + path, status, rbody=rbody, calls=calls, took=took)


def glance_versions() -> dict:
    link = {"rel": "self", "href": f"{HOST}/image/v2/"}
    versions = {"versions": [{"id": "v2.16", "status": "CURRENT", "links": [link]}]}
    return call("openstack", "GET", "/image", 300, rbody=versions, token=False, took=0.004)


def nova_versions() -> list[dict]:
    version = {
        "version": {
            "id": "v2.1",
            "status": "CURRENT",
            "version": "2.96",
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
        }
    }
    moved = [["Location", f"{HOST}/compute/v2.1/"]]
    return [
        call("openstack", "GET", "/compute/v2.1", 302, rheaders=moved, token=False, took=0.002),
        call("openstack", "GET", "/compute/v2.1/", rbody=version, token=False, took=0.005),
    ]


def nova(
    path: str, status: int = 200, rbody: object = None, check_: bool = False, took: float = 0.02
) -> dict:
    """A compute call at the negotiated microversion."""
    calls = [check("nova-api")] if check_ else None
    return call(
        "openstack",
        "GET",
        "/compute/v2.1" + path,
        status,
        rbody=rbody,
        headers=COMPUTE_VERSION,
        rheaders=COMPUTE_VERSION,
        calls=calls,
        took=took,
    )


def keystone(path: str, status: int, rbody: object) -> dict:
    """An identity call of osc's identity commands, made with python-keystoneclient."""
    agent = KEYSTONECLIENT
    return call("openstack", "GET", "/identity/v3" + path, status, rbody=rbody, user_agent=agent)


def command(line: str, title: str, gap: float, calls: list[dict]) -> dict:
    return {"command_line": line, "title": title, "gap": gap, "calls": [*start(), *calls]}


def commands() -> list[dict]:
    missing = {
        "message": "No image found with ID cirros<br /><br />\n\n\n",
        "code": "404 Not Found",
        "title": "Not Found",
    }
    server = {
        "id": SRV,
        "name": "vm1",
        "status": "ACTIVE",
        "image": {"id": IMG},
        "flavor": {"original_name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1},
        "addresses": {"private": [{"addr": "10.0.0.12", "version": 4}]},
    }
    no_flavor = {"itemNotFound": {"code": 404, "message": "Flavor m1.tiny could not be found."}}
    no_project = {
        "error": {"code": 404, "message": "Could not find project: demo.", "title": "Not Found"}
    }
    demo = {
        "id": DEMO,
        "name": "demo",
        "domain_id": "default",
        "enabled": True,
        "description": "",
        "is_domain": False,
        "parent_id": "default",
    }
    found = {"projects": [demo], "links": {"self": f"{HOST}/identity/v3/projects?name=demo"}}
    return [
        command(
            "openstack image list",
            "List Images",
            0.0,
            [glance_versions(), glance("/v2/images", rbody=IMAGES, check_=True)],
        ),
        command(
            "openstack image show cirros",
            "Show Image",
            0.9,
            [
                glance_versions(),
                glance("/v2/images/cirros", 404, rbody=missing, check_=True),
                glance("/v2/images?name=cirros", rbody={**IMAGES, "images": [CIRROS]}),
            ],
        ),
        command(
            "openstack server list",
            "List Servers Detailed",
            0.35,
            [
                *nova_versions(),
                nova("/servers/detail", rbody={"servers": [server]}, check_=True, took=0.06),
                glance_versions(),  # the image names: the images it uses, by id
                glance(
                    f"/v2/images?id=in:{IMG}", rbody={**IMAGES, "images": [CIRROS]}, check_=True
                ),
                nova("/flavors/detail?is_public=None", rbody=FLAVORS),  # the flavor names
            ],
        ),
        command(
            "openstack flavor show m1.tiny --os-password secret",
            "Show Flavor Details",
            1.3,
            [
                *nova_versions(),
                nova(
                    "/flavors/m1.tiny", 404, rbody=no_flavor, check_=True, took=0.008
                ),  # by id first
                nova("/flavors/detail?is_public=None", rbody=FLAVORS),  # then by name
                nova("/flavors/1/os-extra_specs", rbody={"extra_specs": {}}),
            ],
        ),
        command(
            "openstack project show demo",
            "Show Project Details",
            0.85,
            [
                keystone("/projects/demo", 404, no_project),
                keystone("/projects?name=demo", 200, found),
            ],
        ),
    ]


def report(cycle: int, at: float, changed: bool) -> list[dict]:
    """One run of nova-compute's update_available_resource, as its report client makes it: the
    provider's inventories (updated if they changed), then its allocations. Placement validates
    nova-compute's token the first time only."""
    path = f"/placement/resource_providers/{RP}"
    inventories = {
        "VCPU": {"total": 8, "reserved": 0, "allocation_ratio": 4.0},
        "MEMORY_MB": {"total": 15990, "reserved": 512, "allocation_ratio": 1.0},
        "DISK_GB": {"total": 77 - (cycle >= 1) - (cycle >= 4), "reserved": 0},
    }
    generation = 3 + (cycle > 1) + (cycle > 4)
    sent = {"inventories": inventories, "resource_provider_generation": generation}
    calls = [
        call(
            "nova-compute",
            "GET",
            f"{path}/inventories",
            rbody=sent,
            headers=PLACEMENT_VERSION,
            calls=[check("placement-api", "service")] if cycle == 0 else None,
            at=at,
            took=0.012,
        )
    ]
    if changed:
        stored = {**sent, "resource_provider_generation": generation + 1}
        calls.append(
            call(
                "nova-compute",
                "PUT",
                f"{path}/inventories",
                body=sent,
                rbody=stored,
                headers=PLACEMENT_VERSION,
                took=0.025,
            )
        )
    usage = {"resources": {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}}
    allocations = {"allocations": {SRV: usage}, "resource_provider_generation": generation}
    calls.append(
        call(
            "nova-compute",
            "GET",
            f"{path}/allocations",
            rbody=allocations,
            headers=PLACEMENT_VERSION,
            took=0.01,
        )
    )
    return calls


PERIOD = 1.2  # seconds between report cycles (a minute on a real host)


def background() -> list[dict]:
    """nova-compute: its own token once, then its report cycles, every PERIOD from 0.27 s: during
    commands 1, 2, 4 and 5 (their logins), not 3, and after the last."""
    cycles = [report(n, round(0.27 + n * PERIOD, 3), n in (1, 4)) for n in range(6)]
    return [login("nova-compute", "nova", "s3rvice-pass", "service")] + sum(cycles, [])


def main() -> None:
    scenario = {
        "name": "session",
        "description": (
            "a session: five openstack commands back to back, each its own process (own "
            "connections, own login and token), 0.35 to 1.3 s apart; nova-compute reports "
            "to placement in the background, overlapping them"
        ),
        "seed": 23,
        "timelines": [
            {"commands": commands(), "start": 0.3, "think": 0.015, "step": 0.002},
            {"calls": background(), "start": 0.1, "think": 0.004, "step": 0.002},
        ],
    }
    (HERE / "session.json").write_text(json.dumps(scenario, indent=1) + "\n")


if __name__ == "__main__":
    main()
