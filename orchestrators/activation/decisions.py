"""Admission under the tenant's active-session cap, decided without I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrators.activation.records import QueuedSession, Slots


@dataclass(frozen=True)
class Admission:
    """The slots as read (or as written), the head of the queue, and the sessions given a slot by this change."""

    slots: Slots
    head: Sequence[QueuedSession] = ()
    reserved: Sequence[QueuedSession] = field(default_factory=tuple)


def admission_window(slots: Slots, cap: int, now: datetime) -> int:
    """How many waiting sessions may be looked at for a slot now (0 while admission is paused or slots are full)."""
    if slots.backoff_until and slots.backoff_until > now:
        return 0
    return slots.free(cap)


def reserve_next(admission: Admission, cap: int, now: datetime) -> Admission | None:
    """Give the free slots to the first sessions in the queue that hold none: first requested, first activated.

    None when there is nothing to change (paused, full, or nobody waiting)."""
    slots = admission.slots
    free = admission_window(slots, cap, now)
    chosen = [q for q in admission.head if q.session_id not in slots.holders][:free]
    if not chosen:
        return None
    holders = dict(slots.holders)
    for item in chosen:
        holders[item.session_id] = {"state": "reserved", "since": now.isoformat(), "requestId": item.request_id,
                                    "index": item.index, "queueKey": item.key}
    return Admission(Slots(holders, None, slots.etag), admission.head, tuple(chosen))
