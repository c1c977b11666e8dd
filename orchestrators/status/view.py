"""The status projection: ledger records in, the contract's status JSON out. Pure: no I/O, no clock.

A session's status is read from the most settled record that speaks of it: its outcome row (terminal), its slot
(activating, active), its place in the activation queue (waiting), its tracking row, and, when none was read,
what the request asked for (`activate`, an approval). Totals count current statuses; a session not yet created
counts its restore points under its own status (planned, creating, createFailed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrators.activation.records import ACTIVATED, QUEUED, RESERVED, TrackedSession
from orchestrators.kernel.step import StepState
from orchestrators.restore.records import BatchRecord

TERMINAL = ("completed", "completedWithError", "failed")
SESSION_STATUSES = ("planned", "creating", "createFailed", "draft", "waiting", "activating", "active", *TERMINAL)
REQUEST_STATES = ("rejected", "planned", "retrying", "creating", "inProgress", "completed", "failed")
#: An open request whose batches nobody is creating for this long is waiting for its next attempt.
RETRY_QUIET = timedelta(seconds=30)


@dataclass(frozen=True)
class RequestHeader:
    """The request row, as the status needs it."""

    request_id: str
    incident_id: str | None
    requested_by: str | None
    reason: str | None
    state: str
    received_at: datetime | None
    changed_at: datetime | None
    activate: bool = False
    activation_requested: bool = False


@dataclass(frozen=True)
class Outcome:
    index: int
    session_id: str
    status: str
    artifact_counts: Mapping[str, int]
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class RequestRows:
    """Everything of one request's own partition (request, batch, outcome and selection rows)."""

    header: RequestHeader
    batches: Sequence[BatchRecord]
    outcomes: Mapping[int, Outcome]
    unresolved: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Activation:
    """The tenant-wide activation state read for a status: slot holders, the head of the queue, tracking rows."""

    holders: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    queue_positions: Mapping[str, int] = field(default_factory=dict)  # session id -> 1 for the next
    tracked: Mapping[str, TrackedSession] = field(default_factory=dict)


def may_wait(rows: RequestRows, holders: Mapping[str, Any]) -> bool:
    """Whether a session of the request may be in the activation queue (only then is its head read)."""
    return any(b.session_id and b.index not in rows.outcomes and b.session_id not in holders for b in rows.batches)


def needs_tracking_row(rows: RequestRows, activation: Activation, queue_complete: bool = False) -> list[str]:
    """The created, unfinished sessions whose status only their tracking row can tell: a slot holder already
    activated (activating or active?), and, while more wait than the queue head read (`queue_complete` False), a
    session not in that head of a request that did not ask to activate all of them (a draft, or approved by
    session id and waiting further back). With the whole queue read, a session in neither the slots nor the
    queue that its request did not ask to activate is a draft."""
    wanted = []
    for batch in rows.batches:
        sid = batch.session_id
        if not sid or batch.index in rows.outcomes or sid in activation.queue_positions:
            continue
        holder = activation.holders.get(sid)
        if holder is not None:
            if holder.get("state") != "reserved":
                wanted.append(sid)
        elif not queue_complete and (not _all_asked(rows.header) or batch.destination_type == "inPlace"):
            wanted.append(sid)
    return wanted


def _all_asked(header: RequestHeader) -> bool:
    return header.activate or header.activation_requested


def session_status(batch: BatchRecord, outcome: Outcome | None, activation: Activation, header: RequestHeader,
                   held_for_approval: bool) -> tuple[str, dict[str, Any] | None]:
    """A session's status in the contract's words, and its error if any."""
    if batch.state is StepState.PLANNED:
        return "planned", batch.error
    if batch.state is StepState.ACTING:
        return "creating", batch.error
    if not batch.session_id:
        return "createFailed", batch.error or {"code": "notCreated", "message": "the session was not created"}
    if outcome is not None:
        if outcome.status in TERMINAL:
            return outcome.status, None
        return "failed", {"code": outcome.status, "message": f"the session ended as {outcome.status!r} "
                          "(a draft nobody activated in time is deleted)"}
    sid = batch.session_id
    holder = activation.holders.get(sid)
    tracked = activation.tracked.get(sid)
    if holder is not None:
        if holder.get("state") == "reserved" or tracked is None:
            return ("activating" if holder.get("state") == "reserved" else "active"), None
        return ("active" if tracked.status == "active" else "activating"), None
    if sid in activation.queue_positions:
        return "waiting", None
    if tracked is not None:
        if tracked.activation == QUEUED:
            return "waiting", None
        if tracked.activation in (RESERVED, ACTIVATED):
            return ("active" if tracked.status == "active" else "activating"), None
        if tracked.status in ("activating", "active"):
            return tracked.status, None  # activated outside this service
        return "draft", None
    if _all_asked(header) and not held_for_approval:
        return "waiting", None
    return "draft", None


def request_status(rows: RequestRows, activation: Activation, now: datetime, *,
                   in_place_requires_approval: bool = False) -> dict[str, Any]:
    """The contract's status of one request (every field present)."""
    header = rows.header
    sessions: list[dict[str, Any]] = []
    session_totals: Counter[str] = Counter()
    artifact_totals: Counter[str] = Counter()
    updated = [t for t in (header.received_at, header.changed_at) if t is not None]
    last_error: dict[str, Any] | None = None
    for batch in sorted(rows.batches, key=lambda b: b.index):
        outcome = rows.outcomes.get(batch.index)
        held = (in_place_requires_approval and header.activate and not header.activation_requested
                and batch.destination_type == "inPlace")
        status, error = session_status(batch, outcome, activation, header, held)
        created = bool(batch.session_id)
        count = len(batch.remaining_points) if created else len(batch.restore_point_ids)
        excluded = len(batch.restore_point_ids) - count if created else 0
        tracked = activation.tracked.get(batch.session_id or "")
        sessions.append({
            "index": batch.index,
            "sessionId": batch.session_id,
            "workload": "oneDrive",
            "destinationType": batch.destination_type,
            "restoreJobType": "bulk" if not batch.restore_point_ids and created else "standard",
            "artifactCount": count,
            "status": status,
            "queuePosition": activation.queue_positions.get(batch.session_id or "") if status == "waiting"
            else None,
            "awaitingApproval": bool(held and status == "draft"),
            "error": _public_error(error),
        })
        session_totals[status] += 1
        if outcome is not None and outcome.status in TERMINAL and outcome.artifact_counts:
            artifact_totals.update(outcome.artifact_counts)
        elif count:
            artifact_totals[status] += count
        if excluded:
            artifact_totals["createFailed"] += excluded
        if batch.error:
            last_error = _public_error(batch.error)
        if outcome is not None and outcome.recorded_at is not None:
            updated.append(outcome.recorded_at)
        if tracked is not None and tracked.last_checked_at is not None:
            updated.append(tracked.last_checked_at)
    return {
        "requestId": header.request_id,
        "incidentId": header.incident_id,
        "requestedBy": header.requested_by,
        "reason": header.reason,
        "receivedDateTime": _iso(header.received_at),
        "updatedDateTime": _iso(max(updated) if updated else None),
        "state": request_state(rows, sessions, now),
        "sessions": sessions,
        "sessionTotals": dict(session_totals),
        "artifactTotals": dict(artifact_totals),
        "unresolved": [dict(u) for u in rows.unresolved],
        "lastError": last_error,
    }


def request_state(rows: RequestRows, sessions: Sequence[Mapping[str, Any]], now: datetime) -> str:
    stored = rows.header.state
    if stored in ("rejected", "planned", "failed"):
        return stored
    if stored in ("accepted", "completed"):
        created = [s for s in sessions if s["sessionId"]]
        return "completed" if all(s["status"] in TERMINAL for s in created) else "inProgress"
    if any(b.state is StepState.ACTING for b in rows.batches) or not rows.batches:
        return "creating"
    quiet_since = rows.header.changed_at or rows.header.received_at
    unsettled = any(not b.settled for b in rows.batches)
    if unsettled and quiet_since is not None and now - quiet_since > RETRY_QUIET:
        return "retrying"
    return "creating"


def request_summary(status: Mapping[str, Any]) -> dict[str, Any]:
    """A request as an incident lists it: the status without its sessions."""
    return {k: v for k, v in status.items() if k != "sessions"} | {"sessionCount": len(status["sessions"])}


def incident_status(incident_id: str, statuses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ordered = sorted(statuses, key=lambda s: s["receivedDateTime"] or "")
    return {"incidentId": incident_id, "requests": [request_summary(s) for s in ordered]}


def incident_entry(incident_id: str, statuses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One line of the incident list: its requests' totals added up."""
    sessions: Counter[str] = Counter()
    artifacts: Counter[str] = Counter()
    for status in statuses:
        sessions.update(status["sessionTotals"])
        artifacts.update(status["artifactTotals"])
    updated = [s["updatedDateTime"] for s in statuses if s["updatedDateTime"]]
    return {"incidentId": incident_id, "requestCount": len(statuses), "sessionTotals": dict(sessions),
            "artifactTotals": dict(artifacts), "lastUpdatedDateTime": max(updated) if updated else None}


def incidents_list(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Newest first by `lastUpdatedDateTime` (ISO instants in UTC sort as text)."""
    return sorted((dict(e) for e in entries), key=lambda e: e["lastUpdatedDateTime"] or "", reverse=True)


def capacity_status(max_active: int, holders: Mapping[str, Mapping[str, Any]], waiting: int,
                    paused_until: datetime | None, now: datetime) -> dict[str, Any]:
    active = [{"sessionId": sid, "requestId": h.get("requestId"), "workload": "oneDrive",
               "since": h.get("since")} for sid, h in sorted(holders.items(), key=lambda kv: kv[1].get("since") or "")]
    return {"maxActiveSessions": max_active, "active": active, "waiting": waiting,
            "pausedUntil": _iso(paused_until) if paused_until is not None and paused_until > now else None}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _public_error(error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Graph's error as recorded, without anything but its documented fields (no headers, no tokens)."""
    if not error:
        return None
    return {k: error.get(k) for k in ("status", "code", "message", "graphRequestId") if k in error} or None


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
