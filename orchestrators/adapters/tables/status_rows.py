"""Rows the status routes read and the incident index they need (row shapes only here).

- `incident:<incidentId>`: one row per request of the incident (RowKey = requestId), written when the request is
  opened, so an incident's requests are one partition query.
- `incidents:<YYYY-MM-DD>`: one row per incident with a request received that day (UTC), so the incidents of the
  last `STATUS_WINDOW_DAYS` are one query per day, never a scan of the table.

Both are created once (a redelivery finds them and leaves them as they are). A request's own partition holds
its request, batch, outcome and selection rows, read in one query.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient

from orchestrators.activation.records import TrackedSession
from orchestrators.adapters.tables.activation_store import CONTROL, QUEUE, SLOTS_ROW, ActivationLedger
from orchestrators.adapters.tables.records import BATCH_CODEC, BATCH_PREFIX
from orchestrators.status.view import Outcome, RequestHeader, RequestRows

INCIDENT_PREFIX = "incident:"
DAY_PREFIX = "incidents:"
_REQUEST_ROW, _OUTCOME_PREFIX, _IDENTITY_PREFIX = "request", "outcome:", "selection:id:"
_SAFE = "-._~:@!$&'()*+,;="
#: Queue rows read for positions: one page. Sessions further back wait too, with no number.
QUEUE_HEAD = 1000


def _key(value: str) -> str:
    """An incident id as a key: Table storage refuses / \\ # ? and control characters in keys."""
    return quote(value, safe=_SAFE)


def _day(when: datetime) -> str:
    return when.astimezone(UTC).date().isoformat()


async def index_request(table: TableClient, incident_id: str, request_id: str, received_at: datetime) -> None:
    """Add the request to its incident and the incident to the day's list (each row once)."""
    rows = [
        {"PartitionKey": INCIDENT_PREFIX + _key(incident_id), "RowKey": request_id, "RequestId": request_id,
         "ReceivedAt": received_at},
        {"PartitionKey": DAY_PREFIX + _day(received_at), "RowKey": _key(incident_id), "IncidentId": incident_id,
         "FirstReceivedAt": received_at},
    ]
    for row in rows:
        try:
            await table.create_entity(row)
        except ResourceExistsError:
            pass


async def incident_request_ids(table: TableClient, incident_id: str) -> list[str]:
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": INCIDENT_PREFIX + _key(incident_id)},
                                select=["RowKey"])
    return [str(e["RowKey"]) async for e in rows]


async def recent_incidents(table: TableClient, days: int, today: date) -> list[str]:
    """Incidents with a request received in the last `days` days (one query per day, side by side)."""

    async def of_day(day: date) -> list[str]:
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": DAY_PREFIX + day.isoformat()},
                                    select=["RowKey"])
        return [unquote(str(e["RowKey"])) async for e in rows]

    found = await asyncio.gather(*(of_day(today - timedelta(days=n)) for n in range(days)))
    return list(dict.fromkeys(i for day in found for i in day))


async def request_rows(table: TableClient, request_id: str) -> RequestRows | None:
    """The request's own partition, in one query (request, batches, outcomes, selection identities)."""
    header: RequestHeader | None = None
    batches, outcomes, unresolved = [], {}, []
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": request_id})
    async for entity in rows:
        key = str(entity["RowKey"])
        if key == _REQUEST_ROW:
            header = RequestHeader(
                request_id, entity.get("IncidentId") or None, entity.get("RequestedBy") or None,
                entity.get("Reason") or None, str(entity.get("State", "open")), entity.get("ReceivedAt"),
                entity.get("StateChangedAt"), bool(entity.get("Activate", False)),
                bool(entity.get("ActivationRequested", False)))
        elif key.startswith(BATCH_PREFIX):
            batches.append(BATCH_CODEC.from_entity(entity))
        elif key.startswith(_OUTCOME_PREFIX):
            index = int(entity["Index"])
            outcomes[index] = Outcome(index, str(entity["SessionId"]), str(entity["Status"]),
                                      json.loads(entity.get("ArtifactCounts") or "{}"), entity.get("RecordedAt"))
        elif key.startswith(_IDENTITY_PREFIX):
            for drive in json.loads(entity.get("Drives") or "[]"):
                if len(drive) > 6 and drive[6]:
                    unresolved.append({"selector": drive[0], "reason": drive[6]})
    if header is None:
        return None
    return RequestRows(header, sorted(batches, key=lambda b: b.index), outcomes, unresolved)


async def tracked_sessions(table: TableClient, session_ids: list[str],
                          concurrency: int = 32) -> dict[str, TrackedSession]:
    """Tracking rows by key (point reads, `concurrency` at a time)."""
    gate = asyncio.Semaphore(concurrency)
    store = ActivationLedger(table)

    async def one(session_id: str) -> TrackedSession | None:
        async with gate:
            return await store.tracked(session_id)

    found = await asyncio.gather(*(one(s) for s in session_ids))
    return {t.session_id: t for t in found if t is not None}


async def slots(table: TableClient) -> tuple[dict[str, dict[str, Any]], datetime | None]:
    """The slot holders and the admission pause (nothing is written: no row means no slot taken)."""
    try:
        entity = await table.get_entity(CONTROL, SLOTS_ROW)
    except ResourceNotFoundError:
        return {}, None
    return json.loads(entity.get("Holders") or "{}"), entity.get("BackoffUntil")


async def queue_head(table: TableClient, limit: int = QUEUE_HEAD) -> tuple[dict[str, int], bool]:
    """Positions of the first `limit` waiting sessions (1 = next), and whether more wait behind them."""
    positions: dict[str, int] = {}
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": QUEUE}, select=["SessionId"],
                                results_per_page=limit)
    async for entity in rows:
        if len(positions) >= limit:
            return positions, True
        positions.setdefault(str(entity["SessionId"]), len(positions) + 1)
    return positions, False


async def queue_length(table: TableClient) -> int:
    """The number of waiting sessions (a keys-only read of the queue partition)."""
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": QUEUE}, select=["RowKey"])
    return len([e async for e in rows])
