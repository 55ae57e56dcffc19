"""A table that keeps only its most recent entries: what a long capture remembers of its past
(connections, tokens) stays bounded."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
SIZE = 65536


class Recent(OrderedDict[K, V], Generic[K, V]):
    def __init__(self, size: int = SIZE) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)
