"""Prove a change left behaviour alone: every output of every capture in pcaps/, made by a
revision's code and by the working tree's, compared byte for byte.

    python3 scripts/same_outputs.py            # against HEAD
    python3 scripts/same_outputs.py 2ee0e34    # against any revision

Each capture is read twice on each side: with every output (-o, --har, --html, --otlp) in one
process, and with --jobs 2 --show-secrets --template-ids. The terminal output, the warnings and
the exit code count as outputs (not the record of what was written, `.osflow-sniff`, whose
times always differ). Prints each difference; exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = ".osflow-sniff"  # what a run wrote (see sniffer/owned.py)
RUNS = {
    "plain": ["-j1", "--har", "{out}/x.har", "--html", "{out}/x.html", "--otlp", "{out}/x.otlp"],
    "jobs2": ["-j2", "--show-secrets", "--template-ids"],
}


def captures() -> list[Path]:
    found = [p for p in (ROOT / "pcaps").glob("*") if p.suffix in (".pcap", ".pcapng")]
    return sorted(found + sorted((ROOT / "pcaps" / "regressions").glob("*.pcap")))


def export(revision: str, into: Path) -> Path:
    """The revision's files, as `git archive` gives them."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    into.mkdir()
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def outputs(code: Path, capture: Path, out: Path) -> None:
    """Every output of `code` on `capture`, into `out`."""
    for name, options in RUNS.items():
        place = out / name
        place.mkdir(parents=True)
        args = [arg.format(out=place) for arg in options]
        command = [sys.executable, "-m", "sniffer", "-r", str(capture), "-o", str(place / "o")]
        done = subprocess.run(
            command + args,
            cwd=code,
            env={**os.environ, "PYTHONPATH": str(code)},
            capture_output=True,
        )
        (place / "stdout").write_bytes(done.stdout)
        (place / "stderr").write_bytes(done.stderr)
        (place / "exit").write_text(f"{done.returncode}\n")


def differences(one: Path, other: Path) -> list[str]:
    """Files missing on one side or not the same bytes, relative to the two roots."""
    found = []
    compared = filecmp.dircmp(one, other)
    found += [f"only before: {name}" for name in compared.left_only]
    found += [f"only after: {name}" for name in compared.right_only]
    for name in compared.common_files:
        if name == RECORD:  # sizes and times of the files: the times always differ
            continue
        if not filecmp.cmp(one / name, other / name, shallow=False):
            found.append(f"differs: {name}")
    for name in compared.common_dirs:
        found += [f"{name}/{text}" for text in differences(one / name, other / name)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", nargs="?", default="HEAD")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        before = export(args.revision, Path(temp) / "code")
        found = []
        for capture in captures():
            sides = [Path(temp) / side / capture.name for side in ("before", "after")]
            outputs(before, capture, sides[0])
            outputs(ROOT, capture, sides[1])
            found += [f"{capture.name}: {text}" for text in differences(*sides)]
    for text in found:
        print(text)
    print(f"{len(captures())} captures, {len(found)} differences against {args.revision}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
