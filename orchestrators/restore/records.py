"""A planned batch of a restore request: one Graph restore session, created by one step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrators.kernel.step import LeasedRecord, StepState


@dataclass(frozen=True)
class BatchRecord(LeasedRecord):
    request_id: str
    index: int
    destination_type: str
    restore_point_ids: tuple[str, ...]
    session_id: str | None = None
    session_status: str | None = None
    created_date_time: str | None = None
    excluded: tuple[dict[str, Any], ...] = ()
    error: dict[str, Any] | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def remaining_points(self) -> tuple[str, ...]:
        gone = {e["restorePointId"] for e in self.excluded}
        return tuple(rp for rp in self.restore_point_ids if rp not in gone)

    @property
    def settled(self) -> bool:
        return self.state in (StepState.DONE, StepState.FAILED)
