#!/usr/bin/env python3
"""Mutation fuzzing of the whole pipeline, for a fixed time budget.

    python3 scripts/fuzz.py --seconds 60 [--seed N]

Each round takes a capture from pcaps/, damages it at random (bytes flipped in headers and
payloads, frames cut, dropped, duplicated, inserted, timestamps jittered, order shuffled), and
runs it through every stage and every output. An exception is a bug: the input that raised it is
saved to pcaps/regressions/ (which the tests replay) and the run exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

import mutate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sniffer.outputs import Chosen  # noqa: E402
from sniffer.pcapfile import Frame  # noqa: E402
from sniffer.pipeline import Pipeline  # noqa: E402

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
SOURCES = ["image-show.pcap", "protocol.pcap", "server-create-nohook.pcap"]


def damage(packets: list[mutate.Packet], rng: random.Random) -> list[mutate.Packet]:
    out = []
    for packet in packets:
        data = bytearray(packet.data)
        roll = rng.random()
        if roll < 0.04 and data:
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif roll < 0.06:
            del data[rng.randrange(len(data) + 1) :]
        elif roll < 0.08:
            continue
        elif roll < 0.10 and len(data) > 54:
            at = rng.randrange(54, len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        elif roll < 0.11:
            out.append(mutate.Packet(packet.ts, bytes(data), len(data)))
        jitter = rng.uniform(-0.01, 0.01) if rng.random() < 0.05 else 0.0
        out.append(mutate.Packet(packet.ts + jitter, bytes(data), len(data)))
    if rng.random() < 0.2:
        out = mutate.reorder(out, rng.randint(2, 12), rng)
    return out


def exercise(packets: list[mutate.Packet]) -> None:
    with tempfile.TemporaryDirectory() as out:
        pipeline = Pipeline(Chosen(out, {"otlp": out + "/traces.jsonl"}).open())
        pipeline.run(Frame(p.ts, 1, p.data, len(p.data)) for p in packets)
        pipeline.finish()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    sources = [mutate.read(str(PCAPS / name))[0] for name in SOURCES]
    deadline, rounds = time.monotonic() + args.seconds, 0
    while time.monotonic() < deadline:
        packets = damage(rng.choice(sources), rng)
        rounds += 1
        try:
            exercise(packets)
        except Exception:
            digest = hashlib.sha256(b"".join(p.data for p in packets)).hexdigest()[:12]
            path = PCAPS / "regressions" / f"crash-{digest}.pcap"
            mutate.write(str(path), packets, 1)
            traceback.print_exc()
            print(f"fuzz: seed {seed}, round {rounds}: crash saved to {path}", file=sys.stderr)
            return 1
    print(f"fuzz: seed {seed}: {rounds} rounds in {args.seconds:.0f} s, no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
