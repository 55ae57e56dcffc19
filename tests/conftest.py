"""Shared helpers: run the real command on real captures and read what it wrote."""

from __future__ import annotations

import json
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
OUTPUTS = ("body.md", "diagram.md", "index.md", "log.md", "calls.jsonl")
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
    """Run osflow-sniff in-process on captures, writing the documents to a fresh directory."""
    count = 0

    def run(*captures: Path | str, options: tuple[str, ...] = ()) -> Run:
        nonlocal count
        count += 1
        out = tmp_path / f"out{count}"
        args = [arg for capture in captures for arg in ("-r", str(capture))]
        result = CliRunner().invoke(main, [*args, "-o", str(out), *options])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, result.stdout, result.stderr, out)

    return run


def command(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    return subprocess.run(["osflow-sniff", *args], capture_output=True, text=True, timeout=120)
