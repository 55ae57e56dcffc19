"""Files osflow-sniff wrote, so that a run never overwrites one it did not: a page written by
hand around the generated files, a capture's notes, a file changed since.

Each directory it writes into keeps a record, `.osflow-sniff`, of the size and modification time
each of its files had when the run that wrote it ended. A file that exists and does not match its
record is someone else's: the run refuses to start (`--force` overwrites it).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterable

from .atomic import AtomicFile, OutputError

RECORD = ".osflow-sniff"


def check(paths: Iterable[str], force: bool = False) -> None:
    """Refuse to write over a file this tool did not write (or that changed since)."""
    if force:
        return
    for path in paths:
        if _regular(path) and not _ours(path):
            raise OutputError(
                f"{path} exists and osflow-sniff did not write it (or it changed since): "
                "--force to overwrite it"
            )


def record(paths: Iterable[str]) -> None:
    """Remember the files a run wrote, as they are now."""
    by_directory: dict[str, list[str]] = {}
    for path in paths:
        if _regular(path):  # (not /dev/stdout, a pipe: nothing there to protect)
            by_directory.setdefault(os.path.dirname(path) or ".", []).append(path)
    for directory, written in by_directory.items():
        known = _read(directory)
        for path in written:
            with contextlib.suppress(OSError):  # (not written: an output with nothing to say)
                known[os.path.basename(path)] = _stamp(path)
        out = AtomicFile(os.path.join(directory, RECORD))
        out.write(json.dumps(known, indent=1, sort_keys=True) + "\n")
        out.commit()


def _regular(path: str) -> bool:
    """A file that could be someone's (not a terminal, a pipe or another device)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _ours(path: str) -> bool:
    try:
        stamp = _stamp(path)
    except OSError:
        return False
    return _read(os.path.dirname(path) or ".").get(os.path.basename(path)) == stamp


def _stamp(path: str) -> list[int]:
    status = os.stat(path)
    return [status.st_size, status.st_mtime_ns]


def _read(directory: str) -> dict[str, list[int]]:
    try:
        with open(os.path.join(directory, RECORD), encoding="utf-8") as stream:
            known = json.load(stream)
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}
