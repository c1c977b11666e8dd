"""Activation's records: sessions followed until they end, the queue of those waiting, the slots.

Activation states (`ActivationState`) and Graph's session statuses are kept apart: a session can be a draft in
Graph and `queued` here, or `active` in Graph and `activated` here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ActivationState(StrEnum):
    NOT_REQUESTED = "none"
    QUEUED = "queued"
    RESERVED = "reserved"
    ACTIVATED = "activated"
    REFUSED = "refused"


NOT_REQUESTED, QUEUED, RESERVED, ACTIVATED = (ActivationState.NOT_REQUESTED, ActivationState.QUEUED,
                                              ActivationState.RESERVED, ActivationState.ACTIVATED)
TERMINAL_STATUSES = frozenset({"completed", "completedWithError", "failed"})


def order_key(requested_at: datetime, request_id: str, index: int) -> str:
    """Sorts by the time activation was asked for, then by request and batch index."""
    millis = int(requested_at.timestamp() * 1000)
    return f"{millis:015d}|{request_id}|{index:05d}"


@dataclass(frozen=True)
class TrackedSession:
    session_id: str
    request_id: str
    index: int
    status: str = "draft"
    activation: str = NOT_REQUESTED
    queue_key: str | None = None
    created_at: datetime | None = None
    activated_published: bool = False
    last_checked_at: datetime | None = None
    incident_id: str | None = None
    etag: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class QueuedSession:
    key: str
    session_id: str
    request_id: str
    index: int


@dataclass(frozen=True)
class Slots:
    """Who holds the active-session slots: session id -> {state, since, requestId, index}."""

    holders: dict[str, dict[str, Any]]
    backoff_until: datetime | None = None
    etag: str | None = None

    def free(self, cap: int) -> int:
        return max(0, cap - len(self.holders))
