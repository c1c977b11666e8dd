"""Typed records in Table storage: the one place rows are built, read, and written under their ETag."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from orchestrators.browse.records import BrowseRecord
from orchestrators.kernel.errors import Contended
from orchestrators.kernel.step import StepState
from orchestrators.restore.records import BatchRecord
from orchestrators.selection.records import BulkPart, BulkStep

R = TypeVar("R")
T = TypeVar("T")

BATCH_PREFIX = "batch:"


@dataclass(frozen=True)
class Codec(Generic[R]):
    """How one record kind maps to a row."""

    keys: Callable[[R], tuple[str, str]]
    to_entity: Callable[[R], dict[str, Any]]
    from_entity: Callable[[Any], R]


def etag_of(entity: Any) -> str | None:
    metadata = getattr(entity, "metadata", None)
    return metadata.get("etag") if metadata else None


def conflict(what: str, exc: Exception) -> Contended:
    """A conditional write lost to another writer (or the row is gone): the caller reads again or backs off."""
    error = Contended(f"{what} changed underneath us")
    error.__cause__ = exc
    return error


async def replace_if_unchanged(table: TableClient, entity: dict[str, Any], etag: str | None, what: str) -> str | None:
    """Rewrite a row only if nobody changed it since it was read (the one ETag check); returns the new ETag."""
    try:
        meta = await table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                         match_condition=MatchConditions.IfNotModified)
    except (ResourceModifiedError, ResourceNotFoundError) as exc:
        raise conflict(what, exc) from exc
    return meta.get("etag")


async def optimistic_update(read: Callable[[], Awaitable[T]], change: Callable[[T], T | None],
                            write: Callable[[T], Awaitable[T]], *, what: str, attempts: int = 50,
                            rng: random.Random | None = None) -> T:
    """Read with the ETag, apply a pure change, write under the ETag; on conflict, back off (jittered) and redo.

    `change` returns None when there is nothing to change (the read value is returned). Raises `Contended` when
    `attempts` conflicts in a row say the row is too busy."""
    rng = rng or _RNG
    for attempt in range(attempts):
        current = await read()
        changed = change(current)
        if changed is None:
            return current
        try:
            return await write(changed)
        except Contended:
            await asyncio.sleep(rng.uniform(0, min(0.5, 0.005 * 2 ** min(attempt, 7))))
    raise Contended(f"{what} is too contended ({attempts} conflicting writes in a row)")


_RNG = random.Random()


class TableRecordStore(Generic[R]):
    """A `StepStore` over one table: conditional replace on the record's ETag."""

    def __init__(self, table: TableClient, codec: Codec[R]) -> None:
        self._table = table
        self._codec = codec

    async def save(self, record: R) -> R:
        etag = await replace_if_unchanged(self._table, self._codec.to_entity(record),
                                          record.etag,  # type: ignore[attr-defined]
                                          "row {}/{}".format(*self._codec.keys(record)))
        return dataclasses.replace(record, etag=etag)  # type: ignore[type-var]

    async def save_many(self, records: list[R]) -> list[R | Contended]:
        """Conditional replaces in transactions of up to 100 rows of one partition. A transaction is all or
        nothing: when one row of it conflicts, its rows are saved one by one to tell which."""
        results: list[R | Contended] = []
        by_partition: dict[str, list[R]] = {}
        for record in records:
            by_partition.setdefault(self._codec.keys(record)[0], []).append(record)
        saved: dict[int, R | Contended] = {}
        for group in by_partition.values():
            for start in range(0, len(group), 100):
                chunk = group[start:start + 100]
                operations = [("update", self._codec.to_entity(r),
                               {"mode": UpdateMode.REPLACE, "etag": r.etag,  # type: ignore[attr-defined]
                                "match_condition": MatchConditions.IfNotModified}) for r in chunk]
                try:
                    metas = await self._table.submit_transaction(operations)  # type: ignore[arg-type]
                except (TableTransactionError, ResourceModifiedError, ResourceNotFoundError):
                    for record in chunk:
                        try:
                            saved[id(record)] = await self.save(record)
                        except Contended as lost:
                            saved[id(record)] = lost
                    continue
                for record, meta in zip(chunk, metas, strict=True):
                    saved[id(record)] = dataclasses.replace(record, etag=meta.get("etag"))  # type: ignore[type-var]
        results = [saved[id(r)] for r in records]
        return results

    async def reload(self, record: R) -> R:
        partition, row = self._codec.keys(record)
        try:
            entity = await self._table.get_entity(partition, row)
        except ResourceNotFoundError as exc:
            raise conflict(f"row {partition}/{row}", exc) from exc
        return self._codec.from_entity(entity)


def _optional(entity: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    entity.update({k: v for k, v in values.items() if v is not None})
    return entity


def batch_row_key(index: int) -> str:
    return f"{BATCH_PREFIX}{index:05d}"


def _batch_to_entity(batch: BatchRecord) -> dict[str, Any]:
    return _optional({
        "PartitionKey": batch.request_id,
        "RowKey": batch_row_key(batch.index),
        "Index": batch.index,
        "DestinationType": batch.destination_type,
        "RestorePointIds": json.dumps(batch.restore_point_ids),
        "State": str(batch.state),
        "Excluded": json.dumps(list(batch.excluded)),
    }, {
        "SessionId": batch.session_id,
        "SessionStatus": batch.session_status,
        "CreatedDateTime": batch.created_date_time,
        "CreatingSince": batch.creating_since,
        "Owner": batch.owner,
        "LeaseUntil": batch.lease_until,
        "Error": json.dumps(batch.error) if batch.error else None,
    })


def _batch_from_entity(entity: Any) -> BatchRecord:
    error = entity.get("Error")
    return BatchRecord(
        request_id=entity["PartitionKey"],
        index=int(entity["Index"]),
        destination_type=entity["DestinationType"],
        restore_point_ids=tuple(json.loads(entity["RestorePointIds"])),
        state=StepState(entity["State"]),
        session_id=entity.get("SessionId"),
        session_status=entity.get("SessionStatus"),
        created_date_time=entity.get("CreatedDateTime"),
        creating_since=entity.get("CreatingSince"),
        owner=entity.get("Owner"),
        lease_until=entity.get("LeaseUntil"),
        excluded=tuple(json.loads(entity.get("Excluded") or "[]")),
        error=json.loads(error) if error else None,
        etag=etag_of(entity),
    )


BATCH_CODEC: Codec[BatchRecord] = Codec(lambda b: (b.request_id, batch_row_key(b.index)), _batch_to_entity,
                                        _batch_from_entity)


BULK_PREFIX = "bulk:"


def bulk_row_key(index: int, part: BulkPart) -> str:
    """`bulk:NNNNN` holds the bulk request's step (and its outcome); `bulk:NNNNN:session` the session's."""
    base = f"{BULK_PREFIX}{index:05d}"
    return base if part is BulkPart.REQUEST else f"{base}:session"


def _bulk_to_entity(step: BulkStep) -> dict[str, Any]:
    return _optional({
        "PartitionKey": step.request_id,
        "RowKey": bulk_row_key(step.index, step.part),
        "Index": step.index,
        "Part": str(step.part),
        "State": str(step.state),
    }, {
        "CreatingSince": step.creating_since,
        "Owner": step.owner,
        "LeaseUntil": step.lease_until,
        "SessionId": step.session_id,
        "CreatedDateTime": step.created_date_time,
        "BulkId": step.bulk_id,
        "BulkStatus": step.bulk_status,
        "OutcomeReported": True if step.outcome_reported else None,
        "Error": json.dumps(step.error) if step.error else None,
    })


def _bulk_from_entity(entity: Any) -> BulkStep:
    error = entity.get("Error")
    return BulkStep(
        request_id=entity["PartitionKey"],
        index=int(entity["Index"]),
        part=BulkPart(entity["Part"]),
        state=StepState(entity["State"]),
        creating_since=entity.get("CreatingSince"),
        owner=entity.get("Owner"),
        lease_until=entity.get("LeaseUntil"),
        session_id=entity.get("SessionId") or None,
        created_date_time=entity.get("CreatedDateTime") or None,
        bulk_id=entity.get("BulkId"),
        bulk_status=entity.get("BulkStatus"),
        outcome_reported=bool(entity.get("OutcomeReported")),
        error=json.loads(error) if error else None,
        etag=etag_of(entity),
    )


BULK_CODEC: Codec[BulkStep] = Codec(lambda s: (s.request_id, bulk_row_key(s.index, s.part)), _bulk_to_entity,
                                    _bulk_from_entity)


class StepRows(Generic[R]):
    """Records of one kind: created once (a second create reads back the first), read by key, saved by step."""

    def __init__(self, table: TableClient, codec: Codec[R]) -> None:
        self._table = table
        self._codec = codec
        self.store = TableRecordStore(table, codec)

    async def open(self, record: R) -> R:
        """The stored record, writing `record` first if there is none."""
        try:
            meta = await self._table.create_entity(self._codec.to_entity(record))
            return dataclasses.replace(record, etag=meta.get("etag"))  # type: ignore[type-var]
        except ResourceExistsError:
            return await self.store.reload(record)

    async def get(self, partition: str, row: str) -> R | None:
        try:
            return self._codec.from_entity(await self._table.get_entity(partition, row))
        except ResourceNotFoundError:
            return None


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


def _browse_to_entity(record: BrowseRecord) -> dict[str, Any]:
    return _optional({
        "PartitionKey": record.request_id,
        "RowKey": browse_row_key(record.restore_point_id),
        "RestorePointId": record.restore_point_id,
        "State": str(record.state),
    }, {
        "SessionId": record.session_id,
        "SessionStatus": record.session_status,
        "CreatingSince": record.creating_since,
        "Owner": record.owner,
        "LeaseUntil": record.lease_until,
        "CreatedDateTime": record.created_date_time,
        "ExpirationDateTime": record.expiration_date_time,
        "RestorePointDateTime": record.restore_point_date_time,
        "BackupSizeInBytes": record.backup_size_in_bytes,
        "DirectoryObjectId": record.directory_object_id,
        "SessionError": json.dumps(record.session_error) if record.session_error else None,
        "Error": json.dumps(record.error) if record.error else None,
        "PointKnown": True if record.point_known else None,
        "PointProtectionDateTime": record.point_date_time,
        "PointDirectoryObjectId": record.point_directory_object_id,
    })


def _browse_from_entity(entity: Any) -> BrowseRecord:
    session_error, error = entity.get("SessionError"), entity.get("Error")
    return BrowseRecord(
        request_id=entity["PartitionKey"],
        restore_point_id=entity["RestorePointId"],
        state=StepState(entity["State"]),
        session_id=entity.get("SessionId"),
        session_status=entity.get("SessionStatus"),
        creating_since=entity.get("CreatingSince"),
        owner=entity.get("Owner"),
        lease_until=entity.get("LeaseUntil"),
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
        etag=etag_of(entity),
    )


BROWSE_CODEC: Codec[BrowseRecord] = Codec(lambda r: (r.request_id, browse_row_key(r.restore_point_id)),
                                          _browse_to_entity, _browse_from_entity)
