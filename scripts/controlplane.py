#!/usr/bin/env python3
"""Captures of an OpenStack control plane's traffic on loopback, with twins and truths (root).

    python3 scripts/controlplane.py /tmp/cp --calls 20000      # clean, compressed, stuck .pcap

Several CLI clients (`openstack`, each user with a token of their own) run commands at once in
bursts separated by idle gaps. nova-api serves them by calling keystone (keystonemiddleware's
token validation), glance-api (through the front door, which proxies to 127.0.0.1:60999: two
hops of one call), neutron-server on 9696 and placement-api; glance-api and neutron-server
validate the token at keystone in turn (depth 3). Every User-Agent is a client library's. The
traffic is real: `scripts/lab.py`'s machinery (one thread owns both ends of every connection,
callers keep a keep-alive pool per destination and open another connection only when all theirs
are busy) plays it, and its loopback capture, which refuses kernel drops, records it.

At the very start, the CLI also sends glance-api on 60999 a request on a connection of its own
that is never answered and stays open past the end of the capture. From that capture:
- `clean.pcap`: without that connection's packets (leaving it out changes no other packet);
- `compressed.pcap`: the clean packets, their times since the first divided by 10 (in
  nanoseconds: in microseconds, packets a few us apart would come to share a time);
- `stuck.pcap`: the capture as made, less the segments of one response half way through
  (a kernel drop: the later ACKs show the hole).
Each has `<name>.truth.json`: every call's id, caller, callee, parent and whether it is complete.

Rates are counted in capture time, per burst (a burst: packets closer than half a gap). If a
burst is slower than `--min-rate` calls/s (this Python driver plays about as fast as the
machine's 2 CPUs allow, sharing them with the capture), every timestamp is scaled by one
constant factor (t0 + (t - t0) / f) so that the slowest burst reaches it; the factor is printed
and written in the truth, and the gaps shrink with it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid
from pathlib import Path

import mutate
from lab import (
    HOST,
    PUBLIC_HOST,
    ROUTES,
    USER_AGENTS,
    Builder,
    Call,
    Link,
    Player,
    events,
    interleave,
    serialize,
    truth,
)
from loopback import capture

GLANCE = (HOST, 60999)
GLANCE_AGENT = "python-glanceclient"
NEUTRON_AGENT = "python-neutronclient"
PLACEMENT_AGENT = "keystoneauth1/5.0.0 python-requests/2.28.1 CPython/3.8.10"
STAMP = "2026-11-27T06:43:12.000000Z"
SERVICES = {  # the catalog a token carries: type -> (name, public URL)
    "identity": ("keystone", "/identity"),
    "compute": ("nova", "/compute/v2.1"),
    "image": ("glance", "/image"),
    "network": ("neutron", ":9696/networking"),
    "placement": ("placement", "/placement"),
    "volumev3": ("cinderv3", "/volume/v3"),
}


class ProxyBuilder(Builder):
    """lab's Builder, with the front door also saying which scheme the client used."""

    @staticmethod
    def proxy_headers(headers: list[list[str]], backend: tuple[str, int]) -> list[list[str]]:
        *forwarded, connection = Builder.proxy_headers(headers, backend)
        return [*forwarded, ["X-Forwarded-Proto", "http"], connection]


# -- what the clients do: specs in lab's scenario format ---------------------------------------


class Commands:
    """CLI commands as lab call specs, with JSON bodies of a few hundred bytes to a few KiB."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.catalog = [
            {
                "type": kind,
                "name": name,
                "id": self.uuid(),
                "endpoints": [
                    {
                        "id": self.uuid(),
                        "interface": interface,
                        "region": "RegionOne",
                        "region_id": "RegionOne",
                        "url": f"http://{PUBLIC_HOST}{path}",
                    }
                    for interface in ("public", "internal", "admin")
                ],
            }
            for kind, (name, path) in SERVICES.items()
        ]
        self.project = self.uuid()
        self.images = [self.uuid() for _ in range(20)]
        self.networks = [self.uuid() for _ in range(5)]

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self, user: str) -> dict:
        return {
            "token": {
                "methods": ["password"],
                "user": {"domain": {"id": "default", "name": "Default"}, "id": user, "name": user},
                "audit_ids": [self.uuid()[:22]],
                "expires_at": "2026-11-27T07:43:12.000000Z",
                "issued_at": STAMP,
                "project": {"domain": {"id": "default", "name": "Default"}, "id": self.project},
                "is_domain": False,
                "roles": [{"id": self.uuid(), "name": role} for role in ("admin", "member")],
                "catalog": self.catalog,
            }
        }

    def validate(self, service: str, user: str) -> dict:
        """keystonemiddleware in `service` checking the user's token."""
        return {
            "caller": service,
            "method": "GET",
            "path": "/identity/v3/auth/tokens",
            "response": {"body": self.token(user)},
        }

    def server(self, server: str, image: str) -> dict:
        network = self.networks[0]
        return {
            "id": server,
            "name": f"vm-{server[:8]}",
            "status": "ACTIVE",
            "tenant_id": self.project,
            "user_id": self.uuid().replace("-", ""),
            "metadata": {},
            "hostId": self.rng.randbytes(28).hex(),
            "image": {"id": image, "links": [{"rel": "bookmark", "href": f"/images/{image}"}]},
            "flavor": {"vcpus": 1, "ram": 2048, "disk": 20, "original_name": "m1.small"},
            "created": STAMP,
            "updated": STAMP,
            "addresses": {
                "private": [{"version": 4, "addr": f"10.0.0.{self.rng.randrange(2, 250)}"}]
            },
            "links": [
                {"rel": "self", "href": f"http://{PUBLIC_HOST}/compute/v2.1/servers/{server}"}
            ],
            "OS-EXT-STS:task_state": None,
            "OS-EXT-STS:vm_state": "active",
            "OS-EXT-STS:power_state": 1,
            "OS-EXT-AZ:availability_zone": "nova",
            "security_groups": [{"name": "default"}],
            "os-extended-volumes:volumes_attached": [],
            "networks": [network],
        }

    def image(self, image: str) -> dict:
        return {
            "id": image,
            "name": f"cirros-0.6.2-{image[:4]}",
            "status": "active",
            "visibility": "public",
            "size": 21430272,
            "checksum": self.rng.randbytes(16).hex(),
            "os_hash_algo": "sha512",
            "os_hash_value": self.rng.randbytes(64).hex(),
            "container_format": "bare",
            "disk_format": "qcow2",
            "owner": self.project.replace("-", ""),
            "created_at": STAMP,
            "updated_at": STAMP,
            "tags": [],
            "self": f"/v2/images/{image}",
            "file": f"/v2/images/{image}/file",
            "schema": "/v2/schemas/image",
        }

    def port(self, server: str) -> dict:
        return {
            "id": self.uuid(),
            "network_id": self.networks[0],
            "device_id": server,
            "device_owner": "compute:nova",
            "mac_address": "fa:16:3e:" + self.rng.randbytes(3).hex(":"),
            "fixed_ips": [{"subnet_id": self.uuid(), "ip_address": "10.0.0.17"}],
            "status": "ACTIVE",
            "binding:vif_type": "ovs",
            "security_groups": [self.uuid()],
            "created_at": STAMP,
        }

    def network(self, network: str) -> dict:
        return {
            "id": network,
            "name": f"net-{network[:4]}",
            "status": "ACTIVE",
            "subnets": [self.uuid()],
            "mtu": 1442,
            "provider:network_type": "geneve",
            "router:external": False,
            "shared": False,
            "project_id": self.project.replace("-", ""),
            "created_at": STAMP,
        }

    def server_call(self, user: str, method: str, path: str, image: str, server: str) -> dict:
        """nova-api serving a server: token, image, ports and allocations, each validated."""
        return {
            "caller": "openstack",
            "user": user,
            "method": method,
            "path": path,
            "body": {"server": {"name": "vm", "imageRef": image, "flavorRef": "2"}}
            if method == "POST"
            else None,
            "response": {
                "status": 202 if method == "POST" else 200,
                "body": {"server": self.server(server, image)},
            },
            "calls": [
                self.validate("nova-api", user),
                {
                    "caller": "nova-api",
                    "method": "GET",
                    "path": f"/image/v2/images/{image}",
                    "user_agent": GLANCE_AGENT,
                    "response": {"body": self.image(image)},
                    "calls": [self.validate("glance-api", user)],
                },
                {
                    "caller": "nova-api",
                    "method": "GET",
                    "path": f"/networking/v2.0/ports?device_id={server}",
                    "user_agent": NEUTRON_AGENT,
                    "response": {"body": {"ports": [self.port(server)]}},
                    "calls": [self.validate("neutron-server", user)],
                },
                {
                    "caller": "nova-api",
                    "method": "GET",
                    "path": f"/placement/allocations/{server}",
                    "user_agent": PLACEMENT_AGENT,
                    "response": {
                        "body": {
                            "allocations": {
                                self.uuid(): {
                                    "resources": {"VCPU": 1, "MEMORY_MB": 2048, "DISK_GB": 20}
                                }
                            }
                        }
                    },
                },
            ],
        }

    def command(self, user: str) -> dict:
        """One CLI command's root call, chosen by weight (server show and create nest 7 calls)."""
        image, server = self.rng.choice(self.images), self.uuid()
        pick = self.rng.random()
        if pick < 0.4:
            return self.server_call(user, "GET", f"/compute/v2.1/servers/{server}", image, server)
        if pick < 0.5:
            return self.server_call(user, "POST", "/compute/v2.1/servers", image, server)
        if pick < 0.7:
            servers = [self.server(self.uuid(), image) for _ in range(2)]
            root = ("GET", "/compute/v2.1/servers/detail", {"servers": servers}, "nova-api")
        elif pick < 0.8:
            root = ("GET", f"/image/v2/images/{image}", self.image(image), "glance-api")
        elif pick < 0.9:
            networks = [self.network(n) for n in self.networks[:3]]
            root = ("GET", "/networking/v2.0/networks", {"networks": networks}, "neutron-server")
        else:
            return {
                "caller": "openstack",
                "user": user,
                "method": "POST",
                "path": "/identity/v3/auth/tokens",
                "body": {
                    "auth": {
                        "identity": {
                            "methods": ["password"],
                            "password": {
                                "user": {
                                    "name": user,
                                    "domain": {"id": "default"},
                                    "password": "secret",
                                }
                            },
                        }
                    }
                },
                "response": {"status": 201, "body": self.token(user)},
            }
        method, path, body, service = root
        return {
            "caller": "openstack",
            "user": user,
            "method": method,
            "path": path,
            "response": {"body": body},
            "calls": [self.validate(service, user)],
        }


def count(spec: dict) -> int:
    return 1 + sum(count(child) for child in spec.get("calls", []))


def plan(
    builder: Builder, calls: int, clients: int, bursts: int, seed: int
) -> list[list[tuple[str, Call]]]:
    """The events of each burst: every client's commands in order, the clients interleaved."""
    rng = random.Random(seed + 1)  # not the builder's stream: ids must not repeat resources'
    commands, out = Commands(random.Random(seed + 2)), []
    for burst in range(bursts):
        quota = calls * (burst + 1) // bursts - calls * burst // bursts
        timelines: list[list[tuple[str, Call]]] = [[] for _ in range(clients)]
        made = number = 0
        while made < quota:
            client = number % clients
            spec = commands.command(f"user-{client}")
            made, number = made + count(spec), number + 1
            timelines[client] += events(builder.build(spec, None))
        out.append(interleave(timelines, [0] * clients, rng))
    return out


def stuck_request(builder: Builder) -> tuple[str, str, bytes]:
    """A CLI request straight to glance-api's port, never to be answered (an image download):
    its id, path and bytes."""
    call_id, path = builder.uuid().hex, f"/v2/images/{builder.uuid()}/file"
    headers = [
        ["Host", f"{GLANCE[0]}:{GLANCE[1]}"],
        ["User-Agent", USER_AGENTS["openstack"]],
        ["Accept-Encoding", "gzip, deflate"],
        ["Accept", "application/octet-stream"],
        ["Connection", "keep-alive"],
        ["X-Auth-Token", builder.token("user-0")],
        ["X-Requestshook-Request-Id", call_id],
        ["X-Requestshook-Request-From", "openstack"],
    ]
    return call_id, path, serialize(f"GET {path} HTTP/1.1", headers, b"")


# -- playing and capturing ----------------------------------------------------------------------


def record(path: str, bursts: list[list[tuple[str, Call]]], gap: float, stuck: bytes) -> None:
    """Capture the bursts (gap seconds apart) after the stuck request, whose connection stays
    open until the capture has ended."""
    player, held = Player(), []
    for burst in bursts:
        player.listen(burst)
    player.wire.listen(GLANCE)

    def play() -> None:
        held.append(Link(player.wire.listeners[GLANCE], GLANCE))
        held[0].request(stuck)
        try:
            for number, burst in enumerate(bursts):
                time.sleep(gap if number else 0.05)
                player.perform(burst)
        finally:
            player.close()

    ports = {80, *(address[1] for _, _, address in ROUTES.values() if address)}
    try:
        capture(ports, play, path)
    finally:
        for link in held:
            link.close()


def burst_rates(packets: list[mutate.Packet], sizes: list[int], gap: float) -> list[float]:
    """Calls/s of each burst in capture time: bursts are runs of packets closer than gap/2."""
    spans, start = [], packets[0].ts
    for before, after in zip(packets, packets[1:], strict=False):
        if after.ts - before.ts > gap / 2:
            spans.append(before.ts - start)
            start = after.ts
    spans.append(packets[-1].ts - start)
    if len(spans) != len(sizes):
        raise RuntimeError(f"{len(spans)} bursts in the capture, {len(sizes)} played")
    return [size / span for size, span in zip(sizes, spans, strict=True)]


def rows(bursts: list[list[tuple[str, Call]]]) -> list[dict]:
    calls = [call for burst in bursts for call in truth(burst)["calls"]]
    keep = ("id", "caller", "callee", "method", "path", "status", "parent")
    return [{key: call[key] for key in keep} | {"complete": True} for call in calls]


def write(directory: Path, name: str, packets: list, linktype: int, truth_: dict) -> None:
    mutate.write(str(directory / f"{name}.pcap"), packets, linktype)
    (directory / f"{name}.truth.json").write_text(json.dumps(truth_) + "\n")


def make(
    directory: str,
    calls: int = 20000,
    clients: int = 8,
    bursts: int = 10,
    gap: float = 5.0,
    min_rate: float = 5000.0,
    seed: int = 11,
) -> dict:
    """Make the three captures and their truths in `directory`; returns what was made."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    builder = ProxyBuilder(seed, hook=True)
    played = plan(builder, calls, clients, bursts, seed)
    stuck_id, stuck_path, stuck = stuck_request(builder)
    raw = str(out / "raw.pcap")
    record(raw, played, gap, stuck)
    packets, linktype = mutate.read(raw)
    os.remove(raw)
    clean = mutate.without(packets, stuck_id)
    sizes = [len(burst) // 2 for burst in played]
    rates = burst_rates(clean, sizes, gap)
    scale = max(1.0, min_rate / min(rates))
    if scale > 1:
        packets, clean = mutate.compress(packets, scale), mutate.compress(clean, scale)
        rates = [rate * scale for rate in rates]
    calls_ = rows(played)
    meta = {"bursts": len(played), "burst_rates": [round(r) for r in rates], "time_scale": scale}
    seconds = clean[-1].ts - clean[0].ts
    write(out, "clean", clean, linktype, {**meta, "seconds": seconds, "calls": calls_})
    compressed = {**meta, "seconds": seconds / 10, "calls": calls_}
    write(out, "compressed", mutate.compress(clean, 10), linktype, compressed)
    lost = middle_response(calls_)
    stuck_calls = [{**row, "complete": row["id"] != lost} for row in calls_]
    stuck_calls.append(
        {
            "id": stuck_id,
            "caller": "openstack",
            "callee": "glance-api",
            "method": "GET",
            "path": stuck_path,
            "status": None,
            "parent": None,
            "complete": False,
        }
    )
    stuck_truth = {**meta, "seconds": seconds, "calls": stuck_calls, "lost": lost}
    write(out, "stuck", mutate.lose(packets, lost), linktype, stuck_truth)
    made_in = time.monotonic() - began
    return {**meta, "calls": len(calls_), "seconds": seconds, "made_in": made_in}


def middle_response(rows_: list[dict]) -> str:
    """The first call from the middle on whose response crosses one connection (not glance's
    two hops), so that losing it makes exactly one call incomplete."""
    return next(r["id"] for r in rows_[len(rows_) // 2 :] if r["callee"] != "glance-api")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--gap", type=float, default=5.0, help="idle seconds between bursts")
    parser.add_argument("--min-rate", type=float, default=5000.0, help="calls/s in a burst")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    made = make(
        args.directory, args.calls, args.clients, args.bursts, args.gap, args.min_rate, args.seed
    )
    report(args.directory, made)


def report(directory: str, made: dict) -> None:
    sizes = ", ".join(
        f"{name} {os.path.getsize(os.path.join(directory, name + '.pcap')) / 1e6:.0f} MB"
        for name in ("clean", "compressed", "stuck")
    )
    rates = made["burst_rates"]
    print(
        f"{made['calls']} calls in {made['bursts']} bursts over {made['seconds']:.1f} s of "
        f"capture time, made in {made['made_in']:.0f} s; calls/s within bursts (capture time): "
        f"min {min(rates)}, max {max(rates)}; time scale {made['time_scale']:.2f}"
        f"{' (timestamps compressed to reach --min-rate)' if made['time_scale'] > 1 else ''}; "
        f"{sizes}"
    )


if __name__ == "__main__":
    main()
