"""Files that appear whole or not at all: written under a temporary name, renamed on commit."""

from __future__ import annotations

import os
import tempfile
from typing import IO


class AtomicFile:
    """A file written beside its target under a temporary name; an interrupted run leaves the
    target untouched (and the temporary file removed by `abort`)."""

    def __init__(self, path: str, binary: bool = False) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        fd, self.temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        self.stream: IO = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        )

    def write(self, data: str | bytes) -> None:
        self.stream.write(data)

    def commit(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.chmod(self.temp, 0o644)
        os.replace(self.temp, self.path)

    def abort(self) -> None:
        self.stream.close()
        if os.path.exists(self.temp):
            os.unlink(self.temp)
