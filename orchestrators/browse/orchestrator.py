"""BrowseOrchestrator: one Graph browse session per restore point of a browse request, reported as events.

Guarantees, in the order they are earned:
- every message ends in events that say what happened: `browse.request.rejected`, or for each restore point
  `browse.session.created` or `browse.session.failed`;
- a restore point of a request gets at most one browse session: its ledger row is marked `creating` before
  the Graph call and `created` with Graph's id right after, and a row found `creating` on a later attempt is
  matched against Graph's recent browse sessions before anything is created again;
- Graph's `creating -> created | failed` is followed by polling, briefly within the invocation and then by
  scheduled copies of the message, and transient failures come back the same way; both are bounded by
  RETRY_MAX_ATTEMPTS, after which what remains is reported failed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from orchestrators.adapters.graph import BrowseSessionInfo, RestorePointIdentity, parse_graph_time
from orchestrators.adapters.tables.ledger import Ledger
from orchestrators.browse.records import BrowseRecord
from orchestrators.contracts import (
    BrowseRequest,
    CloudEvent,
    best_effort_incident_id,
    best_effort_request_id,
    decode_body,
    parse_browse_request,
    rejected_event,
)
from orchestrators.kernel import tracing
from orchestrators.kernel.clock import SYSTEM_CLOCK, Clock
from orchestrators.kernel.errors import Contended, FieldError, GraphError, GraphRefused, Rejected, RetryLater
from orchestrators.kernel.last_resort import is_transient, unprocessable_event
from orchestrators.kernel.messages import InboundMessage
from orchestrators.kernel.retries import Scheduler, backoff_seconds, schedule_next_attempt
from orchestrators.kernel.settings import Settings
from orchestrators.kernel.step import LeaseHeld, StepState, done, failed, mark_all, new_owner, run_step, run_steps
from orchestrators.restore.orchestrator import Publisher

log = logging.getLogger(__name__)

#: Margin for clock differences between this worker and Graph when matching browse sessions.
CLOCK_SKEW = timedelta(minutes=5)
#: Longest time one invocation waits for sessions to leave `creating` (it holds the message lock meanwhile).
POLL_BUDGET_SECONDS = 20.0
POLL_FIRST_DELAY_SECONDS = 0.5
POLL_MAX_DELAY_SECONDS = 5.0
#: Service Bus refuses longer message ids, and the event id is the message id.
T = TypeVar("T")


class BrowseGraph(Protocol):
    async def create_browse_session(self, restore_point_id: str) -> BrowseSessionInfo: ...
    async def get_browse_session(self, session_id: str) -> BrowseSessionInfo: ...
    async def browse_sessions_since(self, since: datetime) -> list[BrowseSessionInfo]: ...
    async def restore_point_identity(self, restore_point_id: str) -> RestorePointIdentity | None: ...


@dataclass(frozen=True)
class BrowseOutcome:
    """What happened to one browse message (for logs and tests)."""

    kind: str  # rejected | settled | retry_scheduled | failed
    request_id: str
    events: tuple[CloudEvent, ...] = ()
    retry_at: datetime | None = None


class BrowseOrchestrator:
    def __init__(self, settings: Settings, graph: BrowseGraph, ledger: Ledger, publisher: Publisher,
                 scheduler: Scheduler, *, rng: random.Random | None = None,
                 poll_budget_seconds: float | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.graph = graph
        self.ledger = ledger
        self.publisher = publisher
        self.scheduler = scheduler
        self._rng = rng or random.Random()
        # Polling longer than the longest wait between scheduled attempts would only hold the lock.
        self.poll_budget = poll_budget_seconds if poll_budget_seconds is not None else min(
            POLL_BUDGET_SECONDS, settings.retry_max_delay_seconds)

    # -- entry point -----------------------------------------------------------------------------

    @tracing.in_invocation()
    async def handle(self, message: InboundMessage) -> BrowseOutcome:
        """Settle one browse message; an outage is raised (-> abandon, redelivery), any other failure is
        reported as a rejection and the message completed."""
        try:
            return await self._handle(message)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("browse message %s cannot be processed; reported and not retried", message.message_id)
            event = unprocessable_event("browse", message, exc)
            await self.publisher.publish([event])
            return BrowseOutcome("rejected", event.request_id, (event,))

    async def _handle(self, message: InboundMessage) -> BrowseOutcome:
        fallback_id = message.carried_request_id or message.message_id
        document: Any = None
        try:
            document = decode_body(message.body)
            request = parse_browse_request(document, fallback_id)
        except Rejected as rejected:
            return await self._reject(message, best_effort_request_id(document), rejected.errors, document)

        rows = await self.ledger.open_browse(request.request_id, request.restore_point_ids)
        published: set[str] = set()
        try:
            rows = await self._create_all(rows)
            await self._publish_settled(request, rows, published)
            rows = await self._follow(rows)
        except RetryLater as retry:
            return await self._retry_or_give_up(message, request, retry, published)
        except Contended:
            busy = GraphError(None, "Contended", "another worker is handling this browse request")
            return await self._retry_or_give_up(message, request, RetryLater(busy, after=30.0), published)

        events = await self._publish_settled(request, rows, published)
        creating = [r for r in rows if not r.settled]
        if creating:
            still = GraphError(None, "BrowseSessionStillCreating",
                               f"{len(creating)} browse session(s) still `creating` in Graph")
            return await self._retry_or_give_up(message, request, RetryLater(still), published)
        log.info("browse request %s settled: %d restore points", request.request_id, len(rows))
        return BrowseOutcome("settled", request.request_id, tuple(events))

    async def _reject(self, message: InboundMessage, request_id: str | None, errors: list[FieldError],
                      document: Any) -> BrowseOutcome:
        key = request_id or message.carried_request_id or message.message_id or "unknown"
        incident = best_effort_incident_id(document)
        event = rejected_event("browse", key, request_id, incident, errors, message.body)
        await self.publisher.publish([event])
        log.warning("browse request %s rejected: %s", key, "; ".join(e.message for e in errors[:3]))
        return BrowseOutcome("rejected", key, (event,))

    # -- creating sessions -----------------------------------------------------------------------

    async def _create_all(self, rows: list[BrowseRecord]) -> list[BrowseRecord]:
        """Create a browse session per restore point not yet settled, each through the one idempotent step."""
        actions = BrowseCreation(self.graph, {r.session_id for r in rows if r.session_id})
        gate = asyncio.Semaphore(self.settings.graph_create_concurrency)
        owner = new_owner()
        store = self.ledger.browse_rows

        async def create(row: BrowseRecord) -> BrowseRecord:
            if row.state in (StepState.DONE, StepState.FAILED):
                return row
            async with gate:
                return await run_step(row, actions, store, owner=owner, clock=self.clock,
                                      policy=self.settings.step_policy)

        rows = await mark_all(rows, store, owner=owner, clock=self.clock, policy=self.settings.step_policy)
        results = await run_steps(rows, create, store.reload, clock=self.clock,
                                  wait_budget=timedelta(seconds=self.settings.step_wait_seconds))
        failures = [r for r in results if isinstance(r, BaseException)]
        unexpected = [f for f in failures if not isinstance(f, RetryLater | Contended | LeaseHeld)]
        if unexpected:
            raise unexpected[0]
        retries = [f for f in failures if isinstance(f, RetryLater)]
        if retries:
            raise max(retries, key=lambda r: r.after or 0.0)
        held = [f for f in failures if isinstance(f, LeaseHeld)]
        if held:
            until = max(h.until for h in held)
            raise RetryLater(GraphError(None, "HeldByAnotherWorker",
                                        f"{len(held)} browse session(s) are being created by another worker"),
                             after=max(1.0, (until - self.clock.now()).total_seconds()))
        if failures:
            raise failures[0]
        return [r for r in results if isinstance(r, BrowseRecord)]

    # -- following creating -> created | failed ----------------------------------------------------

    async def _follow(self, rows: list[BrowseRecord]) -> list[BrowseRecord]:
        """Poll the sessions still `creating`, with backoff, for at most the invocation's budget."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_budget
        delay = POLL_FIRST_DELAY_SECONDS
        rows = list(rows)
        while True:
            waiting = [i for i, r in enumerate(rows) if r.state == StepState.DONE and not r.settled]
            remaining = deadline - loop.time()
            if not waiting or remaining <= 0:
                return rows
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, POLL_MAX_DELAY_SECONDS)
            results = await _bounded(self.settings.graph_create_concurrency, [self._refresh(rows[i]) for i in waiting])
            for i, result in zip(waiting, results, strict=True):
                if isinstance(result, BaseException):
                    raise result
                rows[i] = result

    async def _refresh(self, row: BrowseRecord) -> BrowseRecord:
        assert row.session_id
        try:
            session = await self.graph.get_browse_session(row.session_id)
        except GraphRefused as refused:  # e.g. 404 BrowseSessionNotFound: gone before it was ready
            return await self.ledger.browse_rows.save(failed(replace(row, error=refused.error.to_json())))
        if session.status == row.session_status:
            return row
        row = row.with_session(session)
        if session.status in ("creating", "created"):
            return await self.ledger.browse_rows.save(row)
        error = session.error or {}
        return await self.ledger.browse_rows.save(failed(replace(row, error=GraphError(
            None, str(error.get("code") or "BrowseSessionFailed"),
            str(error.get("message") or f"Graph reports the browse session as {session.status!r}"),
        ).to_json())))

    # -- retries ---------------------------------------------------------------------------------

    async def _retry_or_give_up(self, message: InboundMessage, request: BrowseRequest, retry: RetryLater,
                                published: set[str]) -> BrowseOutcome:
        wanted = set(request.restore_point_ids)
        rows = [r for r in await self.ledger.load_browse(request.request_id) if r.restore_point_id in wanted]
        attempt = message.attempt
        if attempt >= self.settings.retry_max_attempts:
            rows = [r if r.settled else await self._give_up(r, retry.error, attempt) for r in rows]
            events = await self._publish_settled(request, rows, published)
            log.error("browse request %s: gave up after %d attempts: %s", request.request_id, attempt, retry)
            return BrowseOutcome("failed", request.request_id, tuple(events))

        delay = backoff_seconds(self.settings, attempt, retry.after, self._rng)
        when = await schedule_next_attempt(self.scheduler, message, request.request_id, delay)
        events = await self._publish_settled(request, rows, published)
        log.warning("browse request %s: %s; attempt %d scheduled for %s", request.request_id, retry,
                    attempt + 1, when.isoformat())
        return BrowseOutcome("retry_scheduled", request.request_id, tuple(events), when)

    async def _give_up(self, row: BrowseRecord, last: GraphError, attempts: int) -> BrowseRecord:
        if row.session_id and row.session_status == "creating":
            detail = f"browse session {row.session_id} was still `creating` in Graph"
            code = "BrowseSessionStillCreating"
        else:
            detail = f"the last error was {last.status} {last.code}: {last.message}"
            code = last.code
        error = GraphError(last.status, code, f"gave up after {attempts} attempts (RETRY_MAX_ATTEMPTS); {detail}",
                           last.graph_request_id).to_json()
        return await self.ledger.browse_rows.save(failed(replace(row, error={**error, "retryBudgetExhausted": True})))

    # -- events ----------------------------------------------------------------------------------

    async def _publish_settled(self, request: BrowseRequest, rows: Sequence[BrowseRecord],
                               published: set[str]) -> list[CloudEvent]:
        """Publish the events of rows settled since the last call (re-publishing is harmless: same ids)."""
        events = [e for e in (self._event(request, r) for r in rows) if e is not None and e.id not in published]
        if events:
            await self.publisher.publish(events)
            published.update(e.id for e in events)
        return events

    def _event(self, request: BrowseRequest, row: BrowseRecord) -> CloudEvent | None:
        key = f"{request.request_id}:browse:{row.restore_point_id}"
        if row.state == StepState.DONE and row.session_status == "created":
            return browse_event(request, "browse.session.created", key, {
                "browseSessionId": row.session_id,
                "restorePointId": row.restore_point_id,
                "status": row.session_status,
                "createdDateTime": row.created_date_time,
                "expirationDateTime": row.expiration_date_time,
                "restorePointDateTime": row.restore_point_date_time,
                "backupSizeInBytes": row.backup_size_in_bytes,
                "directoryObjectId": row.directory_object_id,
            }, session_id=row.session_id)
        if row.state == StepState.FAILED:
            data: dict[str, Any] = {"restorePointId": row.restore_point_id, "error": row.error}
            if row.session_id:
                data["browseSessionId"] = row.session_id
            return browse_event(request, "browse.session.failed", f"{key}:failed", data, session_id=row.session_id)
        return None


class BrowseCreation:
    """The act and the reconcile of a restore point's step: create its browse session; find one made earlier."""

    def __init__(self, graph: Any, known: set[str]) -> None:
        self.graph = graph
        self.known = known

    async def act(self, row: BrowseRecord) -> BrowseRecord:
        try:
            session = await self.graph.create_browse_session(row.restore_point_id)
        except GraphRefused as refused:
            log.warning("browse request %s: Graph refused a browse session for %s: %s", row.request_id,
                        row.restore_point_id, refused)
            return failed(replace(row, error=refused.error.to_json()))
        self.known.add(session.session_id)
        return done(replace(row, session_id=session.session_id).with_session(session))

    async def reconcile(self, row: BrowseRecord) -> BrowseRecord | None:
        """Adopt the browse session an earlier attempt created but could not record.

        Graph's browse session reads do not document `restorePointId` (only the create request has it); they
        name the drive (`directoryObjectId`) and the restore point's time (`restorePointDateTime`), which
        together identify a restore point. So a listed session created since the `creating` mark (less the
        clock margin) is ours if it names our restore point, or else if it has the drive and time of ours.
        The restore point is looked up only here, once: what was learned is kept with the next mark.
        """
        since = (row.creating_since or datetime.now(UTC)) - CLOCK_SKEW
        listed = [s for s in await self.graph.browse_sessions_since(since) if s.session_id not in self.known]
        candidates = [s for s in listed if s.restore_point_id == row.restore_point_id]
        unnamed = [s for s in listed if not s.restore_point_id]
        if not candidates and unnamed:
            if not row.point_known:
                identity = await self.graph.restore_point_identity(row.restore_point_id)
                row = replace(row, point_known=True,
                              point_date_time=identity.protection_date_time if identity else None,
                              point_directory_object_id=identity.directory_object_id if identity else None)
            candidates = [s for s in unnamed if _same_restore_point(s, row)]
        if not candidates:
            return row
        adopted = min(candidates, key=_created_at)
        self.known.add(adopted.session_id)
        log.warning("browse request %s: adopted browse session %s for %s, created by an earlier attempt",
                    row.request_id, adopted.session_id, row.restore_point_id)
        return done(replace(row, session_id=adopted.session_id).with_session(adopted))


def _same_restore_point(session: BrowseSessionInfo, row: BrowseRecord) -> bool:
    """The session is on the row's drive at the row's restore point time (times compared as instants)."""
    drive, when = row.point_directory_object_id, parse_graph_time(row.point_date_time)
    if not drive or when is None or not session.directory_object_id:
        return False
    return (session.directory_object_id.lower() == drive.lower()
            and parse_graph_time(session.restore_point_date_time) == when)


def _created_at(session: BrowseSessionInfo) -> datetime:
    return parse_graph_time(session.created_date_time) or datetime.max.replace(tzinfo=UTC)


def browse_event(request: BrowseRequest, event_type: str, event_id: str, data: dict[str, Any],
                 session_id: str | None = None) -> CloudEvent:
    base: dict[str, Any] = {"requestId": request.request_id, "incidentId": request.incident_id}
    base.update(data)
    return CloudEvent(
        id=event_id, type=event_type, subject=request.request_id, data=base,
        correlation_id=request.correlation_id, request_id=request.request_id,
        incident_id=request.incident_id, session_id=session_id,
    )


async def _bounded(limit: int, calls: Sequence[Awaitable[T]]) -> list[T | BaseException]:
    gate = asyncio.Semaphore(limit)

    async def run(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(run(c) for c in calls), return_exceptions=True))
