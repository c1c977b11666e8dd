"""The bulk path's two steps: an empty restore session, then one bulk addition request on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrators.kernel.step import LeasedRecord


class BulkPart(StrEnum):
    SESSION = "session"
    REQUEST = "request"


@dataclass(frozen=True)
class BulkStep(LeasedRecord):
    request_id: str
    index: int
    part: BulkPart
    session_id: str | None = None
    created_date_time: str | None = None
    bulk_id: str | None = None
    bulk_status: str | None = None
    outcome_reported: bool = False
    error: dict[str, Any] | None = None
    etag: str | None = field(default=None, compare=False)
