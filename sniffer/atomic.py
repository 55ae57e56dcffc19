"""Files that appear whole or not at all: written under a temporary name, renamed on commit.

What this guards against is an interrupted or failed run, which never leaves a partial file.
Commit does not fsync: a power cut is the file system's business, as for tcpdump -w, and
flushing gigabytes of documents to disk would make the user wait for the disk at the end of
every run (a second for the documents of 170 MB of capture).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import IO


class OutputError(Exception):
    """An output could not be written (a full disk, a lost permission): one line for the user."""


class AtomicFile:
    """A file written beside its target under a temporary name; an interrupted run leaves the
    target untouched (and the temporary file removed by `abort`)."""

    def __init__(self, path: str, binary: bool = False) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, self.temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
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

    def append(self, other: AtomicFile) -> None:
        """Copy what `other` holds so far onto the end of this file, in the kernel where it can."""
        try:
            other.stream.flush()
            self.stream.flush()
            with open(other.temp, "rb") as source:
                try:
                    while os.copy_file_range(source.fileno(), self.stream.fileno(), 1 << 30):
                        pass
                except OSError:  # a file system without copy_file_range
                    shutil.copyfileobj(source, getattr(self.stream, "buffer", self.stream))
        except OSError as error:
            raise self._failed(error) from None

    def commit(self) -> None:
        try:
            self.stream.close()
            os.chmod(self.temp, 0o644)
            os.replace(self.temp, self.path)
        except OSError as error:
            raise self._failed(error) from None

    def abort(self) -> None:
        """Drop what was written: no partial file stays behind."""
        with contextlib.suppress(OSError):  # closing flushes, and a full disk refuses that
            self.stream.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)

    def _failed(self, error: OSError) -> OutputError:
        return OutputError(f"cannot write {self.path}: {error.strerror or error}")
