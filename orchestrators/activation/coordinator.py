"""Activation under Graph's cap on active restore sessions.

A created session restores nothing until it is activated, and a tenant may have only `MAX_ACTIVE_SESSIONS`
(25) sessions activating or active. Sessions waiting for a slot wait in the ledger's activation queue, in the
order activation was asked for; every worker takes slots by rewriting one ledger row under its ETag, so the
cap holds across instances. Sessions this service did not create also count in Graph; for those, Graph's
500 `TooManyActiveRestoreSessions` is the final word: the session goes back to its place in the queue and
admission pauses for a while.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrators.activation.decisions import Admission, admission_window, reserve_next
from orchestrators.activation.records import (
    ACTIVATED,
    QUEUED,
    RESERVED,
    TERMINAL_STATUSES,
    ActivationState,
    QueuedSession,
    Slots,
    TrackedSession,
    order_key,
)
from orchestrators.adapters.graph import GraphGateway, parse_graph_time
from orchestrators.adapters.tables.activation_store import ActivationLedger
from orchestrators.adapters.tables.ledger import Ledger
from orchestrators.adapters.tables.records import optimistic_update
from orchestrators.contracts import MAX_SESSION_IDS as MAX_SESSION_IDS  # re-exported: it moved to the contract
from orchestrators.contracts import ActivationRequest as ActivationRequest
from orchestrators.contracts import (
    CloudEvent,
    best_effort_request_id,
    decode_body,
    echo_body,
    parse_activation_request,
)
from orchestrators.kernel import tracing
from orchestrators.kernel.errors import Contended, FieldError, GraphError, GraphRefused, Rejected, RetryLater
from orchestrators.kernel.last_resort import is_transient, unprocessable_event
from orchestrators.kernel.messages import InboundMessage
from orchestrators.kernel.settings import Settings
from orchestrators.restore.records import BatchRecord

log = logging.getLogger(__name__)


class _Outcome:
    ACTIVATED = "activated"
    CAP_REACHED = "cap-reached"
    RETRY = "retry"
    UNKNOWN = "unknown"
    DROPPED = "dropped"


def session_event(event_type: str, event_id: str, request_id: str, session_id: str, data: dict[str, Any],
                  incident_id: str | None = None) -> CloudEvent:
    body = {"requestId": request_id, "sessionId": session_id, **data}
    return CloudEvent(id=event_id, type=event_type, subject=request_id, data=body,
                      correlation_id=incident_id or request_id, request_id=request_id, incident_id=incident_id,
                      session_id=session_id)


class ActivationCoordinator:
    """Queues sessions for activation and fills free slots, first requested first activated."""

    def __init__(self, settings: Settings, graph: GraphGateway, ledger: Ledger, store: ActivationLedger,
                 publisher: Any) -> None:
        self.settings = settings
        self.graph = graph
        self.ledger = ledger
        self.store = store
        self.publisher = publisher
        self.pause_after_cap = timedelta(seconds=settings.activation_backoff_seconds)

    # -- tracking and queueing --------------------------------------------------------------------

    async def track_created(self, request_id: str, batches: Sequence[BatchRecord],
                            incident_id: str | None = None) -> list[TrackedSession]:
        """Start tracking every created session of a request (idempotent)."""
        sessions = [TrackedSession(batch.session_id, request_id, batch.index, status=batch.session_status or "draft",
                                   created_at=parse_graph_time(batch.created_date_time) or datetime.now(UTC),
                                   incident_id=incident_id)
                    for batch in batches if batch.session_id]
        return await self.store.track_many(sessions)

    async def queue(self, sessions: Sequence[TrackedSession], requested_at: datetime) -> dict[str, list[str]]:
        """Put draft sessions in the activation queue, once each. Returns what happened to each session."""
        report: dict[str, list[str]] = {"queued": [], "alreadyQueued": [], "alreadyActivated": [], "notDraft": []}
        for session in sessions:
            def mark_queued(current: TrackedSession) -> TrackedSession | None:
                if current.activation in (ACTIVATED, RESERVED, QUEUED) or current.status != "draft":
                    return None
                key = current.queue_key or order_key(requested_at, current.request_id, current.index)
                return replace(current, activation=QUEUED, queue_key=key)

            before = session.activation
            session = await optimistic_update(self._reader(session), mark_queued, self.store.update_tracked,
                                              what=f"tracking row of {session.session_id}", attempts=5)
            if session.activation in (ACTIVATED, RESERVED):
                report["alreadyActivated"].append(session.session_id)
            elif session.activation != QUEUED:
                report["notDraft"].append(session.session_id)
            else:
                report["alreadyQueued" if before == QUEUED else "queued"].append(session.session_id)
                # Re-creating a queue row that exists is a no-op, so a crash between the two writes heals here.
                assert session.queue_key
                await self.store.enqueue(QueuedSession(session.queue_key, session.session_id, session.request_id,
                                                       session.index))
        return report

    def _reader(self, session: TrackedSession) -> Callable[[], Awaitable[TrackedSession]]:
        """Reads the session's tracking row, starting from the copy in hand (saves a read when it is fresh)."""
        first = [session]

        async def read() -> TrackedSession:
            if first:
                return first.pop()
            return await self.store.tracked(session.session_id) or session

        return read

    # -- admission ----------------------------------------------------------------------------------

    async def _update_slots(self, change: Callable[[Slots], Slots | None]) -> Slots:
        return await optimistic_update(self.store.read_slots, change, self.store.write_slots,
                                       what="the activation slots")

    async def release(self, session_id: str) -> None:
        def drop(slots: Slots) -> Slots | None:
            if session_id not in slots.holders:
                return None
            holders = {k: v for k, v in slots.holders.items() if k != session_id}
            return Slots(holders, slots.backoff_until, slots.etag)

        await self._update_slots(drop)

    async def _mark_holder(self, session_id: str, state: str) -> None:
        def mark(slots: Slots) -> Slots | None:
            holder = slots.holders.get(session_id)
            if holder is None or holder.get("state") == state:
                return None
            holders = {**slots.holders, session_id: {**holder, "state": state}}
            return Slots(holders, slots.backoff_until, slots.etag)

        await self._update_slots(mark)

    async def _pause(self, seconds: float) -> None:
        until = datetime.now(UTC) + timedelta(seconds=seconds)

        def pause(slots: Slots) -> Slots | None:
            if slots.backoff_until and slots.backoff_until >= until:
                return None
            return Slots(slots.holders, until, slots.etag)

        await self._update_slots(pause)

    async def fill_slots(self) -> int:
        """Activate waiting sessions while slots are free. Returns how many were activated."""
        activated = 0
        cap = self.settings.max_active_sessions
        gate = asyncio.Semaphore(self.settings.graph_create_concurrency)

        async def activate(item: QueuedSession) -> str:
            async with gate:
                return await self._activate(item)

        async def read() -> Admission:
            slots = await self.store.read_slots()
            window = admission_window(slots, cap, datetime.now(UTC))
            head = await self.store.head_of_queue(window + len(slots.holders)) if window else []
            return Admission(slots, head)

        async def write(admission: Admission) -> Admission:
            return replace(admission, slots=await self.store.write_slots(admission.slots))

        for _ in range(100):
            admission = await optimistic_update(read, lambda a: reserve_next(a, cap, datetime.now(UTC)), write,
                                                what="the activation slots")
            if not admission.reserved:
                return activated
            outcomes = await asyncio.gather(*(activate(c) for c in admission.reserved))
            activated += outcomes.count(_Outcome.ACTIVATED)
            if _Outcome.CAP_REACHED in outcomes or _Outcome.RETRY in outcomes:
                return activated
        return activated

    async def _activate(self, item: QueuedSession) -> str:
        """Activate one session whose slot is reserved."""
        session = await self.store.tracked(item.session_id)
        if session is None or session.activation == ACTIVATED or session.status in TERMINAL_STATUSES:
            await self.store.dequeue(item.key)
            await self.release(item.session_id)
            return _Outcome.DROPPED
        try:
            session = await self.store.update_tracked(replace(session, activation=RESERVED))
        except Contended:
            await self.release(item.session_id)
            return _Outcome.RETRY
        await self.store.dequeue(item.key)
        return await self.activate_reserved(session)

    async def activate_reserved(self, session: TrackedSession) -> str:
        """Call Graph for a session that holds a reserved slot; settle the slot by the answer."""
        try:
            answer = await self.graph.activate_session(session.session_id)
            status = str(answer.get("status") or "activating")
        except GraphRefused as refused:
            if refused.error.code == "RestoreSessionActionNotAllowed":
                # Not a draft any more: an earlier attempt (or someone else) activated it. Graph's state decides.
                status = str((await self.graph.get_session(session.session_id)).get("status"))
                if status == "draft":
                    await self._requeue(session)
                    return _Outcome.RETRY
            else:
                await self._refused(session, refused.error)
                return _Outcome.DROPPED
        except RetryLater as retry:
            if retry.error.code == "TooManyActiveRestoreSessions":
                log.warning("Graph refused activation of %s: too many active sessions; pausing admission",
                            session.session_id)
                await self._requeue(session)
                await self._pause(max(retry.after or 0.0, self.pause_after_cap.total_seconds()))
                return _Outcome.CAP_REACHED
            if retry.outcome_unknown:
                return _Outcome.UNKNOWN  # the slot stays reserved; the tracker looks at Graph's state later
            await self._requeue(session)
            await self._pause(retry.after or 5.0)
            return _Outcome.RETRY
        await self.on_activated(session, status)
        return _Outcome.ACTIVATED

    async def on_activated(self, session: TrackedSession, status: str) -> TrackedSession:
        """Graph took the activation: hold the slot as active, record it, publish it (once)."""
        await self._mark_holder(session.session_id, "active")
        fresh = await self.store.tracked(session.session_id) or session
        fresh = await self._save(replace(fresh, activation=ACTIVATED, status=status))
        if not fresh.activated_published:
            await self.publisher.publish([session_event(
                "restore.session.activated", f"{fresh.session_id}:activated", fresh.request_id, fresh.session_id,
                {"status": status, "index": fresh.index}, fresh.incident_id)])
            fresh = await self._save(replace(fresh, activated_published=True))
        return fresh

    async def _save(self, session: TrackedSession) -> TrackedSession:
        """Write our view of the session over whatever version is stored (its fields are ours to decide)."""
        return await optimistic_update(self._reader(session), lambda fresh: replace(session, etag=fresh.etag),
                                       self.store.update_tracked, what=f"tracking row of {session.session_id}",
                                       attempts=5)

    async def _requeue(self, session: TrackedSession) -> None:
        key = session.queue_key or order_key(datetime.now(UTC), session.request_id, session.index)
        await self._save(replace(session, activation=QUEUED, queue_key=key))
        await self.store.enqueue(QueuedSession(key, session.session_id, session.request_id, session.index))
        await self.release(session.session_id)

    async def _refused(self, session: TrackedSession, error: GraphError) -> None:
        log.error("Graph refused to activate %s: %s %s", session.session_id, error.code, error.message)
        await self._save(replace(session, activation=ActivationState.REFUSED))
        await self.release(session.session_id)
        await self.publisher.publish([session_event(
            "restore.session.failed", f"{session.request_id}:session:{session.index}:activation-failed",
            session.request_id, session.session_id,
            {"index": session.index, "stage": "activation", "error": error.to_json()}, session.incident_id)])


# ---------------------------------------------------------------------------------------------------
# The activation_requests queue: approvals by requestId or by session ids


class ActivationRequestOrchestrator:
    def __init__(self, coordinator: ActivationCoordinator) -> None:
        self.coordinator = coordinator

    @tracing.in_invocation(links_requests=True)
    async def handle(self, message: InboundMessage) -> list[CloudEvent]:
        """An outage is raised (-> abandon, redelivery); any other failure is reported as a rejection."""
        try:
            return await self._handle(message)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("activation message %s cannot be processed; reported and not retried",
                          message.message_id)
            event = unprocessable_event("activation", message, exc)
            await self.coordinator.publisher.publish([event])
            return [event]

    async def _handle(self, message: InboundMessage) -> list[CloudEvent]:
        publisher = self.coordinator.publisher
        document: Any = None
        try:
            document = decode_body(message.body)
            command = parse_activation_request(document, message.message_id)
        except Rejected as rejected:
            key = best_effort_request_id(document)
            event = self._rejected(key or message.message_id or "unknown", key, rejected.errors, message.body)
            await publisher.publish([event])
            return [event]

        store, ledger = self.coordinator.store, self.coordinator.ledger
        errors: list[FieldError] = []
        sessions: list[TrackedSession] = []
        requested_at = message.enqueued_time or datetime.now(UTC)
        if command.request_id:
            record = await ledger.get_request(command.request_id)
            if record is None:
                errors.append(FieldError("requestId", f"no restore request {command.request_id!r} is recorded; "
                                                      "send the activation after restore.request.accepted"))
            else:
                await ledger.mark_activation_requested(command.request_id, requested_at)
                batches = await ledger.load_batches(command.request_id)
                sessions = await self.coordinator.track_created(command.request_id, batches, record.incident_id)
        else:
            for position, session_id in enumerate(command.session_ids):
                tracked = await store.tracked(session_id)
                if tracked is None:
                    errors.append(FieldError(f"sessionIds[{position}]", f"session {session_id} is not a draft "
                                                                         "session created by this service, or it "
                                                                         "has already finished"))
                else:
                    sessions.append(tracked)
        events: list[CloudEvent] = []
        if errors:
            events.append(self._rejected(command.key, command.request_id, errors, message.body))
        if sessions:
            report = await self.coordinator.queue(sessions, requested_at)
            events.append(CloudEvent(
                id=f"{command.key}:activation:{message.message_id}:accepted", type="activation.request.accepted",
                subject=command.key,
                data={"requestId": command.request_id, "sessionIds": list(command.session_ids) or None, **report},
                correlation_id=command.key, request_id=command.request_id or command.key))
        if events:
            await publisher.publish(events)
        if sessions:
            await self.coordinator.fill_slots()
        return events

    @staticmethod
    def _rejected(key: str, request_id: str | None, errors: list[FieldError], body: bytes) -> CloudEvent:
        data: dict[str, Any] = {"requestId": request_id, "errors": [e.to_json() for e in errors]}
        data.update(echo_body(body))
        return CloudEvent(id=f"{key}:activation:rejected", type="activation.request.rejected", subject=key,
                          data=data, correlation_id=key, request_id=request_id or key)


