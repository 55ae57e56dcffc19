"""Shared helpers: run the real command on real captures and read what it wrote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from sniffer.cli import main

REPO = Path(__file__).resolve().parent.parent
PCAPS = REPO / "pcaps"
GOLDEN = Path(__file__).resolve().parent / "golden"
OUTPUTS = ("body.md", "diagram.md", "index.md", "log.md", "calls.jsonl", "flow.har", "report.html")
sys.path.insert(0, str(REPO / "scripts"))


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    out: Path

    def read(self, name: str) -> str:
        return (self.out / name).read_text(encoding="utf-8")

    def calls(self) -> list[dict]:
        return [json.loads(line) for line in self.read("calls.jsonl").splitlines()]

    def outputs(self) -> dict[str, str]:
        return {name: self.read(name) for name in OUTPUTS}


@pytest.fixture
def sniff(tmp_path: Path):
    """Run osflow-sniff in-process on captures, writing the documents to a fresh directory, all
    calls in one page (`--split none`) unless the options say otherwise (test_commands.py)."""
    count = 0

    def run(*captures: Path | str, options: tuple[str, ...] = ()) -> Run:
        nonlocal count
        count += 1
        out = tmp_path / f"out{count}"
        args = [arg for capture in captures for arg in ("-r", str(capture))]
        if not any(option.startswith("--split") for option in options):
            options = ("--split", "none", *options)
        result = CliRunner().invoke(main, [*args, "-o", str(out), *options])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, result.stdout, result.stderr, out)

    return run


def command(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    return subprocess.run(["osflow-sniff", *args], capture_output=True, text=True, timeout=120)


def disagreements(run: Run, truth: dict) -> list[str]:
    """Where a run differs from a lab's truth: every call's caller, callee, method, path, status
    and parent, and the order of all messages. Calls are matched by message number, so captures
    without Requestshook ids (whose calls get synthetic ids) are judged the same way."""
    messages = truth["messages"]  # [kind, truth id] in the order the lab sent them
    calls = run.calls()
    found: dict[str, str] = {}  # tool id -> truth id
    problems = []
    for call in calls:
        for number, kind in zip(call["numbers"], ("request", "response"), strict=False):
            expected = messages[number - 1] if number <= len(messages) else None
            if expected is None or expected[0] != kind:
                problems.append(f"message {number} ({kind} of {call['method']} {call['path']})")
            elif found.setdefault(call["id"], expected[1]) != expected[1]:
                problems.append(f"message {number}: request and response of different calls")
    if len(calls) != len(truth["calls"]):
        problems.append(f"{len(calls)} calls found, {len(truth['calls'])} made")
    by_id = {t["id"]: t for t in truth["calls"]}
    for call in calls:
        want = by_id.get(found.get(call["id"]))
        if want is None:
            continue
        target = call["path"] + ("?" + call["query"] if call["query"] else "")
        parent = found.get(call["parent"]) if call["parent"] else None
        got = (call["caller"], call["callee"], call["method"], target, call["status"], parent)
        expected = tuple(
            want[k] for k in ("caller", "callee", "method", "path", "status", "parent")
        )
        if got != expected:
            problems.append(f"{got} != {expected}")
    return problems


def tcp_frame(
    sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b""
) -> bytes:
    """An Ethernet/IPv4/TCP frame between 127.0.0.1 ports, as a capture holds it."""
    import dpkt

    segment = dpkt.tcp.TCP(
        sport=sport,
        dport=dport,
        seq=seq & 0xFFFFFFFF,
        ack=ack & 0xFFFFFFFF,
        flags=flags,
        data=payload,
    )
    packet = dpkt.ip.IP(src=b"\x7f\0\0\x01", dst=b"\x7f\0\0\x01", p=6, data=segment)
    return bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, data=packet))


REFERENCE = re.compile(r'^!!! reference "[^"]*"\n    \[[^\n]*\n\n', re.M)


def assert_seed_document(produced: str) -> None:
    """body.md equals the seed document, apart from trailing whitespace and from the API
    references of steps (3) and (6): the seed's tool linked only glance operations, the full
    catalog also links keystone's. The seed's own reference (step 5) is reproduced exactly."""

    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in REFERENCE.sub("", text).split("\n")]

    expected = (GOLDEN / "image-show.body.md").read_text(encoding="utf-8")
    assert lines(produced) == lines(expected)
    references = [block.rstrip().split("\n") for block in REFERENCE.findall(produced)]
    (seed_reference,) = [block.rstrip().split("\n") for block in REFERENCE.findall(expected)]
    assert references[1] == [line.rstrip() for line in seed_reference]
    assert "[Password Authentication With Scoped Authorization]" in references[0][1]
    assert "[Validate And Show Information For Token]" in references[2][1]
