"""SessionTracker: follows every session the service created until it ends, and keeps the slots full.

Runs on a timer. Each run holds a lease in the ledger so two runs never overlap, polls the sessions that
are activating or active (oldest check first, bounded concurrency, inside a time budget), publishes
`restore.session.activated` and `restore.session.completed` (with every artifact's outcome), frees the slot
of each finished session, publishes `restore.request.completed` when a request's last session ends, deletes
drafts nobody approved in time, and then activates the next waiting sessions.

Every step publishes before it forgets: a run that dies half-way is repeated by the next one, and the
deterministic event ids let the topic drop what was already sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrators.activation.coordinator import ActivationCoordinator, session_event
from orchestrators.activation.records import (
    ACTIVATED,
    RESERVED,
    TERMINAL_STATUSES,
    TrackedSession,
)
from orchestrators.adapters.graph import GraphGateway
from orchestrators.adapters.tables.activation_store import ActivationLedger
from orchestrators.adapters.tables.ledger import Ledger, SessionOutcome
from orchestrators.contracts import CloudEvent
from orchestrators.kernel import tracing
from orchestrators.kernel.errors import Contended, GraphRefused, RetryLater
from orchestrators.kernel.settings import Settings
from orchestrators.tracking.decisions import plan_pass, reserved_too_long

log = logging.getLogger(__name__)

#: How long a tracker run's lease lasts without renewal (renewed every third of it while the run goes on).
TRACKER_LEASE_SECONDS = 30.0

DELETED = "deleted"


@dataclass
class TrackerReport:
    lease_held: bool = True
    tracked: int = 0
    polled: int = 0
    completed: int = 0
    discarded: int = 0
    activated: int = 0
    deferred: int = 0
    errors: int = 0


class SessionTracker:
    def __init__(self, settings: Settings, graph: GraphGateway, ledger: Ledger, store: ActivationLedger,
                 coordinator: ActivationCoordinator, publisher: Any) -> None:
        self.settings = settings
        self.graph = graph
        self.ledger = ledger
        self.store = store
        self.coordinator = coordinator
        self.publisher = publisher
        from orchestrators.selection.resolver import BulkOutcomeReporter

        self.bulk_outcomes = BulkOutcomeReporter(settings, graph, ledger, publisher)

    @tracing.in_invocation()
    async def run(self, owner: str | None = None) -> TrackerReport:
        """One run under the tracker lease. The lease is short and renewed while the run lasts, so a worker that
        dies mid-run holds up the next run (and the activations it would make) for at most TRACKER_LEASE_SECONDS,
        not for the whole time budget."""
        owner = owner or uuid.uuid4().hex
        budget = self.settings.tracker_time_budget_seconds
        lease = timedelta(seconds=TRACKER_LEASE_SECONDS)
        if not await self.store.acquire_lease(owner, lease):
            log.info("another tracker run holds the lease; skipping")
            return TrackerReport(lease_held=False)
        renewal = asyncio.ensure_future(self._keep_lease(owner, lease))
        try:
            return await self._run(time.monotonic() + budget)
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await self.store.release_lease(owner)

    async def _keep_lease(self, owner: str, lease: timedelta) -> None:
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                if not await self.store.acquire_lease(owner, lease):
                    log.warning("the tracker lease was taken over; this run goes on, the next one waits")
            except Exception as exc:  # the run goes on; at worst another run overlaps it, which is harmless
                log.warning("could not renew the tracker lease: %s", exc)

    async def _run(self, deadline: float) -> TrackerReport:
        report = TrackerReport()
        rows = await self.store.all_tracked()
        slots = await self.store.read_slots()
        report.tracked = len(rows)
        max_age_hours = self.settings.draft_session_max_age_hours
        plan = plan_pass(rows, slots, datetime.now(UTC),
                         draft_max_age=timedelta(hours=max_age_hours) if max_age_hours > 0 else None,
                         reserved_grace=timedelta(seconds=self.settings.reserved_slot_grace_seconds))
        to_poll, stale = plan.poll, plan.discard

        gate = asyncio.Semaphore(self.settings.tracker_concurrency)

        async def poll(row: TrackedSession) -> None:
            async with gate:
                if time.monotonic() > deadline:
                    report.deferred += 1  # the next run starts with these: they have the oldest checks
                    return
                try:
                    if await self._poll(row, slots.holders.get(row.session_id)):
                        report.completed += 1
                    report.polled += 1
                except (RetryLater, Contended, GraphRefused) as exc:
                    report.errors += 1
                    log.warning("tracking %s: %s", row.session_id, exc)

        await asyncio.gather(*(poll(r) for r in to_poll))
        for row in stale:
            if time.monotonic() > deadline:
                break
            try:
                await self._discard(row)
                report.discarded += 1
            except (RetryLater, Contended, GraphRefused) as exc:
                report.errors += 1
                log.warning("discarding %s: %s", row.session_id, exc)

        for session_id in plan.release:
            await self.coordinator.release(session_id)
        report.activated = await self.coordinator.fill_slots()
        log.info("tracker run: %s", report)
        return report

    async def _poll(self, row: TrackedSession, holder: dict[str, Any] | None) -> bool:
        """Look at one session in Graph and act on what changed. True when it finished."""
        try:
            session = await self.graph.get_session(row.session_id)
        except GraphRefused as refused:
            if refused.error.status == 404:  # deleted outside this service
                await self._finish(row, "failed", None, refused.error.to_json())
                return True
            raise
        status = str(session.get("status") or "unknownFutureValue")
        if status == "draft":
            if row.activation == RESERVED and holder is not None and self._reserved_too_long(holder):
                # An activation whose answer was lost (a crash, a timeout): ask again; Graph refuses doubles.
                await self.coordinator.activate_reserved(row)
            return False
        if not row.activated_published or row.activation != ACTIVATED:
            row = await self.coordinator.on_activated(row, status)
        if session.get("restoreJobType") == "bulk":  # Graph resolved its drives at activation: report them
            await self.bulk_outcomes.report(row.request_id, row.index, row.session_id, row.incident_id)
        if status in TERMINAL_STATUSES:
            await self._finish(row, status, session, None)
            return True
        try:  # the check time orders the next run's polling, oldest first
            await self.store.update_tracked(replace(row, status=status, last_checked_at=datetime.now(UTC)))
        except Contended:
            pass  # someone else recorded a newer state; the next run reads it
        return False

    def _reserved_too_long(self, holder: dict[str, Any]) -> bool:
        grace = timedelta(seconds=self.settings.reserved_slot_grace_seconds)
        return reserved_too_long(holder, datetime.now(UTC), grace)

    async def _finish(self, row: TrackedSession, status: str, session: dict[str, Any] | None,
                      error: dict[str, Any] | None) -> None:
        artifacts = await self.graph.session_artifacts(row.session_id) if session is not None else []
        outcomes = [
            {
                "restorePointId": (a.get("restorePoint") or {}).get("id"),
                "status": a.get("status"),
                "destinationType": a.get("destinationType"),
                "restoredSiteId": a.get("restoredSiteId"),
                "restoredSiteName": a.get("restoredSiteName"),
                "restoredSiteWebUrl": a.get("restoredSiteWebUrl"),
                "startDateTime": a.get("startDateTime"),
                "completionDateTime": a.get("completionDateTime"),
                "error": a.get("error"),
            }
            for a in artifacts
        ]
        counts = dict(Counter(str(a["status"]) for a in outcomes))
        data: dict[str, Any] = {
            "index": row.index,
            "status": status,
            "completedDateTime": (session or {}).get("completedDateTime"),
            "artifactCounts": counts,
            "artifacts": outcomes,
        }
        if error is not None:
            data["error"] = error
        if len(outcomes) > 50 and len(json.dumps(data, default=str)) > self.settings.event_max_bytes:
            # A bulk session of thousands of drives: list what did not succeed, count the rest.
            data["artifacts"] = [a for a in outcomes if a["status"] != "succeeded"][:500]
            data["artifactsOmitted"] = True
        await self.publisher.publish([session_event("restore.session.completed", f"{row.session_id}:completed",
                                                    row.request_id, row.session_id, data, row.incident_id)])
        await self._settle(row, status, counts)

    async def _settle(self, row: TrackedSession, status: str, counts: dict[str, int]) -> None:
        await self.ledger.record_outcome(row.request_id, SessionOutcome(row.index, row.session_id, status, counts))
        await self.coordinator.release(row.session_id)
        await self.store.untrack(row.session_id)
        await self.complete_request_if_done(row.request_id)

    async def _discard(self, row: TrackedSession) -> None:
        """A draft nobody activated within DRAFT_SESSION_MAX_AGE_HOURS: delete it in Graph and say so."""
        try:
            await self.graph.delete_session(row.session_id)
        except GraphRefused as refused:
            if refused.error.code == "RestoreSessionActionNotAllowed":
                # No longer a draft (activated outside this service): follow it instead.
                await self.store.update_tracked(replace(row, status="unknownFutureValue"))
                return
            if refused.error.status != 404:
                raise
        age_hours = self.settings.draft_session_max_age_hours
        event = session_event(
            "restore.session.deleted", f"{row.session_id}:deleted", row.request_id, row.session_id,
            {"index": row.index, "reason": f"not activated within {age_hours:g} hours (DRAFT_SESSION_MAX_AGE_HOURS)",
             "createdDateTime": row.created_at.isoformat() if row.created_at else None},
            row.incident_id)
        await self.publisher.publish([event])
        await self._settle(row, DELETED, {})

    async def complete_request_if_done(self, request_id: str) -> CloudEvent | None:
        """Publish `restore.request.completed` once every session of the request has ended."""
        record = await self.ledger.get_request(request_id)
        if record is None or record.state not in ("accepted", "completed"):
            return None  # still being created (or failed before it was accepted)
        batches = await self.ledger.load_batches(request_id)
        created = {b.index: b for b in batches if b.session_id}
        outcomes = {o.index: o for o in await self.ledger.load_outcomes(request_id)}
        if any(index not in outcomes for index in created):
            return None
        session_totals: Counter[str] = Counter(o.status for o in outcomes.values())
        artifact_totals: Counter[str] = Counter()
        for outcome in outcomes.values():
            artifact_totals.update(outcome.artifact_counts)
        not_created = sum(len(b.excluded) for b in batches) + sum(
            len(b.remaining_points) for b in batches if b.state == "failed" and not b.excluded)
        if not_created:
            artifact_totals["notCreated"] += not_created
        failed_batches = sum(1 for b in batches if not b.session_id)
        if failed_batches:
            session_totals["notCreated"] += failed_batches
        event = CloudEvent(
            id=f"{request_id}:completed", type="restore.request.completed", subject=request_id,
            data={
                "requestId": request_id,
                "incidentId": record.incident_id,
                "sessionTotals": dict(session_totals),
                "artifactTotals": dict(artifact_totals),
                "sessions": [{"index": o.index, "sessionId": o.session_id, "status": o.status}
                             for o in sorted(outcomes.values(), key=lambda o: o.index)],
            },
            correlation_id=record.incident_id or request_id, request_id=request_id, incident_id=record.incident_id)
        await self.publisher.publish([event])
        if record.state != "completed":
            await self.ledger.set_request_state(request_id, "completed")
        return event
