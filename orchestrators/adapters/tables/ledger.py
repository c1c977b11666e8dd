"""The ledger: what the service has planned and done, in Azure Table storage.

One partition per request: a `request` row (payload hash, audit fields, state) and one `batch:NNNNN`
row per planned session (its restore points, state, Graph session id). Every change is a conditional
write on the row's ETag, so two workers handling the same message cannot both create a session.
A browse request adds one `browse:<restorePointId>` row per restore point to its request's partition.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from orchestrators.contracts import RestoreRequest
from orchestrators.kernel.errors import Contended
from orchestrators.kernel.settings import Settings
from orchestrators.restore.planner import SessionPlan

log = logging.getLogger(__name__)

#: Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
REQUEST_ROW = "request"
BATCH_PREFIX = "batch:"
OUTCOME_PREFIX = "outcome:"

# Batch states. `creating` means a create may have reached Graph: reconcile before creating again.
PLANNED, CREATING, CREATED, FAILED = "planned", "creating", "created", "failed"
SETTLED = frozenset({CREATED, FAILED})


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


@dataclass(frozen=True)
class BatchRecord:
    request_id: str
    index: int
    destination_type: str
    restore_point_ids: tuple[str, ...]
    state: str = PLANNED
    session_id: str | None = None
    session_status: str | None = None
    created_date_time: str | None = None
    creating_since: datetime | None = None
    excluded: tuple[dict[str, Any], ...] = ()
    error: dict[str, Any] | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def row_key(self) -> str:
        return f"{BATCH_PREFIX}{self.index:05d}"

    @property
    def remaining_points(self) -> tuple[str, ...]:
        gone = {e["restorePointId"] for e in self.excluded}
        return tuple(rp for rp in self.restore_point_ids if rp not in gone)

    @property
    def settled(self) -> bool:
        return self.state in SETTLED

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.request_id,
            "RowKey": self.row_key,
            "Index": self.index,
            "DestinationType": self.destination_type,
            "RestorePointIds": json.dumps(self.restore_point_ids),
            "State": self.state,
            "Excluded": json.dumps(list(self.excluded)),
        }
        optional = {
            "SessionId": self.session_id,
            "SessionStatus": self.session_status,
            "CreatedDateTime": self.created_date_time,
            "CreatingSince": self.creating_since,
            "Error": json.dumps(self.error) if self.error else None,
        }
        entity.update({k: v for k, v in optional.items() if v is not None})
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> BatchRecord:
        error = entity.get("Error")
        return cls(
            request_id=entity["PartitionKey"],
            index=int(entity["Index"]),
            destination_type=entity["DestinationType"],
            restore_point_ids=tuple(json.loads(entity["RestorePointIds"])),
            state=entity["State"],
            session_id=entity.get("SessionId"),
            session_status=entity.get("SessionStatus"),
            created_date_time=entity.get("CreatedDateTime"),
            creating_since=entity.get("CreatingSince"),
            excluded=tuple(json.loads(entity.get("Excluded") or "[]")),
            error=json.loads(error) if error else None,
            etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
        )


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
        self._table = table
        self._credential = credential  # closed with the ledger when the ledger made it
        self._table_ready = False

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
    def table(self) -> TableClient:
        """The table client, shared with the activation ledger (one connection pool per worker)."""
        return self._table

    async def aclose(self) -> None:
        await self._table.close()
        if self._credential is not None:
            await self._credential.close()

    async def ensure_table(self) -> None:
        if self._table_ready:
            return
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
        self._table_ready = True

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
            }
            try:
                await self._table.create_entity(entity)
            except ResourceExistsError:
                record = await self.get_request(request.request_id)
        if record is not None and record.payload_hash != request.payload_hash:
            raise PayloadConflict(request.request_id)

        batches = await self.load_batches(request.request_id)
        if len(batches) < len(plans):
            known = {b.index for b in batches}
            missing = [BatchRecord(request.request_id, p.index, p.destination_type, p.restore_point_ids)
                       for p in plans if p.index not in known]
            for start in range(0, len(missing), 100):  # a table transaction holds at most 100 rows
                chunk = missing[start:start + 100]
                try:
                    await self._table.submit_transaction([("create", b.to_entity()) for b in chunk])
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
                             activation_requested=bool(entity.get("ActivationRequested", False)))

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
        rows = [BatchRecord.from_entity(e) async for e in self._table.query_entities(query, parameters=params)]
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

    # -- batch transitions (all conditional on the ETag we read) ---------------------------------

    async def _replace(self, batch: BatchRecord) -> BatchRecord:
        try:
            meta = await self._table.update_entity(
                batch.to_entity(), mode=UpdateMode.REPLACE, etag=batch.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Contended(f"batch {batch.index} of {batch.request_id} changed underneath us") from exc
        return replace(batch, etag=meta.get("etag"))

    async def mark_creating(self, batch: BatchRecord) -> BatchRecord:
        return await self._replace(replace(batch, state=CREATING, creating_since=_now()))

    async def mark_planned(self, batch: BatchRecord) -> BatchRecord:
        return await self._replace(replace(batch, state=PLANNED, creating_since=None))

    async def mark_created(self, batch: BatchRecord, session_id: str, status: str,
                           created_date_time: str | None) -> BatchRecord:
        return await self._replace(replace(batch, state=CREATED, session_id=session_id,
                                           session_status=status, created_date_time=created_date_time))

    async def exclude_points(self, batch: BatchRecord, excluded: Sequence[dict[str, Any]],
                             error: dict[str, Any]) -> BatchRecord:
        merged = tuple(batch.excluded) + tuple(excluded)
        return await self._replace(replace(batch, state=PLANNED, excluded=merged, error=error,
                                           creating_since=None))

    async def mark_failed(self, batch: BatchRecord, error: dict[str, Any],
                          excluded: Sequence[dict[str, Any]] = ()) -> BatchRecord:
        merged = tuple(batch.excluded) + tuple(excluded)
        return await self._replace(replace(batch, state=FAILED, error=error, excluded=merged))

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
        rows = {r.row_key: r for r in await self.load_browse(request_id)}
        missing = [BrowseRecord(request_id, rp) for key, rp in wanted.items() if key not in rows]
        if missing:
            for start in range(0, len(missing), 100):  # a table transaction holds at most 100 rows
                chunk = missing[start:start + 100]
                try:
                    await self._table.submit_transaction([("create", r.to_entity()) for r in chunk])
                except (TableTransactionError, ResourceExistsError):
                    pass  # another worker wrote them first; read back below
            rows = {r.row_key: r for r in await self.load_browse(request_id)}
        return [rows[key] for key in wanted if key in rows]

    async def load_browse(self, request_id: str) -> list[BrowseRecord]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": request_id, "lo": BROWSE_PREFIX, "hi": BROWSE_PREFIX[:-1] + ";"}
        return [BrowseRecord.from_entity(e) async for e in self._table.query_entities(query, parameters=params)]

    async def _replace_browse(self, record: BrowseRecord) -> BrowseRecord:
        try:
            meta = await self._table.update_entity(
                record.to_entity(), mode=UpdateMode.REPLACE, etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Contended(f"browse row {record.restore_point_id} of {record.request_id} changed "
                            "underneath us") from exc
        return replace(record, etag=meta.get("etag"))

    async def mark_browse_creating(self, record: BrowseRecord) -> BrowseRecord:
        return await self._replace_browse(replace(record, state=CREATING, creating_since=_now()))

    async def mark_browse_planned(self, record: BrowseRecord) -> BrowseRecord:
        return await self._replace_browse(replace(record, state=PLANNED, creating_since=None))

    async def mark_browse_created(self, record: BrowseRecord, session: Any) -> BrowseRecord:
        """Graph gave the session an id (its own status may still be `creating`)."""
        return await self._replace_browse(replace(
            record, state=CREATED, session_id=session.session_id, **browse_session_fields(session)))

    async def update_browse_session(self, record: BrowseRecord, session: Any) -> BrowseRecord:
        """Record what Graph now says about the session (status, expiry, size, drive)."""
        return await self._replace_browse(replace(record, **browse_session_fields(session)))

    async def mark_browse_failed(self, record: BrowseRecord, error: dict[str, Any]) -> BrowseRecord:
        return await self._replace_browse(replace(record, state=FAILED, error=error))

    async def record_browse_restore_point(self, record: BrowseRecord, protection_date_time: str | None,
                                          directory_object_id: str | None) -> BrowseRecord:
        """Keep what identifies the restore point in Graph's browse session reads (looked up once)."""
        return await self._replace_browse(replace(record, point_known=True, point_date_time=protection_date_time,
                                                  point_directory_object_id=directory_object_id))


BROWSE_PREFIX = "browse:"
# Characters Table storage refuses in a RowKey are escaped; `%` itself too, so the escaping is reversible.
_ROW_KEY_SAFE = "-._~:@!$&'()*+,;="


def browse_row_key(restore_point_id: str) -> str:
    """`browse:<restorePointId>`, escaped where Table storage would refuse it; a digest if still too long."""
    escaped = quote(restore_point_id, safe=_ROW_KEY_SAFE)
    if len(escaped) <= 512:
        return BROWSE_PREFIX + escaped
    # An escaped id never contains "%h" (escapes are hex), so this form cannot collide with one.
    return f"{BROWSE_PREFIX}%hash:{hashlib.sha256(restore_point_id.encode()).hexdigest()}"


def browse_session_fields(session: Any) -> dict[str, Any]:
    return {
        "session_status": session.status,
        "created_date_time": session.created_date_time,
        "expiration_date_time": session.expiration_date_time,
        "restore_point_date_time": session.restore_point_date_time,
        "backup_size_in_bytes": session.backup_size_in_bytes,
        "directory_object_id": session.directory_object_id,
        "session_error": session.error,
    }


@dataclass(frozen=True)
class BrowseRecord:
    """One restore point of a browse request: the ledger's `planned -> creating -> created | failed`,
    and, once created, what Graph last said about the session (`creating -> created | failed`)."""

    request_id: str
    restore_point_id: str
    state: str = PLANNED
    session_id: str | None = None
    session_status: str | None = None
    creating_since: datetime | None = None
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
    def row_key(self) -> str:
        return browse_row_key(self.restore_point_id)

    @property
    def settled(self) -> bool:
        """Nothing more to do: refused, failed, or created and no longer `creating` in Graph."""
        return self.state == FAILED or (self.state == CREATED and self.session_status != "creating")

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.request_id,
            "RowKey": self.row_key,
            "RestorePointId": self.restore_point_id,
            "State": self.state,
        }
        optional = {
            "SessionId": self.session_id,
            "SessionStatus": self.session_status,
            "CreatingSince": self.creating_since,
            "CreatedDateTime": self.created_date_time,
            "ExpirationDateTime": self.expiration_date_time,
            "RestorePointDateTime": self.restore_point_date_time,
            "BackupSizeInBytes": self.backup_size_in_bytes,
            "DirectoryObjectId": self.directory_object_id,
            "SessionError": json.dumps(self.session_error) if self.session_error else None,
            "Error": json.dumps(self.error) if self.error else None,
            "PointKnown": True if self.point_known else None,
            "PointProtectionDateTime": self.point_date_time,
            "PointDirectoryObjectId": self.point_directory_object_id,
        }
        entity.update({k: v for k, v in optional.items() if v is not None})
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> BrowseRecord:
        session_error, error = entity.get("SessionError"), entity.get("Error")
        return cls(
            request_id=entity["PartitionKey"],
            restore_point_id=entity["RestorePointId"],
            state=entity["State"],
            session_id=entity.get("SessionId"),
            session_status=entity.get("SessionStatus"),
            creating_since=entity.get("CreatingSince"),
            created_date_time=entity.get("CreatedDateTime"),
            expiration_date_time=entity.get("ExpirationDateTime"),
            restore_point_date_time=entity.get("RestorePointDateTime"),
            backup_size_in_bytes=entity.get("BackupSizeInBytes"),
            directory_object_id=entity.get("DirectoryObjectId"),
            session_error=json.loads(session_error) if session_error else None,
            error=json.loads(error) if error else None,
            point_known=bool(entity.get("PointKnown")),
            point_date_time=entity.get("PointProtectionDateTime"),
            point_directory_object_id=entity.get("PointDirectoryObjectId"),
            etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
        )
