"""What one tracker pass does, decided without I/O: which sessions to poll, which drafts are too old, which
reserved slots were abandoned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrators.activation.records import ACTIVATED, NOT_REQUESTED, RESERVED, Slots, TrackedSession

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PassPlan:
    poll: list[TrackedSession] = field(default_factory=list)  # oldest check first
    discard: list[TrackedSession] = field(default_factory=list)  # drafts nobody activated in time
    release: list[str] = field(default_factory=list)  # slots held by no tracked session, or reserved and unused


def reserved_too_long(holder: Mapping[str, Any], now: datetime, grace: timedelta) -> bool:
    since = holder.get("since")
    if not since:
        return True
    return now - datetime.fromisoformat(since) > grace


def plan_pass(rows: Sequence[TrackedSession], slots: Slots, now: datetime, *, draft_max_age: timedelta | None,
              reserved_grace: timedelta) -> PassPlan:
    plan = PassPlan()
    tracked = {r.session_id: r for r in rows}
    for row in rows:
        if row.activation in (RESERVED, ACTIVATED) or row.session_id in slots.holders or row.status != "draft":
            plan.poll.append(row)
        elif (row.activation == NOT_REQUESTED and draft_max_age is not None and row.created_at is not None
              and now - row.created_at > draft_max_age):
            plan.discard.append(row)
    plan.poll.sort(key=lambda r: r.last_checked_at or _EPOCH)
    for session_id, holder in slots.holders.items():
        holder_row = tracked.get(session_id)
        if holder_row is None:
            plan.release.append(session_id)  # the session ended or was never tracked
        elif (holder.get("state") == "reserved" and holder_row.activation not in (RESERVED, ACTIVATED)
              and reserved_too_long(holder, now, reserved_grace)):
            # A worker reserved the slot and died before marking the session: the session is still queued (its
            # queue row in place), so the next admission activates it, or the next waiting session.
            plan.release.append(session_id)
    return plan
