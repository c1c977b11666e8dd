"""The bulk path's two steps: an empty restore session, then one bulk addition request on it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from orchestrators.kernel.step import Intent, StepState


class BulkPart(StrEnum):
    SESSION = "session"
    REQUEST = "request"


@dataclass(frozen=True)
class BulkStep:
    request_id: str
    index: int
    part: BulkPart
    state: StepState = StepState.PLANNED
    creating_since: datetime | None = None
    owner: str | None = None
    lease_until: datetime | None = None
    session_id: str | None = None
    created_date_time: str | None = None
    bulk_id: str | None = None
    bulk_status: str | None = None
    outcome_reported: bool = False
    error: dict[str, Any] | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def intent(self) -> Intent:
        return Intent(self.state, self.creating_since, self.owner, self.lease_until)

    def with_intent(self, intent: Intent) -> BulkStep:
        return dataclasses.replace(self, state=intent.state, creating_since=intent.since, owner=intent.owner,
                                   lease_until=intent.lease_until)
