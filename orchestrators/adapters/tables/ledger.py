"""The ledger: what the service has planned and done, in Azure Table storage.

One partition per request: a `request` row (payload hash, audit fields, state) and one `batch:NNNNN`
row per planned session (its restore points, state, Graph session id). Every change is a conditional
write on the row's ETag, so two workers handling the same message cannot both create a session.
A browse request adds one `browse:<restorePointId>` row per restore point to its request's partition.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from orchestrators.adapters.tables.records import (
    BATCH_CODEC,
    BATCH_PREFIX,
    BROWSE_CODEC,
    BROWSE_PREFIX,
    BULK_CODEC,
    StepRows,
    TableRecordStore,
    browse_row_key,
)
from orchestrators.browse.records import BrowseRecord
from orchestrators.contracts import RestoreRequest
from orchestrators.kernel import tracing
from orchestrators.kernel.errors import Contended
from orchestrators.kernel.settings import Settings
from orchestrators.restore.planner import SessionPlan
from orchestrators.restore.records import BatchRecord
from orchestrators.selection.records import BulkStep

log = logging.getLogger(__name__)

#: Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
REQUEST_ROW = "request"
OUTCOME_PREFIX = "outcome:"

# Browse row states (the step's stored values).
PLANNED, CREATING, CREATED, FAILED = "planned", "creating", "created", "failed"


class PayloadConflict(Exception):
    """The requestId is already recorded for a different payload."""


def table_connection_string(connection: str) -> str:
    """Expand `UseDevelopmentStorage=true` (which the Tables SDK does not read) to Azurite's address."""
    if connection.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
        return ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={AZURITE_ACCOUNT_KEY};TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;")
    return connection


def _now() -> datetime:
    return datetime.now(UTC)


def _bind_trace(request_id: str, traceparent: str | None) -> None:
    current = tracing.current_invocation()
    if current is not None and traceparent:
        current.bind(request_id, traceparent)


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    payload_hash: str
    state: str
    session_count: int
    etag: str | None = field(default=None, compare=False)
    incident_id: str | None = None
    received_at: datetime | None = None
    activate: bool = False
    activation_requested: bool = False
    traceparent: str | None = None  # the request's trace context, as first received


@dataclass(frozen=True)
class SessionOutcome:
    """A session's final state, kept per batch so the request's completion can be judged and totalled."""

    index: int
    session_id: str
    status: str
    artifact_counts: dict[str, int]


class Ledger:
    """Thin adapter over one Table storage table; decisions stay with the orchestrators."""

    def __init__(self, table: TableClient, credential: Any = None) -> None:
        from orchestrators.adapters.tables.traced import traced_table

        self._table = traced_table(table)  # with a span per call when telemetry is on
        self._credential = credential  # closed with the ledger when the ledger made it
        self._table_ready = False
        self._table_check: asyncio.Future[None] | None = None

    @classmethod
    def from_connection_string(cls, connection: str, table_name: str) -> Ledger:
        return cls(TableClient.from_connection_string(table_connection_string(connection), table_name))

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        """A connection string (Azurite, a key), or the account's table endpoint with an Azure identity."""
        identity = settings.ledger_identity
        if identity is None:
            return cls.from_connection_string(settings.ledger_connection, settings.ledger_table)
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential(managed_identity_client_id=identity.client_id)
        table = TableClient(endpoint=identity.table_endpoint, table_name=settings.ledger_table,
                            credential=credential)
        return cls(table, credential)

    @property
    def batches(self) -> TableRecordStore[BatchRecord]:
        """The batch rows, as the step mechanism writes them."""
        return TableRecordStore(self._table, BATCH_CODEC)

    @property
    def bulk_steps(self) -> StepRows[BulkStep]:
        return StepRows(self._table, BULK_CODEC)

    @property
    def table(self) -> TableClient:
        """The table client, shared with the activation ledger (one connection pool per worker)."""
        return self._table

    async def aclose(self) -> None:
        await self._table.close()
        if self._credential is not None:
            await self._credential.close()

    async def ensure_table(self) -> None:
        """Make sure the table exists, once per worker (a check started by `check_table_soon` is awaited)."""
        if self._table_ready:
            return
        if self._table_check is None or (self._table_check.done() and self._table_check.exception() is not None):
            self._table_check = asyncio.ensure_future(self._create_table())
        await asyncio.shield(self._table_check)
        self._table_ready = True

    def check_table_soon(self) -> None:
        """Start the table check now, so that it overlaps the first message's parsing and planning."""
        if self._table_check is None and not self._table_ready:
            self._table_check = asyncio.ensure_future(self._create_table())

    async def _create_table(self) -> None:
        try:
            await self._table.create_table()
        except ResourceExistsError:
            pass
        except HttpResponseError as error:
            if error.status_code != 403:
                raise
            # An identity granted data access on this one table (as the deployment does) may not create
            # tables; the table is then provisioned with the account, and entity calls say if it is not.
            log.info("not allowed to create table %s; using it as provisioned", self._table.table_name)

    # -- requests --------------------------------------------------------------------------------

    async def open_request(self, request: RestoreRequest, plans: Sequence[SessionPlan]) -> list[BatchRecord]:
        """Record the request and its planned batches (once), and return the batches as stored."""
        await self.ensure_table()
        record = await self.get_request(request.request_id)
        if record is None:
            entity = {
                "PartitionKey": request.request_id,
                "RowKey": REQUEST_ROW,
                "PayloadHash": request.payload_hash,
                "IncidentId": request.incident_id or "",
                "RequestedBy": (request.requested_by or "")[:256],
                "Reason": (request.reason or "")[:1024],
                "Activate": request.activate,
                "SessionCount": len(plans),
                "ArtifactCount": sum(len(p.restore_point_ids) for p in plans),
                "State": "open",
                "ReceivedAt": _now(),
                "Traceparent": tracing.invocation_trace().traceparent,
            }
            try:
                await self._table.create_entity(entity)
            except ResourceExistsError:
                record = await self.get_request(request.request_id)
        if record is not None and record.payload_hash != request.payload_hash:
            raise PayloadConflict(request.request_id)
        _bind_trace(request.request_id, record.traceparent if record is not None else str(entity["Traceparent"]))
        if request.incident_id:  # the status routes' index; created once, so a redelivery only confirms it
            from orchestrators.adapters.tables.status_rows import index_request

            received = record.received_at if record is not None and record.received_at else _now()
            await index_request(self._table, request.incident_id, request.request_id, received)

        batches = await self.load_batches(request.request_id)
        if len(batches) < len(plans):
            known = {b.index for b in batches}
            missing = [BatchRecord(request.request_id, p.index, p.destination_type, p.restore_point_ids)
                       for p in plans if p.index not in known]
            for start in range(0, len(missing), 100):  # a table transaction holds at most 100 rows
                chunk = missing[start:start + 100]
                try:
                    await self._table.submit_transaction([("create", BATCH_CODEC.to_entity(b)) for b in chunk])
                except (TableTransactionError, ResourceExistsError):
                    pass  # another worker wrote them first; read back below
            batches = await self.load_batches(request.request_id)
        return batches

    async def get_request(self, request_id: str) -> RequestRecord | None:
        try:
            entity = await self._table.get_entity(request_id, REQUEST_ROW)
        except ResourceNotFoundError:
            return None
        return RequestRecord(request_id, entity["PayloadHash"], entity.get("State", "open"),
                             int(entity.get("SessionCount", 0)), entity.metadata.get("etag"),
                             incident_id=entity.get("IncidentId") or None, received_at=entity.get("ReceivedAt"),
                             activate=bool(entity.get("Activate", False)),
                             activation_requested=bool(entity.get("ActivationRequested", False)),
                             traceparent=entity.get("Traceparent") or None)

    async def request_traceparent(self, request_id: str) -> str | None:
        """The trace context the request recorded (read once per invocation or tracker run, then known)."""
        current = tracing.current_invocation()
        if current is not None and request_id in current.requests:
            return current.requests[request_id] or None
        try:
            entity = await self._table.get_entity(request_id, REQUEST_ROW, select=["Traceparent"])
            traceparent = entity.get("Traceparent") or None
        except ResourceNotFoundError:
            traceparent = None
        if traceparent:
            _bind_trace(request_id, traceparent)
        elif current is not None:
            current.requests[request_id] = ""  # no row, or one from before trace context: not read again
        return traceparent

    async def mark_activation_requested(self, request_id: str, requested_at: datetime) -> None:
        """Remember an approval without touching the request's state (its handler may be changing it)."""
        entity = {"PartitionKey": request_id, "RowKey": REQUEST_ROW, "ActivationRequested": True,
                  "ActivationRequestedAt": requested_at}
        await self._table.update_entity(entity, mode=UpdateMode.MERGE)

    async def set_request_state(self, request_id: str, state: str, **fields: Any) -> None:
        entity = {"PartitionKey": request_id, "RowKey": REQUEST_ROW, "State": state,
                  "StateChangedAt": _now(), **fields}
        await self._table.update_entity(entity, mode=UpdateMode.MERGE)

    async def load_batches(self, request_id: str) -> list[BatchRecord]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": request_id, "lo": BATCH_PREFIX, "hi": BATCH_PREFIX[:-1] + ";"}
        rows = [BATCH_CODEC.from_entity(e) async for e in self._table.query_entities(query, parameters=params)]
        return sorted(rows, key=lambda b: b.index)

    # -- outcomes of finished sessions (written by the tracker) ----------------------------------

    async def record_outcome(self, request_id: str, outcome: SessionOutcome) -> None:
        entity = {"PartitionKey": request_id, "RowKey": f"{OUTCOME_PREFIX}{outcome.index:05d}",
                  "Index": outcome.index, "SessionId": outcome.session_id, "Status": outcome.status,
                  "ArtifactCounts": json.dumps(outcome.artifact_counts), "RecordedAt": _now()}
        await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def load_outcomes(self, request_id: str) -> list[SessionOutcome]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": request_id, "lo": OUTCOME_PREFIX, "hi": OUTCOME_PREFIX[:-1] + ";"}
        return [SessionOutcome(int(e["Index"]), e["SessionId"], e["Status"], json.loads(e["ArtifactCounts"]))
                async for e in self._table.query_entities(query, parameters=params)]

    # -- selection -------------------------------------------------------------------------------
    # Rows of a restore-by-point-in-time request, in its partition: `selection` (the header: state,
    # strategy, window), `selection:id:NNNNN` (who each selector is, 100 per row), `selection:rp:NNNNN`
    # (one search chunk's restore points) and `bulk:NNNNN` (a bulk session's progress).

    async def get_row(self, request_id: str, row_key: str) -> dict[str, Any] | None:
        """A row as a dict with its ETag under `etag`, or None."""
        try:
            entity = await self._table.get_entity(request_id, row_key)
        except ResourceNotFoundError:
            return None
        return {**dict(entity), "etag": entity.metadata.get("etag")}

    async def create_row(self, entity: dict[str, Any]) -> bool:
        """Write a new row; False if it exists already (another attempt wrote it)."""
        try:
            await self._table.create_entity(entity)
        except ResourceExistsError:
            return False
        return True

    async def replace_row(self, entity: dict[str, Any], etag: str | None) -> str | None:
        """Rewrite a row only if nobody changed it since we read it; returns the new ETag."""
        row = {k: v for k, v in entity.items() if k != "etag"}
        try:
            meta = await self._table.update_entity(row, mode=UpdateMode.REPLACE, etag=etag,
                                                   match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Contended(f"row {entity.get('RowKey')} of {entity.get('PartitionKey')} changed underneath us") \
                from exc
        return meta.get("etag")

    async def upsert_rows(self, entities: Sequence[dict[str, Any]]) -> None:
        """Write rows of one partition, replacing what is there, in transactions of up to 50 rows."""
        for start in range(0, len(entities), 50):
            await self._table.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE})
                                                  for e in entities[start:start + 50]])

    async def rows_with_prefix(self, request_id: str, prefix: str) -> list[dict[str, Any]]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": request_id, "lo": prefix, "hi": prefix[:-1] + chr(ord(prefix[-1]) + 1)}
        rows = [dict(e) async for e in self._table.query_entities(query, parameters=params)]
        return sorted(rows, key=lambda r: str(r["RowKey"]))

    # -- browse sessions -------------------------------------------------------------------------

    async def open_browse(self, request_id: str, restore_point_ids: Sequence[str]) -> list[BrowseRecord]:
        """One row per restore point of a browse request (written once), returned in request order."""
        await self.ensure_table()
        wanted = {browse_row_key(rp): rp for rp in restore_point_ids}
        rows = {browse_row_key(r.restore_point_id): r for r in await self.load_browse(request_id)}
        missing = [BrowseRecord(request_id, rp) for key, rp in wanted.items() if key not in rows]
        if missing:
            for start in range(0, len(missing), 100):  # a table transaction holds at most 100 rows
                chunk = missing[start:start + 100]
                try:
                    await self._table.submit_transaction([("create", BROWSE_CODEC.to_entity(r)) for r in chunk])
                except (TableTransactionError, ResourceExistsError):
                    pass  # another worker wrote them first; read back below
            rows = {browse_row_key(r.restore_point_id): r for r in await self.load_browse(request_id)}
        return [rows[key] for key in wanted if key in rows]

    async def load_browse(self, request_id: str) -> list[BrowseRecord]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": request_id, "lo": BROWSE_PREFIX, "hi": BROWSE_PREFIX[:-1] + ";"}
        return [BROWSE_CODEC.from_entity(e) async for e in self._table.query_entities(query, parameters=params)]

    @property
    def browse_rows(self) -> TableRecordStore[BrowseRecord]:
        return TableRecordStore(self._table, BROWSE_CODEC)
