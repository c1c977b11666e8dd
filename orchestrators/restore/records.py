"""A planned batch of a restore request: one Graph restore session, created by one step."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrators.kernel.step import Intent, StepState


@dataclass(frozen=True)
class BatchRecord:
    request_id: str
    index: int
    destination_type: str
    restore_point_ids: tuple[str, ...]
    state: StepState = StepState.PLANNED
    session_id: str | None = None
    session_status: str | None = None
    created_date_time: str | None = None
    creating_since: datetime | None = None
    owner: str | None = None
    lease_until: datetime | None = None
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

    @property
    def intent(self) -> Intent:
        return Intent(self.state, self.creating_since, self.owner, self.lease_until)

    def with_intent(self, intent: Intent) -> BatchRecord:
        return dataclasses.replace(self, state=intent.state, creating_since=intent.since, owner=intent.owner,
                                   lease_until=intent.lease_until)
