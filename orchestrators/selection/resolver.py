"""Restore by point in time (`selection`): OneDrive owners in, restore points (or a bulk session) out.

Resolution has two steps, each recorded in the ledger before the next begins, so a redelivered message
continues where the last attempt stopped instead of asking Graph again, and can never pick a different
restore point for a drive:
1. identities: each selector (email, directoryObjectId, protectionUnitId) becomes a drive protection unit,
   by one `$filter` lookup per selector for small requests, else by one paged listing of the tenant;
2. restore points (standard path and dry runs): `restorePoints/search` in chunks of 20 protection units,
   window [notBefore, min(pointInTime, resolution time)], preference `latest`; one ledger row per chunk.

The bulk path hands step 2 to Graph: one empty session plus one bulk addition request naming the drives
and the same window. Graph resolves the drives when the session is activated; the tracker then reports
each drive's outcome (`restore.bulk.completed`).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrators.adapters.tables.ledger import Ledger
from orchestrators.contracts import BULK_MAX_DRIVES, Artifact, CloudEvent, RestoreRequest, Selection
from orchestrators.kernel.clock import SYSTEM_CLOCK, Clock
from orchestrators.kernel.errors import GraphRefused, RetryLater
from orchestrators.kernel.settings import Settings
from orchestrators.kernel.step import Intent, LeaseHeld, StepState, done, failed, new_owner, run_step
from orchestrators.restore.planner import SessionPlan
from orchestrators.restore.records import BatchRecord
from orchestrators.selection.records import BulkPart, BulkStep

log = logging.getLogger(__name__)

SEARCH_CHUNK = 20  # Graph's limit of protection units per search
IDENTITY_ROW_SIZE = 100  # selectors per ledger row (keeps a row well under Table storage's 64 KiB per property)
HEADER_ROW = "selection"
IDENTITY_PREFIX = "selection:id:"
POINTS_PREFIX = "selection:rp:"
BULK_PREFIX = "bulk:"
CLOCK_SKEW = timedelta(minutes=5)

# Why a selector was not restored (the `reason` of `unresolved` entries).
UNKNOWN = {"users": "unknownUser", "directoryObjectIds": "unknownDirectoryObject",
           "protectionUnitIds": "unknownProtectionUnit"}
NOT_PROTECTED = "notProtected"
NO_RESTORE_POINT = "noRestorePointInWindow"
REASON_TEXT = {
    "unknownUser": "no OneDrive protection unit has this owner",
    "unknownDirectoryObject": "no OneDrive protection unit has this directory object id",
    "unknownProtectionUnit": "no OneDrive protection unit has this id",
    NOT_PROTECTED: "the OneDrive is not protected by a backup policy",
    NO_RESTORE_POINT: "no restore point between notBefore and pointInTime",
}


# -- pure logic ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drive:
    """One selector and what it resolved to (a protection unit, then a restore point), or why not."""

    selector: str
    kind: str  # users | directoryObjectIds | protectionUnitIds
    protection_unit_id: str | None = None
    email: str | None = None
    directory_object_id: str | None = None
    unit_status: str | None = None
    restore_point_id: str | None = None
    protection_date_time: str | None = None
    reason: str | None = None

    @property
    def restorable(self) -> bool:
        """Identified and protected: the bulk path can name it."""
        return self.protection_unit_id is not None and self.reason is None

    def to_row(self) -> list[Any]:
        return [self.selector, self.kind, self.protection_unit_id, self.email, self.directory_object_id,
                self.unit_status, self.reason]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Drive:
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], reason=row[6])

    def to_json(self) -> dict[str, Any]:
        if self.reason:
            return {"selector": self.selector, "reason": self.reason, "message": REASON_TEXT.get(self.reason, ""),
                    **({"protectionUnitId": self.protection_unit_id} if self.protection_unit_id else {})}
        entry: dict[str, Any] = {"selector": self.selector, "protectionUnitId": self.protection_unit_id}
        if self.restore_point_id:
            entry.update(restorePointId=self.restore_point_id, protectionDateTime=self.protection_date_time)
        return entry


def selectors_of(selection: Selection) -> list[tuple[str, str]]:
    """(kind, value) for every selector, in request order."""
    return ([("users", u) for u in selection.users]
            + [("directoryObjectIds", d) for d in selection.directory_object_ids]
            + [("protectionUnitIds", p) for p in selection.protection_unit_ids])


_FILTER_PROPERTY = {"users": "email", "directoryObjectIds": "directoryObjectId", "protectionUnitIds": "id"}


def unit_filter(kind: str, value: str) -> str:
    """The OData `$filter` that finds one selector's protection unit."""
    return f"{_FILTER_PROPERTY[kind]} eq '{value.replace(chr(39), chr(39) * 2)}'"


def identify(selectors: Iterable[tuple[str, str]], units: Iterable[dict[str, Any]]) -> list[Drive]:
    """Match selectors to protection units (case-insensitively); unknown or unprotected ones get a reason."""
    index: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in _FILTER_PROPERTY}
    for unit in units:
        for kind, prop in _FILTER_PROPERTY.items():
            value = unit.get(prop)
            if isinstance(value, str) and value:
                index[kind].setdefault(value.lower(), unit)
    drives: list[Drive] = []
    for kind, value in selectors:
        found = index[kind].get(value.lower())
        if found is None:
            drives.append(Drive(value, kind, reason=UNKNOWN[kind]))
            continue
        status = str(found.get("status") or "")
        drives.append(Drive(value, kind, str(found["id"]), found.get("email"), found.get("directoryObjectId"),
                            status, reason=None if status == "protected" else NOT_PROTECTED))
    return drives


def search_chunks(drives: Sequence[Drive]) -> list[tuple[str, ...]]:
    """The protected units to search, each once, in request order, cut into Graph's chunks of 20."""
    units = list(dict.fromkeys(d.protection_unit_id for d in drives if d.restorable and d.protection_unit_id))
    return [tuple(units[i:i + SEARCH_CHUNK]) for i in range(0, len(units), SEARCH_CHUNK)]


def read_search(answer: dict[str, Any]) -> dict[str, list[str | None]]:
    """protectionUnitId -> [restorePointId, protectionDateTime] from a search answer."""
    found: dict[str, list[str | None]] = {}
    for result in answer.get("searchResults") or []:
        point = result.get("restorePoint") or {}
        unit = (point.get("protectionUnit") or {}).get("id")
        if unit and point.get("id"):
            found[str(unit).lower()] = [str(point["id"]), point.get("protectionDateTime")]
    return found


def apply_points(drives: Sequence[Drive], found: dict[str, list[str | None]]) -> list[Drive]:
    """Give each protected drive its restore point, or the reason `noRestorePointInWindow`."""
    result: list[Drive] = []
    for drive in drives:
        if not drive.restorable or drive.protection_unit_id is None:
            result.append(drive)
            continue
        point = found.get(drive.protection_unit_id.lower())
        if point is None or not point[0]:
            result.append(replace(drive, reason=NO_RESTORE_POINT))
        else:
            result.append(replace(drive, restore_point_id=point[0], protection_date_time=point[1]))
    return result


@dataclass(frozen=True)
class SessionDurationModel:
    """How long one restore session takes from activation to its last artifact:
    fixed + ceil(artifacts / parallelism) * per_artifact."""

    fixed_seconds: float
    per_artifact_seconds: float
    parallelism: int

    @classmethod
    def onedrive(cls, settings: Settings) -> SessionDurationModel:
        return cls(settings.onedrive_session_fixed_seconds, settings.onedrive_session_per_artifact_seconds,
                   settings.onedrive_session_parallelism)

    def seconds(self, artifacts: int) -> float:
        return self.fixed_seconds + math.ceil(max(artifacts, 0) / self.parallelism) * self.per_artifact_seconds


def completion_seconds(session_sizes: Sequence[int], max_active: int, model: SessionDurationModel) -> float:
    """Time from the first activation until the last session ends, when the sessions are activated in the
    given order, each as soon as fewer than `max_active` are running. Sessions of equal size thus run in
    waves of `max_active`. The tracker's polling delay is left out (a minute per wave against hours)."""
    if not session_sizes:
        return 0.0
    free_at = [0.0] * max(1, min(max_active, len(session_sizes)))  # when each slot can take the next session
    last = 0.0
    for size in session_sizes:
        ends = heapq.heappop(free_at) + model.seconds(size)
        heapq.heappush(free_at, ends)
        last = max(last, ends)
    return last


def standard_session_sizes(drive_counts: Sequence[int], per_session: int) -> list[int]:
    """The standard plan's session sizes: per destination type, full sessions of `per_session`, then the rest."""
    sizes: list[int] = []
    for count in drive_counts:
        full, rest = divmod(max(count, 0), per_session)
        sizes += [per_session] * full + ([rest] if rest else [])
    return sizes


@dataclass(frozen=True)
class PlanEstimate:
    standard_seconds: float
    bulk_seconds: float | None  # None: a destination type has more drives than one bulk request may name


@dataclass(frozen=True)
class AutoStrategy:
    """What `auto` weighs: how long each plan would take under the active-session cap, from the settings'
    duration model; bulk only for more than `threshold` drives."""

    threshold: int
    per_session: int
    max_active: int
    model: SessionDurationModel

    @classmethod
    def from_settings(cls, settings: Settings) -> AutoStrategy:
        return cls(settings.bulk_threshold_drives, settings.max_artifacts_per_session, settings.max_active_sessions,
                   SessionDurationModel.onedrive(settings))

    def estimate(self, drive_counts: Sequence[int]) -> PlanEstimate:
        """Standard: sessions of at most `per_session`, run under the cap. Bulk: one session per destination
        type (`drive_counts` holds the drives of each destination type)."""
        standard = completion_seconds(standard_session_sizes(drive_counts, self.per_session), self.max_active,
                                      self.model)
        bulk_sizes = [c for c in drive_counts if c > 0]
        if any(c > BULK_MAX_DRIVES for c in bulk_sizes):
            return PlanEstimate(standard, None)
        return PlanEstimate(standard, completion_seconds(bulk_sizes, self.max_active, self.model))

    def choose(self, drive_counts: Sequence[int]) -> str:
        """Bulk when there are more than `threshold` drives and bulk is estimated to end sooner; else standard
        (a tie goes to standard)."""
        if sum(drive_counts) <= self.threshold:
            return "standard"
        estimate = self.estimate(drive_counts)
        if estimate.bulk_seconds is not None and estimate.bulk_seconds < estimate.standard_seconds:
            return "bulk"
        return "standard"


def choose_strategy(requested: str, drive_counts: Sequence[int], auto: AutoStrategy) -> str:
    """The strategy asked for; for `auto`, the plan estimated to restore every drive first."""
    if requested != "auto":
        return requested
    return auto.choose(drive_counts)


def window(selection: Selection, resolved_at: datetime) -> tuple[datetime, datetime]:
    """[notBefore, pointInTime], the end held at the resolution time so that a later look (a redelivery,
    Graph resolving a bulk request at activation) cannot see a newer restore point."""
    return selection.not_before, min(selection.point_in_time, resolved_at)


def bulk_outcomes(drives: Sequence[Drive], artifacts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per selector: the restore point Graph added for its drive, or why none was."""
    by_unit: dict[str, dict[str, Any]] = {}
    for artifact in artifacts:
        point = artifact.get("restorePoint") or {}
        unit = point.get("protectionUnit") or {}
        for key in (unit.get("id"), unit.get("email")):
            if isinstance(key, str) and key:
                by_unit.setdefault(key.lower(), {**point, "status": artifact.get("status")})
    outcomes: list[dict[str, Any]] = []
    for drive in drives:
        if not drive.restorable:
            outcomes.append({**drive.to_json(), "status": "notRestored"})
            continue
        point = by_unit.get((drive.protection_unit_id or "").lower()) or by_unit.get((drive.email or "").lower())
        if point is None:
            outcomes.append({**replace(drive, reason=NO_RESTORE_POINT).to_json(), "status": "notRestored"})
        else:
            outcomes.append({"selector": drive.selector, "protectionUnitId": drive.protection_unit_id,
                             "restorePointId": point.get("id"), "protectionDateTime": point.get("protectionDateTime"),
                             "status": "added"})
    return outcomes


@dataclass(frozen=True)
class Resolution:
    drives: tuple[Drive, ...]
    strategy: str
    window_start: datetime
    window_end: datetime
    searched: bool

    def artifacts(self, destination_type: str) -> tuple[Artifact, ...]:
        points = dict.fromkeys(d.restore_point_id for d in self.drives if d.restore_point_id)
        return tuple(Artifact(rp, destination_type) for rp in points if rp)

    @property
    def unresolved(self) -> list[Drive]:
        return [d for d in self.drives if d.reason]

    def summary(self) -> dict[str, Any]:
        """The fields `restore.request.accepted` and `.planned` gain for a selection."""
        return {
            "strategy": self.strategy,
            "windowStart": _iso(self.window_start),
            "windowEnd": _iso(self.window_end),
            "driveCount": len(self.drives),
            "resolvedDriveCount": sum(1 for d in self.drives if d.reason is None),
            "unresolved": [{"selector": d.selector, "reason": d.reason, "message": REASON_TEXT.get(d.reason or "", "")}
                           for d in self.unresolved],
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _gather_all(calls: Sequence[Any]) -> list[Any]:
    """Run every call to its end (so finished work gets recorded), then raise the first failure."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)


# -- resolution (Graph + ledger) ----------------------------------------------------------------------


class SelectionResolver:
    def __init__(self, settings: Settings, graph: Any, ledger: Ledger | None) -> None:
        self.settings = settings
        self.graph = graph
        self.ledger = ledger

    async def resolve(self, request: RestoreRequest, *, record: bool, search: bool | None = None) -> Resolution:
        """Resolve the request's selection; with `record`, load what an earlier attempt recorded and record
        every new step. `search` forces (or skips) the restore point search; by default only the standard
        path searches."""
        selection = request.selection
        assert selection is not None
        header = await self.ledger.get_row(request.request_id, HEADER_ROW) if record and self.ledger else None
        if header is None:
            drives = await self._identify(selection)
            resolved_at = datetime.now(UTC)
            start, end = window(selection, resolved_at)
            strategy = self._choose(request.request_id, selection.strategy, len(selection_keys(drives)))
            if record and self.ledger is not None:
                header = await self._record_identities(request.request_id, drives, strategy, start, end)
        if header is not None:
            drives = await self._load_identities(request.request_id)
            strategy, start, end = header["Strategy"], header["WindowStart"], header["WindowEnd"]
        do_search = strategy == "standard" if search is None else search
        if start >= end:  # the window is empty (a future pointInTime with a future notBefore)
            return Resolution(tuple(apply_points(drives, {})), strategy, start, end, False)
        if do_search:
            drives = await self._search(request.request_id if record else None, drives, start, end)
        return Resolution(tuple(drives), strategy, start, end, do_search)

    def _choose(self, request_id: str, requested: str, drive_count: int) -> str:
        auto = AutoStrategy.from_settings(self.settings)
        strategy = choose_strategy(requested, [drive_count], auto)
        if requested == "auto":
            estimate = auto.estimate([drive_count])
            bulk = "-" if estimate.bulk_seconds is None else f"{estimate.bulk_seconds / 3600:.1f} h"
            log.info("request %s: auto chose %s for %d drives (estimated: standard %.1f h, bulk %s)", request_id,
                     strategy, drive_count, estimate.standard_seconds / 3600, bulk)
        return strategy

    async def _identify(self, selection: Selection) -> list[Drive]:
        selectors = selectors_of(selection)
        if len(selectors) <= self.settings.protection_unit_lookup_max:
            gate = asyncio.Semaphore(self.settings.search_concurrency)

            async def lookup(kind: str, value: str) -> list[dict[str, Any]]:
                async with gate:
                    return list(await self.graph.drive_protection_units(unit_filter(kind, value)))

            found = await _gather_all([lookup(k, v) for k, v in selectors])
            units = [u for group in found for u in group]
        else:
            units = list(await self.graph.drive_protection_units())
        return identify(selectors, units)

    async def _record_identities(self, request_id: str, drives: Sequence[Drive], strategy: str,
                                 start: datetime, end: datetime) -> dict[str, Any]:
        assert self.ledger is not None
        rows = [{"PartitionKey": request_id, "RowKey": f"{IDENTITY_PREFIX}{i:05d}",
                 "Drives": json.dumps([d.to_row() for d in chunk], separators=(",", ":"))}
                for i, chunk in enumerate(_chunked(list(drives), IDENTITY_ROW_SIZE))]
        await self.ledger.upsert_rows(rows)
        header = {"PartitionKey": request_id, "RowKey": HEADER_ROW, "Strategy": strategy, "WindowStart": start,
                  "WindowEnd": end, "IdentityRows": len(rows), "DriveCount": len(drives), "State": "identified"}
        if not await self.ledger.create_row(header):
            log.info("request %s: another attempt recorded the resolution first; using it", request_id)
        stored = await self.ledger.get_row(request_id, HEADER_ROW)
        assert stored is not None
        return stored

    async def _load_identities(self, request_id: str) -> list[Drive]:
        assert self.ledger is not None
        header = await self.ledger.get_row(request_id, HEADER_ROW)
        rows = await self.ledger.rows_with_prefix(request_id, IDENTITY_PREFIX)
        rows = rows[: int(header["IdentityRows"])] if header else rows
        return [Drive.from_row(item) for row in rows for item in json.loads(row["Drives"])]

    async def _search(self, request_id: str | None, drives: list[Drive], start: datetime,
                      end: datetime) -> list[Drive]:
        chunks = search_chunks(drives)
        found: dict[str, list[str | None]] = {}
        done: set[int] = set()
        if request_id is not None and self.ledger is not None:
            for row in await self.ledger.rows_with_prefix(request_id, POINTS_PREFIX):
                found.update(json.loads(row["Points"]))
                done.add(int(str(row["RowKey"])[len(POINTS_PREFIX):]))
        gate = asyncio.Semaphore(self.settings.search_concurrency)

        async def search(index: int, units: tuple[str, ...]) -> None:
            async with gate:
                answer = await self.graph.search_restore_points(units, start, end, "latest")
            points = read_search(answer)
            if request_id is not None and self.ledger is not None:
                await self.ledger.upsert_rows([{"PartitionKey": request_id, "RowKey": f"{POINTS_PREFIX}{index:05d}",
                                                "Points": json.dumps(points, separators=(",", ":"))}])
            found.update(points)

        await _gather_all([search(i, c) for i, c in enumerate(chunks) if i not in done])
        return apply_points(drives, found)


def selection_keys(drives: Sequence[Drive]) -> set[str]:
    """Distinct drives named (a protection unit, else the selector itself): what `auto` counts."""
    return {(d.protection_unit_id or f"{d.kind}:{d.selector}").lower() for d in drives}


# -- the bulk path ------------------------------------------------------------------------------------

def bulk_display_name(request_id: str, index: int) -> str:
    """Names the bulk request after our batch, so an earlier attempt's request can be recognised."""
    return f"{request_id}:bulk:{index}"


def bulk_body(request: RestoreRequest, resolution: Resolution, index: int) -> dict[str, Any]:
    drives = [d for d in resolution.drives if d.restorable]
    units = list({(d.protection_unit_id or "").lower(): d for d in drives}.values())
    emails = [d.email for d in units if d.email]
    directory_ids = [d.directory_object_id for d in units if not d.email and d.directory_object_id]
    body: dict[str, Any] = {
        "displayName": bulk_display_name(request.request_id, index),
        "destinationType": request.destination_type,
        "protectionTimePeriod": {"startDateTime": _graph_time(resolution.window_start),
                                 "endDateTime": _graph_time(resolution.window_end)},
        "restorePointPreference": "latest",
    }
    if emails:
        body["drives"] = emails
    if directory_ids:
        body["directoryObjectIds"] = directory_ids
    return body


def _graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SessionTaken(Exception):
    """The empty session adopted for our bulk request already carries another request's: start over."""


class BulkRestorer:
    """One empty session and one bulk addition request on it, each created by one step."""

    def __init__(self, settings: Settings, graph: Any, ledger: Ledger, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.graph = graph
        self.ledger = ledger
        self.clock = clock

    async def settle(self, request: RestoreRequest, resolution: Resolution) -> list[BatchRecord]:
        if not any(d.restorable for d in resolution.drives):
            return []
        index = 0
        batches = await self.ledger.open_request(request, [SessionPlan(index, request.destination_type, ())])
        batch = batches[0]
        if batch.settled:
            return [batch]
        rows = self.ledger.bulk_steps
        tag = bulk_display_name(request.request_id, index)
        owner = new_owner()
        for _ in range(4):
            session = await rows.open(BulkStep(request.request_id, index, BulkPart.SESSION))
            session = await self._run(session, EmptySession(self.graph, tag), owner)
            bulk = await rows.open(BulkStep(request.request_id, index, BulkPart.REQUEST))
            if session.state is StepState.FAILED:
                bulk = session
            elif bulk.state is not StepState.FAILED:
                if bulk.session_id != session.session_id:
                    bulk = await rows.store.save(replace(bulk, session_id=session.session_id,
                                                         created_date_time=session.created_date_time))
                try:
                    bulk = await self._run(bulk, BulkAddition(self.graph, tag, bulk_body(request, resolution, index)),
                                           owner)
                except SessionTaken:
                    log.warning("session %s of %s carries another bulk request; starting over", session.session_id,
                                tag)
                    await rows.store.save(replace(await rows.store.reload(session), session_id=None,
                                                  created_date_time=None).with_intent(Intent()))
                    continue
            if bulk.state is StepState.FAILED:
                await self._discard_empty_session(session.session_id)
                return [await self.ledger.batches.save(failed(replace(batch, error=bulk.error)))]
            return [await self.ledger.batches.save(done(replace(
                batch, session_id=bulk.session_id, session_status="draft", created_date_time=bulk.created_date_time)))]
        raise RetryLater(_error("BulkNotSettled", "the bulk session could not be settled; trying again later"),
                         after=30.0)

    async def _run(self, step: BulkStep, actions: Any, owner: str) -> BulkStep:
        try:
            return await run_step(step, actions, self.ledger.bulk_steps.store, owner=owner, clock=self.clock,
                                  policy=self.settings.step_policy)
        except LeaseHeld as held:
            raise RetryLater(_error("HeldByAnotherWorker", "another worker is creating this bulk session"),
                             after=max(1.0, (held.until - self.clock.now()).total_seconds())) from held

    async def _discard_empty_session(self, session_id: str | None) -> None:
        """Graph refused the bulk request: the empty draft made for it would only clutter the tenant."""
        if not session_id:
            return
        try:
            await self.graph.delete_session(session_id)
        except (GraphRefused, RetryLater) as failure:
            log.warning("could not delete the empty session %s: %s", session_id, failure)


class EmptySession:
    """The bulk session's step: an empty restore session, or an empty draft an earlier attempt made."""

    def __init__(self, graph: Any, tag: str) -> None:
        self.graph = graph
        self.tag = tag

    async def act(self, step: BulkStep) -> BulkStep:
        try:
            created = await self.graph.create_empty_restore_session()
        except GraphRefused as refused:
            return failed(replace(step, error=refused.error.to_json()))
        return done(replace(step, session_id=created.session_id, created_date_time=created.created_date_time))

    async def reconcile(self, step: BulkStep) -> BulkStep | None:
        """Adopt our empty draft, or the one already carrying our bulk request; None to create again."""
        since = (step.creating_since or datetime.now(UTC)) - CLOCK_SKEW
        app_id = getattr(self.graph, "application_id", None)
        empty: Any = None
        for draft in await self.graph.draft_sessions_since(since):
            if draft.artifact_total not in (0, None) or (app_id and draft.application_id
                                                         and draft.application_id != app_id):
                continue
            bulks = await self.graph.bulk_additions(draft.session_id)
            if any(b.get("displayName") == self.tag for b in bulks):
                log.warning("bulk session %s of %s adopted with its bulk request", draft.session_id, self.tag)
                return done(replace(step, session_id=draft.session_id, created_date_time=_created(draft)))
            if not bulks and empty is None:
                empty = draft
        if empty is not None:
            log.warning("empty session %s adopted for %s", empty.session_id, self.tag)
            return done(replace(step, session_id=empty.session_id, created_date_time=_created(empty)))
        return None


class BulkAddition:
    """The bulk request's step: one bulk addition request named after our batch, on the session."""

    def __init__(self, graph: Any, tag: str, body: dict[str, Any]) -> None:
        self.graph = graph
        self.tag = tag
        self.body = body

    async def act(self, step: BulkStep) -> BulkStep:
        assert step.session_id
        try:
            bulk = await self.graph.create_bulk_addition(step.session_id, self.body)
        except GraphRefused as refused:
            if "one bulk addition" in refused.error.message.lower():
                raise SessionTaken(step.session_id) from refused
            return failed(replace(step, error=refused.error.to_json()))
        return done(replace(step, bulk_id=str(bulk.get("id")), bulk_status=str(bulk.get("status") or "active")))

    async def reconcile(self, step: BulkStep) -> BulkStep | None:
        assert step.session_id
        for bulk in await self.graph.bulk_additions(step.session_id):
            if bulk.get("displayName") == self.tag:
                return done(replace(step, bulk_id=str(bulk["id"]), bulk_status=str(bulk.get("status") or "active")))
        return None


def _created(draft: Any) -> str | None:
    return draft.created_date_time.isoformat() if draft.created_date_time else None


def _error(code: str, message: str) -> Any:
    from orchestrators.kernel.errors import GraphError

    return GraphError(None, code, message)


async def bulk_step(ledger: Ledger, request_id: str, index: int) -> BulkStep | None:
    """The bulk request's step (with its id, status and whether its outcome was reported), or None."""
    from orchestrators.adapters.tables.records import bulk_row_key

    return await ledger.bulk_steps.get(request_id, bulk_row_key(index, BulkPart.REQUEST))


# -- following a bulk request (called by the tracker) -------------------------------------------------


class BulkOutcomeReporter:
    """Once Graph has resolved a bulk request (at activation), say what happened to each drive."""

    def __init__(self, settings: Settings, graph: Any, ledger: Ledger, publisher: Any) -> None:
        self.settings = settings
        self.graph = graph
        self.ledger = ledger
        self.publisher = publisher

    async def report(self, request_id: str, index: int, session_id: str, incident_id: str | None) -> bool:
        """Publish `restore.bulk.completed` once the bulk request is settled. True when reported."""
        row = await bulk_step(self.ledger, request_id, index)
        if row is None or row.outcome_reported or not row.bulk_id:
            return bool(row and row.outcome_reported)
        bulk = await self.graph.get_bulk_addition(session_id, row.bulk_id)
        status = str(bulk.get("status") or "")
        if status not in ("completed", "completedWithErrors"):
            return False
        artifacts = await self.graph.all_session_artifacts(session_id)
        drives = await SelectionResolver(self.settings, self.graph, self.ledger)._load_identities(request_id)
        outcomes = bulk_outcomes(drives, artifacts)
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        data: dict[str, Any] = {
            "requestId": request_id, "incidentId": incident_id, "sessionId": session_id, "index": index,
            "strategy": "bulk", "bulkAdditionRequestId": row.bulk_id, "status": status,
            "error": bulk.get("error"), "driveCounts": counts, "drives": outcomes,
        }
        if len(json.dumps(data, separators=(",", ":"))) > self.settings.event_max_bytes:
            # Too large for one message: keep the drives that were not restored, count the rest.
            data["drives"] = [o for o in outcomes if o["status"] != "added"][:1000]
            data["drivesOmitted"] = True
        event = CloudEvent(id=f"{request_id}:bulk:{index}:completed", type="restore.bulk.completed",
                           subject=request_id, data=data, correlation_id=incident_id or request_id,
                           request_id=request_id, incident_id=incident_id, session_id=session_id)
        await self.publisher.publish([event])
        try:
            await self.ledger.bulk_steps.store.save(replace(row, outcome_reported=True, bulk_status=status))
        except Exception:  # the event id is deterministic: a repeat is dropped by duplicate detection
            log.warning("could not record the bulk outcome of %s; it may be published again", session_id)
        return True
