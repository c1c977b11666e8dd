"""RestoreOrchestrator: validate -> plan -> ledger -> Graph -> events.

Guarantees, in the order they are earned:
- every message ends in events that say what happened (rejected, planned, created/failed + accepted,
  or failed after the retry budget);
- a planned batch gets at most one Graph session: a batch is marked `creating` before the call and
  `created` with Graph's id right after, and a batch found `creating` on a later attempt is matched
  against the app's recent draft sessions before anything is created again;
- transient failures come back as a scheduled copy of the message, never as a tight loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from orchestrators.adapters.tables.ledger import Ledger, PayloadConflict
from orchestrators.contracts import (
    CloudEvent,
    RestoreRequest,
    ValidationPolicy,
    best_effort_incident_id,
    best_effort_request_id,
    decode_body,
    parse_restore_request,
    rejected_event,
    request_event,
)
from orchestrators.kernel import tracing
from orchestrators.kernel.clock import SYSTEM_CLOCK, Clock
from orchestrators.kernel.errors import (
    ARTIFACT_CODES,
    Contended,
    FieldError,
    GraphError,
    GraphRefused,
    Rejected,
    RetryLater,
    redact,
)
from orchestrators.kernel.last_resort import is_transient, unprocessable_event
from orchestrators.kernel.messages import InboundMessage
from orchestrators.kernel.retries import Scheduler, backoff_seconds, schedule_next_attempt
from orchestrators.kernel.settings import Settings
from orchestrators.kernel.step import (
    LeaseHeld,
    StepState,
    again,
    done,
    failed,
    mark_all,
    new_owner,
    run_step,
    run_steps,
)
from orchestrators.restore.planner import SessionPlan, plan_sessions
from orchestrators.restore.records import BatchRecord

if TYPE_CHECKING:
    from orchestrators.activation.coordinator import ActivationCoordinator

log = logging.getLogger(__name__)

#: Batches marked in one write (a Table transaction holds at most 100 rows).
MARK_CHUNK = 100

#: Margin for clock differences between this worker and Graph when matching draft sessions.
CLOCK_SKEW = timedelta(minutes=5)


class Publisher(Protocol):
    async def publish(self, events: Sequence[CloudEvent]) -> None: ...


class Graph(Protocol):
    async def create_restore_session(self, destination_type: str, restore_point_ids: Sequence[str]) -> Any: ...
    async def draft_sessions_since(self, since: datetime) -> list[Any]: ...
    async def session_restore_point_ids(self, session_id: str) -> set[str] | None: ...
    async def check_restore_point(self, restore_point_id: str) -> Any: ...


@dataclass(frozen=True)
class Outcome:
    """What happened to one message (for logs, the CLI and tests)."""

    kind: str  # rejected | planned | accepted | retry_scheduled | failed
    request_id: str
    events: tuple[CloudEvent, ...] = ()
    retry_at: datetime | None = None


class RestoreOrchestrator:
    def __init__(self, settings: Settings, graph: Graph, ledger: Ledger, publisher: Publisher,
                 scheduler: Scheduler, *, activation: ActivationCoordinator | None = None,
                 rng: random.Random | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.graph = graph
        self.ledger = ledger
        self.publisher = publisher
        self.scheduler = scheduler
        self.activation = activation
        self._rng = rng or random.Random()
        self.policy = ValidationPolicy(settings.max_artifacts_per_request, settings.allowed_destination_types,
                                       activation_supported=activation is not None)
        self._graph_gate = asyncio.Semaphore(settings.graph_create_concurrency)

    # -- entry point -----------------------------------------------------------------------------

    @tracing.in_invocation()
    async def handle(self, message: InboundMessage) -> Outcome:
        """Settle one message; an unexpected failure is raised (-> abandon, redelivery) and, on the
        last delivery before Service Bus dead-letters the message, reported as `restore.request.failed`."""
        try:
            return await self._handle(message)
        except Exception as exc:
            if not is_transient(exc):
                log.exception("restore message %s cannot be processed; reported and not retried", message.message_id)
                event = unprocessable_event("restore", message, exc)
                await self.publisher.publish([event])
                return Outcome("failed", event.request_id, (event,))
            if message.delivery_count >= self.settings.max_delivery_count:
                await self._report_last_delivery(message, exc)
            raise

    async def _report_last_delivery(self, message: InboundMessage, exc: Exception) -> None:
        request_id = message.carried_request_id or message.message_id or "unknown"
        try:
            request_id = best_effort_request_id(decode_body(message.body)) or request_id
        except Rejected:
            pass
        data = {
            "requestId": request_id,
            "attempts": message.attempt,
            "deliveryCount": message.delivery_count,
            "lastError": {"status": None, "code": "InternalError",
                          "message": redact(f"{type(exc).__name__}: {exc}")[:1000], "graphRequestId": None},
            "deadLettered": True,
            "hint": "the message is being dead-lettered; resubmit it once the cause is fixed (the ledger "
                    "keeps what was done, so nothing is created twice)",
        }
        event = CloudEvent(id=f"{request_id}:failed:{message.attempt}", type="restore.request.failed",
                           subject=request_id, data=data, correlation_id=message.correlation_id or request_id,
                           request_id=request_id)
        try:
            await self.publisher.publish([event])
        except Exception:  # the publisher may be what is broken; the dead-letter queue still holds the message
            log.exception("could not report the failure of request %s", request_id)

    async def _handle(self, message: InboundMessage) -> Outcome:
        fallback_id = message.carried_request_id or message.message_id
        document: Any = None
        try:
            document = decode_body(message.body)
            request = parse_restore_request(document, fallback_id, self.policy)
        except Rejected as rejected:
            return await self._reject(message, best_effort_request_id(document), rejected.errors, document)

        if request.selection is not None:
            return await self._handle_selection(message, request, document)
        plans = plan_sessions(request.artifacts, self.settings.max_artifacts_per_session)
        if request.dry_run:
            event = self._planned_event(request, plans)
            await self.publisher.publish([event])
            return Outcome("planned", request.request_id, (event,))

        try:
            batches = await self.ledger.open_request(request, plans)
        except PayloadConflict:
            errors = [FieldError("requestId", f"requestId {request.request_id!r} was already used for a "
                                              "different request; use a new requestId for new work")]
            return await self._reject(message, request.request_id, errors, document, conflict=True)

        try:
            batches = await self._settle_all(request, batches)
        except RetryLater as retry:
            return await self._retry_or_give_up(message, request, retry)

        awaiting = await self._awaiting_approval(request, batches)
        events = [*self._session_events(request, batches, awaiting=awaiting),
                  self._accepted_event(request, batches, awaiting=awaiting)]
        await self.publisher.publish(events)
        await self.ledger.set_request_state(request.request_id, "accepted")
        log.info("request %s accepted: %d sessions", request.request_id, len(batches))
        if self.activation is not None:
            await self._hand_over_for_activation(request, batches)
        return Outcome("accepted", request.request_id, tuple(events))

    async def _handle_selection(self, message: InboundMessage, request: RestoreRequest, document: Any) -> Outcome:
        """Restore by point in time: resolve (or load the recorded resolution), then the standard pipeline
        with the resolved restore points, or the bulk path."""
        from orchestrators.selection.resolver import BulkRestorer, SelectionResolver

        resolver = SelectionResolver(self.settings, self.graph, self.ledger)
        if request.dry_run:
            try:
                resolution = await resolver.resolve(request, record=False, search=True)
            except (RetryLater, GraphRefused) as failure:
                return await self._selection_failed(message, request, failure)
            resolved = replace(request, artifacts=resolution.artifacts(request.destination_type))
            plans = plan_sessions(resolved.artifacts, self.settings.max_artifacts_per_session)
            if resolution.strategy == "bulk" and resolved.artifacts:
                # One bulk session; the restore points are the ones Graph is expected to pick.
                points = tuple(a.restore_point_id for a in resolved.artifacts)
                plans = [SessionPlan(0, request.destination_type, points)]
            summary = {**resolution.summary(), "drives": [d.to_json() for d in resolution.drives]}
            event = self._planned_event(resolved, plans, summary)
            await self.publisher.publish([event])
            return Outcome("planned", request.request_id, (event,))
        try:
            await self.ledger.open_request(request, [])
        except PayloadConflict:
            errors = [FieldError("requestId", f"requestId {request.request_id!r} was already used for a "
                                              "different request; use a new requestId for new work")]
            return await self._reject(message, request.request_id, errors, document, conflict=True)
        try:
            resolution = await resolver.resolve(request, record=True)
            request = replace(request, artifacts=resolution.artifacts(request.destination_type))
            if resolution.strategy == "bulk":
                batches = await BulkRestorer(self.settings, self.graph, self.ledger).settle(request, resolution)
            else:
                plans = plan_sessions(request.artifacts, self.settings.max_artifacts_per_session)
                batches = await self._settle_all(request, await self.ledger.open_request(request, plans))
        except Contended:
            return await self._retry_or_give_up(message, request, RetryLater(
                GraphError(None, "Contended", "another worker is handling this request"), after=30.0))
        except RetryLater as retry:
            return await self._retry_or_give_up(message, request, retry)
        except GraphRefused as refused:
            return await self._selection_failed(message, request, refused)
        summary = resolution.summary()
        session_extra: dict[str, Any] = {"strategy": resolution.strategy}
        if resolution.strategy == "bulk":
            session_extra["driveCount"] = sum(1 for d in resolution.drives if d.restorable)
            from orchestrators.selection.resolver import bulk_step

            step = await bulk_step(self.ledger, request.request_id, 0)
            if step is not None and step.bulk_id:
                session_extra["bulkAdditionRequestId"] = step.bulk_id
        awaiting = await self._awaiting_approval(request, batches)
        events = [*self._session_events(request, batches, session_extra, awaiting=awaiting),
                  self._accepted_event(request, batches, summary, awaiting=awaiting)]
        await self.publisher.publish(events)
        await self.ledger.set_request_state(request.request_id, "accepted")
        log.info("request %s accepted (%s): %d sessions, %d drives unresolved", request.request_id,
                 resolution.strategy, len(batches), len(resolution.unresolved))
        if self.activation is not None:
            await self._hand_over_for_activation(request, batches)
        return Outcome("accepted", request.request_id, tuple(events))

    async def _selection_failed(self, message: InboundMessage, request: RestoreRequest,
                                failure: RetryLater | GraphRefused) -> Outcome:
        """Graph refused to resolve the selection (permissions, a malformed id): say so and stop."""
        if isinstance(failure, RetryLater) and not request.dry_run:
            return await self._retry_or_give_up(message, request, failure)
        event = self._failed_event(request, [], failure.error, message.attempt)
        await self.publisher.publish([event])
        if not request.dry_run:
            await self.ledger.set_request_state(request.request_id, "failed")
        return Outcome("failed", request.request_id, (event,))

    async def _hand_over_for_activation(self, request: RestoreRequest, batches: list[BatchRecord]) -> None:
        """Track every created session; queue them for activation if asked (now or by an earlier approval)."""
        assert self.activation is not None
        if not any(b.session_id for b in batches):
            # Nothing to follow: the request is complete now, and the automation waiting for it is told so.
            from orchestrators.tracking.tracker import SessionTracker

            await SessionTracker(self.settings, self.activation.graph, self.ledger, self.activation.store,
                                 self.activation, self.publisher).complete_request_if_done(request.request_id)
            return
        tracked = await self.activation.track_created(request.request_id, batches, request.incident_id)
        record = await self.ledger.get_request(request.request_id)
        approved = record is not None and record.activation_requested
        if request.activate or approved:
            # An activation request for the whole request approves everything; `activate: true` alone does not
            # approve in-place sessions while IN_PLACE_REQUIRES_APPROVAL is on: they stay drafts.
            held = set() if approved else self._held_for_approval(request, batches)
            if held:
                log.info("request %s: %d in-place session(s) left as drafts until an activation request "
                         "names them or the request", request.request_id, len(held))
            requested_at = (record.received_at if record else None) or datetime.now(UTC)
            await self.activation.queue([t for t in tracked if t.session_id not in held], requested_at)
            await self.activation.fill_slots()

    def _held_for_approval(self, request: RestoreRequest, batches: Sequence[BatchRecord]) -> set[str]:
        """The sessions `activate: true` does not activate: in-place ones, when the policy asks for approval."""
        if not (request.activate and self.settings.in_place_requires_approval):
            return set()
        return {b.session_id for b in batches if b.session_id and b.destination_type == "inPlace"}

    async def _awaiting_approval(self, request: RestoreRequest, batches: Sequence[BatchRecord]) -> set[str]:
        """Sessions held for approval, unless an activation request has already approved the request."""
        held = self._held_for_approval(request, batches)
        if held:
            record = await self.ledger.get_request(request.request_id)
            if record is not None and record.activation_requested:
                return set()
        return held

    # -- rejection -------------------------------------------------------------------------------

    async def _reject(self, message: InboundMessage, request_id: str | None, errors: list[FieldError],
                      document: Any, conflict: bool = False) -> Outcome:
        key = request_id or message.carried_request_id or message.message_id or "unknown"
        incident = best_effort_incident_id(document)
        if conflict and message.message_id:
            # The requestId's own ids belong to the original request; this message answers for itself.
            key = message.message_id
        event = rejected_event("restore", key, request_id, incident, errors, message.body)
        await self.publisher.publish([event])
        log.warning("request %s rejected: %s", key, "; ".join(e.message for e in errors[:3]))
        return Outcome("rejected", key, (event,))

    # -- creating sessions -----------------------------------------------------------------------

    async def _settle_all(self, request: RestoreRequest, batches: list[BatchRecord]) -> list[BatchRecord]:
        """Create every batch not yet settled, each through the one idempotent step.

        Graph calls are bounded by GRAPH_CREATE_CONCURRENCY; ledger writes of other batches overlap with
        them, and at most twice that many batches are in flight, so a crash leaves few rows marked. A batch
        another worker holds (its lease live) is waited for, within STEP_WAIT_SECONDS.
        """
        self._graph_gate = asyncio.Semaphore(self.settings.graph_create_concurrency)
        batch_gate = asyncio.Semaphore(2 * self.settings.graph_create_concurrency)
        actions = BatchCreation(self, {b.session_id for b in batches if b.session_id},
                                _DraftCache(self.graph, min((b.creating_since for b in batches
                                                             if b.state == StepState.ACTING and b.creating_since),
                                                            default=None),
                                            max_listings=self.settings.reconcile_max_listings))
        owner = new_owner()

        async def settle(batch: BatchRecord) -> BatchRecord:
            if batch.settled:
                return batch
            async with batch_gate:
                return await run_step(batch, actions, self.ledger.batches, owner=owner, clock=self.clock,
                                      policy=self.settings.step_policy)

        results: list[BatchRecord | BaseException] = []
        for start in range(0, len(batches), MARK_CHUNK):
            # Marked a hundred at a time (one Table transaction), each chunk just before its creates start.
            chunk = await mark_all(batches[start:start + MARK_CHUNK], self.ledger.batches, owner=owner,
                                   clock=self.clock, policy=self.settings.step_policy)
            results += await run_steps(chunk, settle, self.ledger.batches.reload, clock=self.clock,
                                       wait_budget=timedelta(seconds=self.settings.step_wait_seconds))
        retries = [r for r in results if isinstance(r, RetryLater)]
        held = [r for r in results if isinstance(r, LeaseHeld)]
        contended = [r for r in results if isinstance(r, Contended)]
        unexpected = [r for r in results if isinstance(r, BaseException)
                      and not isinstance(r, RetryLater | Contended | LeaseHeld)]
        if unexpected:
            raise unexpected[0]
        if retries:
            raise max(retries, key=lambda r: r.after or 0.0)
        if held:
            until = max(h.until for h in held)
            raise RetryLater(GraphError(None, "HeldByAnotherWorker",
                                        f"{len(held)} batch(es) are being created by another worker"),
                             after=max(1.0, (until - self.clock.now()).total_seconds()))
        if contended:
            raise RetryLater(GraphError(None, "Contended", "another worker is handling this request"),
                             after=30.0)
        return [r for r in results if isinstance(r, BatchRecord)]

    # -- retries ---------------------------------------------------------------------------------

    async def _retry_or_give_up(self, message: InboundMessage, request: RestoreRequest,
                                retry: RetryLater) -> Outcome:
        batches = await self.ledger.load_batches(request.request_id)
        settled = [b for b in batches if b.settled]
        settled_events = self._session_events(request, settled,
                                              awaiting=await self._awaiting_approval(request, settled))
        attempt = message.attempt
        if attempt >= self.settings.retry_max_attempts:
            failed = self._failed_event(request, batches, retry.error, attempt)
            await self.publisher.publish([*settled_events, failed])
            await self.ledger.set_request_state(request.request_id, "failed")
            log.error("request %s failed after %d attempts: %s", request.request_id, attempt, retry)
            return Outcome("failed", request.request_id, (*settled_events, failed))

        delay = backoff_seconds(self.settings, attempt, retry.after, self._rng)
        when = await schedule_next_attempt(self.scheduler, message, request.request_id, delay)
        if settled_events:
            await self.publisher.publish(settled_events)
        log.warning("request %s: %s; attempt %d scheduled for %s", request.request_id, retry, attempt + 1,
                    when.isoformat())
        return Outcome("retry_scheduled", request.request_id, tuple(settled_events), when)

    # -- events ----------------------------------------------------------------------------------

    def _planned_event(self, request: RestoreRequest, plans: list[SessionPlan],
                       extra: dict[str, Any] | None = None) -> CloudEvent:
        sessions: list[dict[str, Any]] = [p.to_json() for p in plans]
        data: dict[str, Any] = {
            "sessions": sessions,
            "sessionCount": len(plans),
            "artifactCount": sum(len(p.restore_point_ids) for p in plans),
            "activate": request.activate,
            **(extra or {}),
        }
        event = request_event(request, "restore.request.planned", f"{request.request_id}:planned", data)
        if extra and "drives" in extra and _size(event) > self.settings.event_max_bytes:
            # A selection of thousands of drives: list the ones that cannot be restored, count the rest.
            data["drives"] = [d for d in extra["drives"] if "reason" in d][:1000]
            data["drivesOmitted"] = True
            event = request_event(request, "restore.request.planned", f"{request.request_id}:planned", data)
        if _size(event) > self.settings.event_max_bytes:
            # Too large for one Service Bus message: keep the shape, list counts instead of every id.
            data["sessions"] = [{"index": p.index, "destinationType": p.destination_type,
                                 "restorePointCount": len(p.restore_point_ids),
                                 "firstRestorePointId": p.restore_point_ids[0],
                                 "lastRestorePointId": p.restore_point_ids[-1]} for p in plans]
            data["restorePointIdsOmitted"] = True
            event = request_event(request, "restore.request.planned", f"{request.request_id}:planned", data)
        return event

    def _session_events(self, request: RestoreRequest, batches: Sequence[BatchRecord],
                        extra: dict[str, Any] | None = None, *,
                        awaiting: set[str] | frozenset[str] = frozenset()) -> list[CloudEvent]:
        count = len(batches) if batches else 0
        total = max(count, max((b.index + 1 for b in batches), default=0))
        events: list[CloudEvent] = []
        for batch in batches:
            if batch.excluded or batch.state == "failed":  # a bulk batch fails with no restore points of its own
                events.append(request_event(
                    request, "restore.session.failed", f"{request.request_id}:session:{batch.index}:failed",
                    {
                        "index": batch.index,
                        "destinationType": batch.destination_type,
                        "restorePointIds": [e["restorePointId"] for e in batch.excluded],
                        "error": batch.error,
                        "failures": list(batch.excluded),
                    },
                ))
            if batch.state == "created" and batch.session_id:
                events.append(request_event(
                    request, "restore.session.created", f"{request.request_id}:session:{batch.index}",
                    {
                        "sessionId": batch.session_id,
                        "index": batch.index,
                        "sessionCount": total,
                        "destinationType": batch.destination_type,
                        "restorePointIds": list(batch.remaining_points),
                        "status": batch.session_status or "draft",
                        "createdDateTime": batch.created_date_time,
                        **({"awaitingApproval": True} if batch.session_id in awaiting else {}),
                        **(extra or {}),
                    },
                    session_id=batch.session_id,
                ))
        return events

    def _accepted_event(self, request: RestoreRequest, batches: Sequence[BatchRecord],
                        extra: dict[str, Any] | None = None, *,
                        awaiting: set[str] | frozenset[str] = frozenset()) -> CloudEvent:
        sessions: list[dict[str, Any]] = []
        for b in batches:
            entry: dict[str, Any] = {"index": b.index}
            if b.session_id:
                entry["sessionId"] = b.session_id
            if b.error:
                entry["error"] = b.error
            if b.excluded:
                entry["failedRestorePointIds"] = [e["restorePointId"] for e in b.excluded]
            sessions.append(entry)
        created = [b for b in batches if b.session_id]
        data = {
            "sessions": sessions,
            "sessionCount": len(batches),
            "createdSessionCount": len(created),
            "failedSessionCount": sum(1 for b in batches if b.state == "failed"),
            "artifactCount": sum(len(b.restore_point_ids) for b in batches),
            "restoringArtifactCount": sum(len(b.remaining_points) for b in created),
            "failedArtifactCount": sum(len(b.excluded) for b in batches)
            + sum(len(b.remaining_points) for b in batches if b.state == "failed" and not b.excluded),
            "activate": request.activate,
            "awaitingApproval": [b.session_id for b in batches if b.session_id and b.session_id in awaiting],
            **(extra or {}),
        }
        return request_event(request, "restore.request.accepted", f"{request.request_id}:accepted", data)

    def _failed_event(self, request: RestoreRequest, batches: Sequence[BatchRecord], error: GraphError,
                      attempt: int) -> CloudEvent:
        data = {
            "attempts": attempt,
            "lastError": error.to_json(),
            "done": [{"index": b.index, "sessionId": b.session_id} for b in batches if b.session_id],
            "failed": [{"index": b.index, "error": b.error} for b in batches if b.state == "failed"],
            "remaining": [{"index": b.index, "destinationType": b.destination_type,
                           "restorePointIds": list(b.remaining_points), "state": b.state}
                          for b in batches if not b.settled],
        }
        return request_event(request, "restore.request.failed", f"{request.request_id}:failed:{attempt}", data)


def _size(event: CloudEvent) -> int:
    import json

    return len(json.dumps(event.to_document(), separators=(",", ":")).encode())


class BatchCreation:
    """The act and the reconcile of a batch's step: create its restore session; find one an attempt made."""

    def __init__(self, orchestrator: RestoreOrchestrator, known_sessions: set[str], drafts: _DraftCache) -> None:
        self.graph = orchestrator.graph
        self.gate = orchestrator._graph_gate
        self.known_sessions = known_sessions
        self.drafts = drafts

    async def act(self, batch: BatchRecord) -> BatchRecord:
        points = batch.remaining_points
        try:
            async with self.gate:
                created = await self.graph.create_restore_session(batch.destination_type, points)
        except GraphRefused as refused:
            return await self._isolate(batch, points, refused.error)
        self.known_sessions.add(created.session_id)
        return done(replace(batch, session_id=created.session_id, session_status=created.status,
                            created_date_time=created.created_date_time))

    async def reconcile(self, batch: BatchRecord) -> BatchRecord | None:
        """Adopt a draft session an earlier attempt created but could not record.

        A candidate draft (created since the mark, same artifact count, our app when Graph says) is ours when
        its artifacts list exactly the batch's restore points. One whose artifacts do not all name their
        restore point cannot be told apart: rather than create a second session, the batch is retried later
        (if no other candidate matches), the way an unknown create outcome is.
        """
        points = set(batch.remaining_points)
        app_id = getattr(self.graph, "application_id", None)
        unknown: list[str] = []
        for draft in candidate_drafts(await self.drafts.sessions(), batch, len(points), self.known_sessions, app_id):
            listed = await self.drafts.restore_point_ids(draft.session_id)
            if listed is None:
                unknown.append(draft.session_id)
                continue
            if listed == points:
                self.known_sessions.add(draft.session_id)
                log.warning("batch %d of %s: adopted draft session %s created by an earlier attempt",
                            batch.index, batch.request_id, draft.session_id)
                created = draft.created_date_time.isoformat() if draft.created_date_time else None
                return done(replace(batch, session_id=draft.session_id, session_status="draft",
                                    created_date_time=created))
        if unknown:
            log.warning("batch %d of %s: draft session(s) %s list artifacts without a restore point; "
                        "not creating again until they can be compared", batch.index, batch.request_id,
                        ", ".join(unknown))
            raise RetryLater(GraphError(None, "ReconcileInconclusive",
                                        f"draft session(s) {', '.join(unknown)} may be this batch's: Graph "
                                        "listed artifacts without their restore point"), outcome_unknown=True)
        return None

    async def _isolate(self, batch: BatchRecord, points: tuple[str, ...], error: GraphError) -> BatchRecord:
        """Graph refused the batch: find the restore points to blame, and create the rest (a new round)."""
        if (error.code not in ARTIFACT_CODES and error.status != 400) or len(points) == 0:
            return failed(replace(batch, error=error.to_json(),
                                  excluded=batch.excluded + tuple(_blame(points, error.code))))
        checks = await _bounded(self.gate, [self.graph.check_restore_point(rp) for rp in points])
        bad = [{"restorePointId": c.restore_point_id, "code": c.reason or error.code} for c in checks
               if not c.usable]
        # Graph takes one restore point per OneDrive in a session: later points of the same drive go.
        drives_seen: set[str] = set()
        for check in checks:
            if not check.usable or not check.protection_unit_id:
                continue
            if check.protection_unit_id in drives_seen:
                bad.append({"restorePointId": check.restore_point_id, "code": "DuplicateArtifactInList",
                            "reason": f"another restore point of protection unit {check.protection_unit_id} "
                                      "is in this session"})
            drives_seen.add(check.protection_unit_id)
        if not bad or len(bad) == len(points):
            # Nothing to single out (or nothing left): the whole batch fails with Graph's answer.
            excluded = bad or _blame(points, error.code)
            return failed(replace(batch, error=error.to_json(), excluded=batch.excluded + tuple(excluded)))
        log.warning("batch %d of %s: %d restore points refused by Graph (%s); creating the other %d",
                    batch.index, batch.request_id, len(bad), error.code, len(points) - len(bad))
        return again(replace(batch, excluded=batch.excluded + tuple(bad), error=error.to_json()))


def candidate_drafts(drafts: Sequence[Any], batch: BatchRecord, artifact_count: int, known: set[str],
                     app_id: str | None) -> list[Any]:
    """The drafts that can be this batch's lost session, from what the session list already says: not a
    session this request recorded, by this app, holding as many artifacts as the batch, created between the
    batch's mark and the end of its lease (give or take the clock margin). Nearest the mark first, so the
    batches marked together find theirs in few listings."""
    since = batch.creating_since
    until = batch.lease_until

    def fits(draft: Any) -> bool:
        if draft.session_id in known:
            return False
        if draft.artifact_total is not None and draft.artifact_total != artifact_count:
            return False
        if app_id and draft.application_id and draft.application_id != app_id:
            return False
        created = draft.created_date_time
        if created is not None and since is not None and created < since - CLOCK_SKEW:
            return False
        return not (created is not None and until is not None and created > until + CLOCK_SKEW)

    far = datetime.max.replace(tzinfo=UTC)
    return sorted((d for d in drafts if fits(d)), key=lambda d: d.created_date_time or far)


def _blame(points: Sequence[str], code: str) -> list[dict[str, Any]]:
    return [{"restorePointId": rp, "code": code} for rp in points]


async def _bounded(gate: asyncio.Semaphore, calls: list[Any]) -> list[Any]:
    async def run(call: Any) -> Any:
        async with gate:
            return await call

    return list(await asyncio.gather(*(run(c) for c in calls)))


class _DraftCache:
    """The app's recent draft sessions, listed once per invocation however many batches need them, and their
    artifacts, listed at most once per session (concurrent batches share one listing) and at most
    `max_listings` times per invocation: a crash must not turn into thousands of calls under throttling."""

    def __init__(self, graph: Graph, since: datetime | None, max_listings: int = 200) -> None:
        self._graph = graph
        self._since = since
        self._sessions: list[Any] | None = None
        self._points: dict[str, asyncio.Task[set[str] | None]] = {}
        self._lock = asyncio.Lock()
        self.max_listings = max_listings
        self.calls = 0  # Graph calls made to reconcile (the session list counts one)

    async def sessions(self) -> list[Any]:
        async with self._lock:
            if self._sessions is None:
                since = (self._since or datetime.now(UTC)) - CLOCK_SKEW
                self._sessions = await self._graph.draft_sessions_since(since)
                self.calls += 1
            return self._sessions

    async def restore_point_ids(self, session_id: str) -> set[str] | None:
        task = self._points.get(session_id)
        if task is None:
            if len(self._points) >= self.max_listings:
                raise RetryLater(GraphError(None, "ReconcileBudgetExhausted",
                                            f"{len(self._points)} draft sessions compared without finding every "
                                            "batch's; comparing more later"), after=60.0, outcome_unknown=True)
            self.calls += 1
            task = self._points[session_id] = asyncio.ensure_future(self._graph.session_restore_point_ids(session_id))
        return await asyncio.shield(task)
