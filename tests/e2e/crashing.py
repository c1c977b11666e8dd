"""A real ledger whose worker dies at one chosen write of a step, once (the step's store is the real one)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from orchestrators.adapters.tables.ledger import Ledger
from orchestrators.adapters.tables.records import TableRecordStore
from orchestrators.kernel.step import StepState
from tests.e2e.harness import SimulatedCrash


class _DyingStore(TableRecordStore[Any]):
    def __init__(self, inner: TableRecordStore[Any], ledger: CrashingLedger) -> None:
        super().__init__(inner._table, inner._codec)
        self._ledger = ledger

    async def save(self, record: Any) -> Any:
        intent = record.intent
        if intent.state is StepState.ACTING and intent.lease_live(datetime.now(UTC)) and intent.owner:
            await self._ledger.die_at("before_create")  # the mark, before the Graph call
        if intent.state is StepState.DONE and record.session_id:
            # Graph has answered with the new session's id; the worker dies before writing it down.
            await self._ledger.die_at("after_create_before_record")
        return await super().save(record)

    async def save_many(self, records: list[Any]) -> list[Any]:
        for record in records:  # the same places to die as one by one
            if record.intent.state is StepState.ACTING:
                await self._ledger.die_at("before_create")
        return await super().save_many(records)


class CrashingLedger(Ledger):
    crash_at = ""
    crash_on_call = 1
    calls: Counter[str]

    async def die_at(self, step: str) -> None:
        self.calls[step] += 1
        if step == self.crash_at and self.calls[step] == self.crash_on_call:
            raise SimulatedCrash(step)

    @property
    def batches(self) -> TableRecordStore[Any]:
        return _DyingStore(super().batches, self)

    @property
    def browse_rows(self) -> TableRecordStore[Any]:
        return _DyingStore(super().browse_rows, self)
