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
Only Ethernet/IPv4/TCP frames are rewritten; anything else passes through unchanged.
"""

from __future__ import annotations

import argparse
import random
import struct
from dataclasses import dataclass

import dpkt


@dataclass
class Packet:
    ts: float
    data: bytes
    wirelen: int


def read(path: str) -> tuple[list[Packet], int]:
    with open(path, "rb") as stream:
        reader = dpkt.pcap.Reader(stream)
        linktype = reader.datalink()
        packets = [Packet(ts, bytes(data), len(data)) for ts, data in reader]
    return packets, linktype


def write(path: str, packets: list[Packet], linktype: int, truncate: int = 0) -> None:
    """A microsecond little-endian pcap; records keep their original wire length."""
    with open(path, "wb") as stream:
        stream.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for packet in packets:
            sec = int(packet.ts)
            usec = min(999999, round((packet.ts - sec) * 1e6))
            stream.write(struct.pack("<IIII", sec, usec, len(packet.data), packet.wirelen))
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
    cli.add_argument("--seed", type=int, default=0)
    return cli


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    packets, linktype = read(args.input)
    write(args.output, mutate(packets, args), linktype, args.truncate)


if __name__ == "__main__":
    main()
