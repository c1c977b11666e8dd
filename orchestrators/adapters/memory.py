"""The in-memory twin of the Table storage step store: same contract (conditional writes, versions), no I/O.

Unit tests run every step against it and crash them at every point; the service could run on it too (for a
single process), which is what makes it a faithful twin rather than a mock.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from orchestrators.kernel.errors import Contended

R = TypeVar("R")


class MemoryStepStore(Generic[R]):
    def __init__(self, key: Callable[[R], Hashable]) -> None:
        self._key = key
        self._rows: dict[Hashable, R] = {}
        self._versions = itertools.count(1)
        self.writes = 0

    def put(self, record: R) -> R:
        """Store a new record unconditionally (opening a request writes its planned records this way)."""
        stored = dataclasses.replace(record, etag=str(next(self._versions)))  # type: ignore[type-var]
        self._rows[self._key(record)] = stored
        return stored

    def get(self, key: Hashable) -> R | None:
        return self._rows.get(key)

    async def save(self, record: R) -> R:
        key = self._key(record)
        current = self._rows.get(key)
        if current is None or current.etag != record.etag:  # type: ignore[attr-defined]
            raise Contended(f"record {key!r} changed underneath us")
        self.writes += 1
        return self.put(record)

    async def save_many(self, records: list[R]) -> list[R | Contended]:
        results: list[R | Contended] = []
        for record in records:
            try:
                results.append(await self.save(record))
            except Contended as conflict:
                results.append(conflict)
        return results

    async def reload(self, record: R) -> R:
        current = self._rows.get(self._key(record))
        if current is None:
            raise Contended(f"record {self._key(record)!r} is gone")
        return current
