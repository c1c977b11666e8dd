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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from orchestrators.kernel.errors import Contended

TRACKING = "tracking"
QUEUE = "activation-queue"
CONTROL = "activation"
SLOTS_ROW = "slots"
LEASE_ROW = "tracker-lease"

# Activation states of a tracked session.
NOT_REQUESTED, QUEUED, RESERVED, ACTIVATED = "none", "queued", "reserved", "activated"
TERMINAL_STATUSES = frozenset({"completed", "completedWithError", "failed"})


def _now() -> datetime:
    return datetime.now(UTC)


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

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": TRACKING,
            "RowKey": self.session_id,
            "RequestId": self.request_id,
            "Index": self.index,
            "Status": self.status,
            "Activation": self.activation,
            "ActivatedPublished": self.activated_published,
        }
        for name, value in (("QueueKey", self.queue_key), ("CreatedAt", self.created_at),
                            ("LastCheckedAt", self.last_checked_at), ("IncidentId", self.incident_id)):
            if value is not None:
                entity[name] = value
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> TrackedSession:
        return cls(
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
            etag=entity.metadata.get("etag"),
        )


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


class ActivationLedger:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    # -- tracking ----------------------------------------------------------------------------------

    async def track(self, session: TrackedSession) -> TrackedSession:
        """Start tracking a created session (once: an existing row is returned as stored)."""
        try:
            meta = await self._table.create_entity(session.to_entity())
            return TrackedSession(**{**session.__dict__, "etag": meta.get("etag")})
        except ResourceExistsError:
            existing = await self.tracked(session.session_id)
            assert existing is not None
            return existing

    async def tracked(self, session_id: str) -> TrackedSession | None:
        try:
            return TrackedSession.from_entity(await self._table.get_entity(TRACKING, session_id))
        except ResourceNotFoundError:
            return None

    async def all_tracked(self) -> list[TrackedSession]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": TRACKING})
        return [TrackedSession.from_entity(e) async for e in rows]

    async def update_tracked(self, session: TrackedSession) -> TrackedSession:
        try:
            meta = await self._table.update_entity(session.to_entity(), mode=UpdateMode.REPLACE, etag=session.etag,
                                                   match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Contended(f"tracking row of session {session.session_id} changed") from exc
        return TrackedSession(**{**session.__dict__, "etag": meta.get("etag")})

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
        return len([e async for e in rows])

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
        return Slots(json.loads(entity.get("Holders") or "{}"), entity.get("BackoffUntil"),
                     entity.metadata.get("etag"))

    async def write_slots(self, slots: Slots) -> Slots:
        """Replace the slot holders if nobody else changed them since `slots` was read."""
        entity: dict[str, Any] = {"PartitionKey": CONTROL, "RowKey": SLOTS_ROW,
                                  "Holders": json.dumps(slots.holders, separators=(",", ":"))}
        if slots.backoff_until is not None:
            entity["BackoffUntil"] = slots.backoff_until
        try:
            meta = await self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=slots.etag,
                                                   match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Contended("the activation slots changed") from exc
        return Slots(slots.holders, slots.backoff_until, meta.get("etag"))

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
            await self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=current.metadata.get("etag"),
                                            match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def release_lease(self, owner: str) -> None:
        try:
            current = await self._table.get_entity(CONTROL, LEASE_ROW)
            if current.get("Owner") != owner:
                return
            await self._table.update_entity({"PartitionKey": CONTROL, "RowKey": LEASE_ROW, "Owner": "",
                                             "ExpiresAt": _now()}, mode=UpdateMode.REPLACE,
                                            etag=current.metadata.get("etag"),
                                            match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            pass
