"""The ledger's shared records for activation and tracking (same Table storage table as the requests).

- `tracking` partition: one row per created session not yet terminal (RowKey = session id). The tracker reads
  this one partition instead of scanning every request.
- `activation-queue` partition: sessions waiting for a slot, RowKey = an order key (when activation was
  asked for), so the first requested is the first activated.
- `activation/slots`: the sessions holding one of the tenant's `MAX_ACTIVE_SESSIONS` slots. Every worker
  reserves a slot by rewriting this one row under its ETag, which serialises admission across instances.
- `activation/tracker-lease`: keeps two tracker runs from overlapping.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError
from azure.data.tables.aio import TableClient

from orchestrators.activation.records import (
    ACTIVATED,
    NOT_REQUESTED,
    QUEUED,
    RESERVED,
    TERMINAL_STATUSES,
    QueuedSession,
    Slots,
    TrackedSession,
    order_key,
)
from orchestrators.adapters.tables.records import etag_of, replace_if_unchanged
from orchestrators.kernel import tracing
from orchestrators.kernel.errors import Contended

__all__ = ["ACTIVATED", "NOT_REQUESTED", "QUEUED", "RESERVED", "TERMINAL_STATUSES", "ActivationLedger",
           "QueuedSession", "Slots", "TrackedSession", "order_key"]

TRACKING = "tracking"
QUEUE = "activation-queue"
CONTROL = "activation"
SLOTS_ROW = "slots"
LEASE_ROW = "tracker-lease"


def _now() -> datetime:
    return datetime.now(UTC)

def _tracked_to_entity(session: TrackedSession) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": TRACKING,
        "RowKey": session.session_id,
        "RequestId": session.request_id,
        "Index": session.index,
        "Status": session.status,
        "Activation": str(session.activation),
        "ActivatedPublished": session.activated_published,
    }
    for name, value in (("QueueKey", session.queue_key), ("CreatedAt", session.created_at),
                        ("LastCheckedAt", session.last_checked_at), ("IncidentId", session.incident_id)):
        if value is not None:
            entity[name] = value
    return entity


def _tracked_from_entity(entity: Any) -> TrackedSession:
    return TrackedSession(
        session_id=entity["RowKey"],
        request_id=entity["RequestId"],
        index=int(entity["Index"]),
        status=entity.get("Status", "draft"),
        activation=entity.get("Activation", NOT_REQUESTED),
        queue_key=entity.get("QueueKey"),
        created_at=entity.get("CreatedAt"),
        activated_published=bool(entity.get("ActivatedPublished", False)),
        last_checked_at=entity.get("LastCheckedAt"),
        incident_id=entity.get("IncidentId") or None,
        etag=etag_of(entity),
    )


class ActivationLedger:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    # -- tracking ----------------------------------------------------------------------------------

    async def track(self, session: TrackedSession) -> TrackedSession:
        """Start tracking a created session (once: an existing row is returned as stored)."""
        try:
            meta = await self._table.create_entity(_tracked_to_entity(session))
            return replace(session, etag=meta.get("etag"))
        except ResourceExistsError:
            existing = await self.tracked(session.session_id)
            assert existing is not None
            return existing

    async def track_many(self, sessions: Sequence[TrackedSession]) -> list[TrackedSession]:
        """`track` for many sessions, a hundred per transaction; a transaction that meets a row already tracked
        (a redelivery) is redone row by row."""
        tracked: list[TrackedSession] = []
        for start in range(0, len(sessions), 100):
            chunk = list(sessions[start:start + 100])
            try:
                metas = await self._table.submit_transaction([("create", _tracked_to_entity(s)) for s in chunk])
            except (TableTransactionError, ResourceExistsError):
                tracked += [await self.track(s) for s in chunk]
                continue
            tracked += [replace(s, etag=m.get("etag")) for s, m in zip(chunk, metas, strict=True)]
        return tracked

    async def tracked(self, session_id: str) -> TrackedSession | None:
        try:
            return _tracked_from_entity(await self._table.get_entity(TRACKING, session_id))
        except ResourceNotFoundError:
            return None

    async def all_tracked(self) -> list[TrackedSession]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": TRACKING})
        return [_tracked_from_entity(e) async for e in rows]

    async def update_tracked(self, session: TrackedSession) -> TrackedSession:
        etag = await replace_if_unchanged(self._table, _tracked_to_entity(session), session.etag,
                                          f"tracking row of session {session.session_id}")
        return replace(session, etag=etag)

    async def untrack(self, session_id: str) -> None:
        try:
            await self._table.delete_entity(TRACKING, session_id)
        except ResourceNotFoundError:
            pass

    # -- the queue ---------------------------------------------------------------------------------

    async def enqueue(self, item: QueuedSession) -> None:
        entity = {"PartitionKey": QUEUE, "RowKey": item.key, "SessionId": item.session_id,
                  "RequestId": item.request_id, "Index": item.index}
        try:
            await self._table.create_entity(entity)
        except ResourceExistsError:
            pass

    async def dequeue(self, key: str) -> None:
        try:
            await self._table.delete_entity(QUEUE, key)
        except ResourceNotFoundError:
            pass

    async def head_of_queue(self, count: int) -> list[QueuedSession]:
        """The first `count` waiting sessions, in the order activation was asked for."""
        if count <= 0:
            return []
        found: list[QueuedSession] = []
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": QUEUE}, results_per_page=count)
        async for entity in rows:  # Table storage returns a partition in RowKey order
            found.append(QueuedSession(entity["RowKey"], entity["SessionId"], entity["RequestId"],
                                       int(entity["Index"])))
            if len(found) >= count:
                break
        return found

    async def queue_length(self) -> int:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": QUEUE}, select=["RowKey"])
        waiting = len([e async for e in rows])
        tracing.record("restore.sessions.waiting", waiting)
        return waiting

    # -- slots -------------------------------------------------------------------------------------

    async def read_slots(self) -> Slots:
        try:
            entity = await self._table.get_entity(CONTROL, SLOTS_ROW)
        except ResourceNotFoundError:
            try:
                meta = await self._table.create_entity({"PartitionKey": CONTROL, "RowKey": SLOTS_ROW,
                                                        "Holders": "{}"})
                return Slots({}, None, meta.get("etag"))
            except ResourceExistsError:
                entity = await self._table.get_entity(CONTROL, SLOTS_ROW)
        slots = Slots(json.loads(entity.get("Holders") or "{}"), entity.get("BackoffUntil"),
                      entity.metadata.get("etag"))
        tracing.record("restore.slots.in_use", len(slots.holders))
        return slots

    async def write_slots(self, slots: Slots) -> Slots:
        """Replace the slot holders if nobody else changed them since `slots` was read."""
        entity: dict[str, Any] = {"PartitionKey": CONTROL, "RowKey": SLOTS_ROW,
                                  "Holders": json.dumps(slots.holders, separators=(",", ":"))}
        if slots.backoff_until is not None:
            entity["BackoffUntil"] = slots.backoff_until
        etag = await replace_if_unchanged(self._table, entity, slots.etag, "the activation slots")
        tracing.record("restore.slots.in_use", len(slots.holders))
        return Slots(slots.holders, slots.backoff_until, etag)

    # -- the tracker's lease -----------------------------------------------------------------------

    async def acquire_lease(self, owner: str, duration: timedelta) -> bool:
        """True when `owner` now holds the tracker lease (free, expired, or already its own)."""
        now = _now()
        entity = {"PartitionKey": CONTROL, "RowKey": LEASE_ROW, "Owner": owner, "ExpiresAt": now + duration}
        try:
            current = await self._table.get_entity(CONTROL, LEASE_ROW)
        except ResourceNotFoundError:
            try:
                await self._table.create_entity(entity)
                return True
            except ResourceExistsError:
                return False
        if current.get("Owner") != owner and current.get("ExpiresAt") and current["ExpiresAt"] > now:
            return False
        try:
            await replace_if_unchanged(self._table, entity, etag_of(current), "the tracker lease")
        except Contended:
            return False
        return True

    async def release_lease(self, owner: str) -> None:
        try:
            current = await self._table.get_entity(CONTROL, LEASE_ROW)
            if current.get("Owner") != owner:
                return
            await replace_if_unchanged(self._table, {"PartitionKey": CONTROL, "RowKey": LEASE_ROW, "Owner": "",
                                                     "ExpiresAt": _now()}, etag_of(current), "the tracker lease")
        except (ResourceNotFoundError, Contended):
            pass
