"""One restore point of a browse request: a browse session created by one step, then followed in Graph."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from orchestrators.kernel.step import LeasedRecord, StepState


@dataclass(frozen=True)
class BrowseRecord(LeasedRecord):
    """The step's `planned -> creating -> created | failed`, and, once created, what Graph last said about the
    session (its own `creating -> created | failed`)."""

    request_id: str
    restore_point_id: str
    session_id: str | None = None
    session_status: str | None = None
    created_date_time: str | None = None
    expiration_date_time: str | None = None
    restore_point_date_time: str | None = None
    backup_size_in_bytes: str | None = None
    directory_object_id: str | None = None
    session_error: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    # The restore point's protectionDateTime and its drive's directoryObjectId, looked up when a lost create
    # answer has to be reconciled (browse session reads do not carry restorePointId).
    point_known: bool = False
    point_date_time: str | None = None
    point_directory_object_id: str | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def settled(self) -> bool:
        """Nothing more to do: refused, failed, or created and no longer `creating` in Graph."""
        return self.state == StepState.FAILED or (self.state == StepState.DONE and self.session_status != "creating")

    def with_session(self, session: Any) -> BrowseRecord:
        """What Graph now says about the session (status, expiry, size, drive)."""
        return dataclasses.replace(
            self,
            session_status=session.status,
            created_date_time=session.created_date_time,
            expiration_date_time=session.expiration_date_time,
            restore_point_date_time=session.restore_point_date_time,
            backup_size_in_bytes=session.backup_size_in_bytes,
            directory_object_id=session.directory_object_id,
            session_error=session.error,
        )
