#!/usr/bin/env python3
"""Write the generated scenarios (server-create, image-upload) next to this file.

Headers are left to scripts/lab.py, which writes them the way OpenStack services do.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMG = "a42bfade-78ec-4c95-b7b4-272ba265072c"
SRV = "5b9c3c6e-2f0b-4f5e-9d1a-8f6f7c1d2e3a"
NET = "0b7e3a2c-5d44-4a8e-b0c6-3f1e9a7d6c21"
PORT = "c2f1e7a4-9b3d-4c58-8e6a-1d0f2b3c4a5e"
RP = "e8c4d3b2-1a09-4f7e-8d6c-5b4a39281706"


def call(caller, method, path, status=200, body=None, rbody=None, calls=(), **kw):
    d = {"caller": caller, "method": method, "path": path}
    if body is not None:
        d["body"] = body
    d["response"] = {"status": status}
    if rbody is not None:
        d["response"]["body"] = rbody
    if calls:
        d["calls"] = list(calls)
    d.update(kw)
    return d


def check(service):  # keystonemiddleware validating the caller's token
    return call(
        service,
        "GET",
        "/identity/v3/auth/tokens",
        200,
        rbody={
            "token": {
                "methods": ["password"],
                "expires_at": "2026-11-26T23:00:00Z",
                "project": {"id": "de5af600557d44d0996e667499376dbb", "name": "admin"},
                "roles": [{"name": "member"}, {"name": "reader"}],
            }
        },
    )


image = {
    "id": IMG,
    "name": "cirros-0.6.1-x86_64-disk",
    "status": "active",
    "disk_format": "qcow2",
    "container_format": "bare",
    "size": 21233664,
    "min_ram": 0,
    "min_disk": 0,
}


def server(status, task):
    return {
        "server": {
            "id": SRV,
            "name": "vm1",
            "status": status,
            "OS-EXT-STS:task_state": task,
            "image": {"id": IMG},
            "flavor": {"original_name": "m1.small"},
            "addresses": {}
            if status != "ACTIVE"
            else {"private": [{"addr": "10.0.0.12", "version": 4}]},
        }
    }


network = {"id": NET, "name": "private", "status": "ACTIVE", "mtu": 1450, "subnets": ["9a1b"]}
port = {
    "id": PORT,
    "network_id": NET,
    "device_id": SRV,
    "status": "DOWN",
    "binding:host_id": "",
    "fixed_ips": [{"ip_address": "10.0.0.12"}],
}
foreground = [
    call(
        "openstack",
        "GET",
        "/identity/",
        300,
        rbody={"versions": {"values": [{"id": "v3.14", "status": "stable"}]}},
    ),
    call(
        "openstack",
        "POST",
        "/identity/v3/auth/tokens",
        201,
        body={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "default"},
                            "password": "secretpass",
                        }
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        },
        rbody={
            "token": {
                "methods": ["password"],
                "catalog": [
                    {
                        "type": "compute",
                        "name": "nova",
                        "endpoints": [
                            {"url": "http://182.161.114.101/compute/v2.1", "interface": "public"}
                        ],
                    }
                ],
            }
        },
    ),
    call(
        "openstack",
        "GET",
        "/compute/v2.1/flavors/m1.small",
        200,
        rbody={"flavor": {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20}},
        calls=[check("nova-api")],
    ),
    call(
        "openstack", "GET", f"/image/v2/images/{IMG}", 200, rbody=image, calls=[check("glance-api")]
    ),
    call(
        "openstack",
        "GET",
        "/v1/AUTH_de5af600557d44d0996e667499376dbb/user-data?format=json",
        200,
        rbody=[{"name": "cloud-init.yaml", "bytes": 312, "content_type": "text/yaml"}],
        calls=[check("swift-proxy-server")],
    ),
    call(
        "openstack",
        "GET",
        "/networking/v2.0/networks?name=private",
        200,
        rbody={"networks": [network]},
        calls=[check("neutron-server")],
    ),
    call(
        "openstack",
        "POST",
        "/compute/v2.1/servers",
        202,
        body={
            "server": {
                "name": "vm1",
                "imageRef": IMG,
                "flavorRef": "2",
                "networks": [{"uuid": NET}],
                "adminPass": "hunter2hunter2",
            }
        },
        rbody={"server": {"id": SRV, "adminPass": "Zx8qLm3Pw9Rt", "links": []}},
        calls=[
            check("nova-api"),
            call(
                "nova-api",
                "GET",
                f"/image/v2/images/{IMG}",
                200,
                rbody=image,
                calls=[check("glance-api")],
            ),
            call(
                "nova-api",
                "GET",
                f"/networking/v2.0/networks/{NET}",
                200,
                rbody={"network": network},
                calls=[check("neutron-server")],
            ),
            call(
                "nova-api",
                "GET",
                f"/networking/v2.0/ports?device_id={SRV}",
                200,
                rbody={"ports": []},
            ),
            call(
                "nova-api",
                "GET",
                "/networking/v2.0/security-groups?name=default",
                200,
                rbody={"security_groups": [{"id": "sg1", "name": "default"}]},
            ),
            call(
                "nova-api",
                "GET",
                "/placement/usages?project_id=de5af600557d44d0996e667499376dbb",
                200,
                rbody={"usages": {"VCPU": 1, "MEMORY_MB": 2048, "DISK_GB": 20}},
                calls=[check("placement-api")],
            ),
        ],
    ),
] + [
    call(
        "openstack",
        "GET",
        f"/compute/v2.1/servers/{SRV}",
        200,
        rbody=server(status, task),
        calls=[check("nova-api")],
    )
    for status, task in (
        ("BUILD", "scheduling"),
        ("BUILD", "spawning"),
        ("BUILD", "spawning"),
        ("ACTIVE", None),
    )
]
scheduler = [
    call(
        "nova-scheduler",
        "GET",
        "/placement/allocation_candidates?resources=DISK_GB:20,MEMORY_MB:2048,VCPU:1",
        200,
        rbody={
            "allocation_requests": [
                {"allocations": {RP: {"resources": {"VCPU": 1, "MEMORY_MB": 2048, "DISK_GB": 20}}}}
            ],
            "provider_summaries": {RP: {"resources": {"VCPU": {"capacity": 8, "used": 0}}}},
        },
        calls=[check("placement-api")],
    ),
    call(
        "nova-scheduler",
        "PUT",
        f"/placement/allocations/{SRV}",
        204,
        body={
            "allocations": {RP: {"resources": {"VCPU": 1, "MEMORY_MB": 2048, "DISK_GB": 20}}},
            "consumer_generation": None,
            "project_id": "de5af600557d44d0996e667499376dbb",
            "user_id": "f7a842b4104247debd7589051c5321fc",
        },
        calls=[check("placement-api")],
    ),
]
compute = [
    call(
        "nova-compute",
        "GET",
        f"/placement/resource_providers/{RP}/inventories",
        200,
        rbody={"inventories": {"VCPU": {"total": 8}}, "resource_provider_generation": 3},
        calls=[check("placement-api")],
    ),
    call(
        "nova-compute",
        "GET",
        f"/image/v2/images/{IMG}",
        200,
        rbody=image,
        calls=[check("glance-api")],
    ),
    call(
        "nova-compute",
        "GET",
        f"/image/v2/images/{IMG}/file",
        200,
        rbody={"$bytes": 262144},
        calls=[check("glance-api")],
    ),
    call(
        "nova-compute",
        "POST",
        "/networking/v2.0/ports",
        201,
        body={"port": {"network_id": NET, "device_id": SRV}},
        rbody={"port": port},
        calls=[check("neutron-server")],
    ),
    call(
        "nova-compute",
        "PUT",
        f"/networking/v2.0/ports/{PORT}",
        200,
        body={"port": {"binding:host_id": "devstack", "device_owner": "compute:nova"}},
        rbody={"port": {**port, "status": "ACTIVE", "binding:host_id": "devstack"}},
        calls=[
            check("neutron-server"),
            call(
                "neutron-server",
                "POST",
                "/compute/v2.1/os-server-external-events",
                200,
                body={
                    "events": [
                        {
                            "name": "network-vif-plugged",
                            "server_uuid": SRV,
                            "tag": PORT,
                            "status": "completed",
                        }
                    ]
                },
                rbody={"events": [{"name": "network-vif-plugged", "code": 200}]},
                calls=[check("nova-api")],
            ),
        ],
    ),
    call(
        "nova-compute",
        "GET",
        f"/networking/v2.0/ports?device_id={SRV}",
        200,
        rbody={"ports": [port]},
        calls=[check("neutron-server")],
    ),
    call(
        "nova-compute",
        "PUT",
        f"/placement/resource_providers/{RP}/inventories",
        200,
        body={"inventories": {"VCPU": {"total": 8}}, "resource_provider_generation": 3},
        rbody={"inventories": {"VCPU": {"total": 8}}, "resource_provider_generation": 4},
        calls=[check("placement-api")],
    ),
]
scenario = {
    "name": "server-create",
    "description": (
        "openstack server create: nova-api fans out to glance, neutron and placement; "
        "nova-scheduler and nova-compute work in the background; "
        "neutron calls back nova's external events"
    ),
    "seed": 11,
    "timelines": [
        {"calls": foreground},
        {"calls": scheduler, "after": 18},
        {"calls": compute, "after": 22},
    ],
}


def count(calls):
    return sum(1 + count(c.get("calls", [])) for c in calls)


(HERE / "server-create.json").write_text(json.dumps(scenario, indent=1) + "\n")
upload = {
    "name": "image-upload",
    "description": (
        "openstack image create --file: a 20 MiB chunked upload through the front door "
        "to glance-api"
    ),
    "seed": 5,
    "calls": [
        call(
            "openstack",
            "POST",
            "/image/v2/images",
            201,
            body={"name": "big", "disk_format": "raw", "container_format": "bare"},
            rbody={**image, "id": "77aa", "status": "queued"},
            calls=[check("glance-api")],
        ),
        call(
            "openstack",
            "PUT",
            "/image/v2/images/77aa/file",
            204,
            body={"$bytes": 20 << 20},
            chunked=65536,
            calls=[check("glance-api")],
        ),
        call(
            "openstack",
            "GET",
            "/image/v2/images/77aa",
            200,
            rbody={**image, "id": "77aa", "size": 20 << 20},
            calls=[check("glance-api")],
        ),
    ],
}
(HERE / "image-upload.json").write_text(json.dumps(upload, indent=1) + "\n")
print(f"server-create: {count(foreground) + count(scheduler) + count(compute)} calls")

# server-create-clients: server-create-async as real services send it after the 202. nova-compute
# talks to glance and neutron through their client libraries with the user's token (handed on
# over RPC), and to placement, like nova-scheduler, with keystoneauth1 alone and a service token
# obtained before the capture began: no User-Agent names a service.
KEYSTONEAUTH = "keystoneauth1/5.0.0 python-requests/2.28.1 CPython/3.8.10"
LIBRARIES = {"/image/": "python-glanceclient", "/networking/": "python-neutronclient"}
clients = json.loads((HERE / "server-create-async.json").read_text())
clients["name"] = "server-create-clients"
clients["description"] = (
    "openstack server create, as server-create-async, with the User-Agents real services send: "
    "nova-compute calls glance and neutron through python-glanceclient and "
    "python-neutronclient with the user's token, handed on with the work; nova-scheduler and "
    "nova-compute call placement with keystoneauth1 alone and service tokens obtained before "
    "the capture"
)
foreground, *background = clients["timelines"]
login = foreground["calls"][1]
login["token"] = False
login["response"]["subject_token"] = True
for timeline in background:
    for root in timeline["calls"]:
        library = next((ua for prefix, ua in LIBRARIES.items() if prefix in root["path"]), None)
        root["user_agent"] = library or KEYSTONEAUTH
        if library:
            root["token_of"] = "user"
(HERE / "server-create-clients.json").write_text(json.dumps(clients, indent=2) + "\n")
