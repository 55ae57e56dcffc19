"""Files that appear whole or not at all: written under a temporary name, renamed on commit.

What this guards against is an interrupted or failed run, which never leaves a partial file.
Commit does not fsync: a power cut is the file system's business, as for tcpdump -w, and
flushing gigabytes of documents to disk would make the user wait for the disk at the end of
every run (a second for the documents of 170 MB of capture).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from typing import IO


class OutputError(Exception):
    """An output could not be written (a full disk, a lost permission): one line for the user."""


class AtomicFile:
    """A file written beside its target under a temporary name; an interrupted run leaves the
    target untouched (and the temporary file removed by `abort`). A target that is no file (a
    terminal, a pipe: `--har /dev/stdout`) is written as the run goes: renaming a file over it
    would replace the device, not write to it."""

    def __init__(self, path: str, binary: bool = False) -> None:
        self.path = path
        self.temp: str | None = None
        directory = os.path.dirname(os.path.abspath(path))
        try:
            if _device(path):
                fd = os.open(path, os.O_WRONLY)
            else:
                fd, self.temp = tempfile.mkstemp(
                    prefix=f".{os.path.basename(path)}.", dir=directory
                )
        except OSError as error:
            raise self._failed(error) from None
        self.stream: IO = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        )

    def write(self, data: str | bytes) -> None:
        try:
            self.stream.write(data)
        except OSError as error:
            raise self._failed(error) from None

    def write_pieces(self, pieces: Iterable[str | bytes]) -> None:
        """Pieces in order, never joined first: a large body goes to the file, not to a copy."""
        try:
            self.stream.writelines(pieces)
        except OSError as error:
            raise self._failed(error) from None

    def commit(self) -> None:
        try:
            self.stream.close()
            if self.temp is not None:
                os.chmod(self.temp, 0o644)
                os.replace(self.temp, self.path)
        except OSError as error:
            raise self._failed(error) from None

    def abort(self) -> None:
        """Drop what was written: no partial file stays behind."""
        with contextlib.suppress(OSError):  # closing flushes, and a full disk refuses that
            self.stream.close()
        if self.temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)

    def _failed(self, error: OSError) -> OutputError:
        return OutputError(f"cannot write {self.path}: {error.strerror or error}")


def _device(path: str) -> bool:
    """Whether `path` names something other than a regular file (followed if a link)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # (nothing there yet: a file to write)
