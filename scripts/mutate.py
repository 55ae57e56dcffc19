#!/usr/bin/env python3
"""Rewrite a capture the way real captures go wrong, deterministically (same seed, same result).

    python3 scripts/mutate.py IN.pcap OUT.pcap --resegment 7 --reorder 4 --duplicate 0.2 --seed 1

Operations, applied in this order (each optional):
  --wrap            shift sequence numbers so every direction wraps past 2**32 early on
  --resegment N     split every TCP payload into segments of at most N bytes
  --reorder W       shuffle the data segments of each TCP direction within runs of W packets
                    (packets keep their timestamps, so the file is no longer in time order)
  --duplicate P     repeat each data segment with probability P, right after the original
  --drop K          drop the K-th data segment (1-based) of the capture
  --snap N          cut every frame to N bytes, as tcpdump -s N does
  --start K         begin the capture at packet K (0-based): a capture started mid-way
  --truncate B      cut the output file B bytes before its end, mid-record
  --without ID      leave out every packet of the connection whose request carries
                    X-Requestshook-Request-Id ID (as if that connection had never been made)
  --lose ID         drop the data segments of the response carrying X-Requestshook-Request-Id
                    ID, as a kernel drop would (later ACKs still cover them: a hole)
  --compress F      divide every packet's time since the first packet by F (the output is then
                    a nanosecond pcap: microseconds divided need the digits)
Only Ethernet/IPv4/TCP frames are rewritten; anything else passes through unchanged.
"""

from __future__ import annotations

import argparse
import random
import struct
from dataclasses import dataclass
from decimal import Decimal

import dpkt


@dataclass
class Packet:
    ts: float
    data: bytes
    wirelen: int
    ns: int | None = None  # exact time in ns where set (a float's steps are 0.24 us)


def read(path: str) -> tuple[list[Packet], int]:
    with open(path, "rb") as stream:
        reader = dpkt.pcap.Reader(stream)
        linktype = reader.datalink()
        packets = [packet(ts, bytes(data)) for ts, data in reader]
    return packets, linktype


def packet(ts: float | Decimal, data: bytes) -> Packet:
    """dpkt gives a nanosecond capture's times as Decimals: kept exact in `ns`."""
    if isinstance(ts, Decimal):
        return Packet(float(ts), data, len(data), int(ts * 1_000_000_000))
    return Packet(ts, data, len(data))


def write(path: str, packets: list[Packet], linktype: int, truncate: int = 0) -> None:
    """A little-endian pcap, in nanoseconds if a packet has them (else microseconds); records
    keep their original wire length."""
    nano = any(packet.ns is not None for packet in packets)
    with open(path, "wb") as stream:
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        stream.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for packet in packets:
            if nano:
                sec, sub = divmod(nanoseconds(packet), 1_000_000_000)
            else:
                sec = int(packet.ts)
                sub = min(999999, round((packet.ts - sec) * 1e6))
            stream.write(struct.pack("<IIII", sec, sub, len(packet.data), packet.wirelen))
            stream.write(packet.data)
        if truncate:
            stream.truncate(stream.tell() - truncate)


def tcp_of(packet: Packet):
    """(ethernet, ip, tcp) of an Ethernet/IPv4/TCP frame, else None."""
    try:
        eth = dpkt.ethernet.Ethernet(packet.data)
    except (dpkt.UnpackError, IndexError):
        return None
    ip = eth.data
    if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
        return None
    return eth, ip, ip.data


def rebuild(packet: Packet, seq: int, payload: bytes, flags: int) -> Packet:
    """A copy of an Ethernet/IPv4/TCP frame with another sequence number, payload and flags."""
    eth, ip, tcp = tcp_of(packet)
    tcp.seq, tcp.data, tcp.flags, tcp.sum = seq & 0xFFFFFFFF, payload, flags, 0
    ip.len, ip.sum = 0, 0  # dpkt recomputes lengths and checksums when they are zero
    data = bytes(eth)
    return Packet(packet.ts, data, len(data))


def resegment(packets: list[Packet], size: int) -> list[Packet]:
    out = []
    for packet in packets:
        parts = tcp_of(packet)
        if parts is None or len(parts[2].data) <= size:
            out.append(packet)
            continue
        tcp = parts[2]
        payload = bytes(tcp.data)
        for offset in range(0, len(payload), size):
            last = offset + size >= len(payload)
            flags = tcp.flags if last else tcp.flags & ~(dpkt.tcp.TH_FIN | dpkt.tcp.TH_PUSH)
            out.append(rebuild(packet, tcp.seq + offset, payload[offset : offset + size], flags))
    return out


def direction(parts) -> tuple:
    _, ip, tcp = parts
    return ip.src, tcp.sport, ip.dst, tcp.dport


def reorder(packets: list[Packet], window: int, rng: random.Random) -> list[Packet]:
    """In each run of `window` consecutive packets, shuffle each direction's data segments among
    the places they occupy (as a network reorders: within a direction, over a short span)."""
    out = list(packets)
    for start in range(0, len(packets), window):
        slots: dict[tuple, list[int]] = {}
        for index in range(start, min(start + window, len(packets))):
            parts = tcp_of(packets[index])
            if parts is not None and len(parts[2].data) and not parts[2].flags & dpkt.tcp.TH_SYN:
                slots.setdefault(direction(parts), []).append(index)
        for indexes in slots.values():
            moved = [packets[i] for i in indexes]
            rng.shuffle(moved)
            for index, packet in zip(indexes, moved, strict=True):
                out[index] = packet
    return out


def wrap(packets: list[Packet], before: int = 700) -> list[Packet]:
    """Shift each direction's sequence numbers so they wrap past 2**32 after `before` bytes."""
    shift: dict[tuple, int] = {}
    out = []
    for packet in packets:
        parts = tcp_of(packet)
        if parts is None:
            out.append(packet)
            continue
        eth, ip, tcp = parts
        forward = direction(parts)
        backward = (forward[2], forward[3], forward[0], forward[1])
        shift.setdefault(forward, (0x100000000 - before - tcp.seq) & 0xFFFFFFFF)
        tcp.seq = (tcp.seq + shift[forward]) & 0xFFFFFFFF
        if tcp.flags & dpkt.tcp.TH_ACK and backward in shift:
            tcp.ack = (tcp.ack + shift[backward]) & 0xFFFFFFFF
        tcp.sum = ip.sum = 0
        data = bytes(eth)
        out.append(Packet(packet.ts, data, len(data)))
    return out


def duplicate(packets: list[Packet], probability: float, rng: random.Random) -> list[Packet]:
    out = []
    for packet in packets:
        out.append(packet)
        parts = tcp_of(packet)
        if parts is not None and len(parts[2].data) and rng.random() < probability:
            out.append(Packet(packet.ts, packet.data, packet.wirelen))
    return out


def drop(packets: list[Packet], nth: int) -> list[Packet]:
    seen = 0
    out = []
    for packet in packets:
        parts = tcp_of(packet)
        if parts is not None and len(parts[2].data):
            seen += 1
            if seen == nth:
                continue
        out.append(packet)
    return out


def snap(packets: list[Packet], length: int) -> list[Packet]:
    return [Packet(p.ts, p.data[:length], p.wirelen) for p in packets]


def find(packets: list[Packet], request_id: str, response: bool) -> int:
    """Index of the first data segment that starts a request (or a response) with that
    X-Requestshook-Request-Id."""
    start, mark = (b"HTTP/1.", b"") if response else (b"", b" HTTP/1.")
    needle = b"X-Requestshook-Request-Id: " + request_id.encode()
    for index, packet in enumerate(packets):
        if needle in packet.data and (parts := tcp_of(packet)) is not None:
            payload = bytes(parts[2].data)
            head = payload.partition(b"\r\n")[0]
            if payload.startswith(start) and mark in head and needle in payload:
                return index
    raise LookupError(f"no {'response' if response else 'request'} with id {request_id}")


def without(packets: list[Packet], request_id: str) -> list[Packet]:
    """Every packet but those of the connection that carries the request `request_id`."""
    forward = direction(tcp_of(packets[find(packets, request_id, response=False)]))
    ends = {forward, (forward[2], forward[3], forward[0], forward[1])}
    return [p for p in packets if (parts := tcp_of(p)) is None or direction(parts) not in ends]


def lose(packets: list[Packet], request_id: str) -> list[Packet]:
    """Drop the segments of the response to `request_id` (framed by Content-Length)."""
    first = find(packets, request_id, response=True)
    parts = tcp_of(packets[first])
    payload = bytes(parts[2].data)
    head, _, _ = payload.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    begin, end, way = parts[2].seq, parts[2].seq + len(head) + 4 + length, direction(parts)
    out = packets[:first]
    for packet in packets[first:]:
        parts = tcp_of(packet)
        inside = (
            parts is not None
            and direction(parts) == way
            and len(parts[2].data)
            and 0 <= (parts[2].seq - begin) & 0xFFFFFFFF < end - begin
        )
        if not inside:
            out.append(packet)
    return out


def nanoseconds(packet: Packet) -> int:
    """The packet's time in ns: exact where known, else read as a microsecond capture's."""
    return packet.ns if packet.ns is not None else round(packet.ts * 1e6) * 1000


def compress(packets: list[Packet], factor: float) -> list[Packet]:
    """The same packets with the time since the first one divided by `factor`, exact to the
    nanosecond (kept in microseconds, ties would appear that the capture did not have)."""
    if not packets:
        return packets
    t0 = nanoseconds(packets[0])
    out = []
    for p in packets:
        ns = t0 + round((nanoseconds(p) - t0) / factor)
        out.append(Packet(ns / 1e9, p.data, p.wirelen, ns))
    return out


def mutate(packets: list[Packet], args: argparse.Namespace) -> list[Packet]:
    rng = random.Random(args.seed)
    if args.wrap:
        packets = wrap(packets)
    if args.resegment:
        packets = resegment(packets, args.resegment)
    if args.reorder:
        packets = reorder(packets, args.reorder, rng)
    if args.duplicate:
        packets = duplicate(packets, args.duplicate, rng)
    if args.drop:
        packets = drop(packets, args.drop)
    if args.snap:
        packets = snap(packets, args.snap)
    if args.start:
        packets = packets[args.start :]
    if args.without:
        packets = without(packets, args.without)
    if args.lose:
        packets = lose(packets, args.lose)
    if args.compress:
        packets = compress(packets, args.compress)
    return packets


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("input")
    cli.add_argument("output")
    cli.add_argument("--wrap", action="store_true")
    cli.add_argument("--resegment", type=int, default=0)
    cli.add_argument("--reorder", type=int, default=0)
    cli.add_argument("--duplicate", type=float, default=0.0)
    cli.add_argument("--drop", type=int, default=0)
    cli.add_argument("--snap", type=int, default=0)
    cli.add_argument("--start", type=int, default=0)
    cli.add_argument("--truncate", type=int, default=0)
    cli.add_argument("--without", default="")
    cli.add_argument("--lose", default="")
    cli.add_argument("--compress", type=float, default=0.0)
    cli.add_argument("--seed", type=int, default=0)
    return cli


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    packets, linktype = read(args.input)
    write(args.output, mutate(packets, args), linktype, args.truncate)


if __name__ == "__main__":
    main()
