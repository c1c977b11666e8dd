"""Latency of the status routes over a ledger of 100 incidents x 200 sessions in Azurite.

The rows are written through the ledger adapters (no Graph): 40 requests finished, one with 25 sessions holding
the slots and the rest waiting, 9 created with `activate: false` (drafts, so every session's tracking row is
read: the worst case), and 50 waiting in the activation queue (10,000 queue rows). Each route is then answered
in-process the way its HTTP function answers it (`orchestrators.status.http.answer`, the function's whole body
but the `HttpResponse` wrapper), and p50/p95 are printed. Target: p95 <= 50 ms for `restores/{id}`.

    python -m bench.status_bench [--incidents 100] [--sessions 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from emulators.azurite import start_azurite
from orchestrators.activation.records import ACTIVATED, QUEUED, QueuedSession, Slots, TrackedSession, order_key
from orchestrators.adapters.tables.activation_store import ActivationLedger
from orchestrators.adapters.tables.ledger import Ledger, SessionOutcome
from orchestrators.contracts.domain import Artifact, RestoreRequest
from orchestrators.kernel.step import StepState
from orchestrators.restore.planner import SessionPlan
from orchestrators.status import http
from orchestrators.status.reader import StatusReader

TARGET_MS = 50.0


def _kind(i: int) -> str:
    if i < 40:
        return "finished"
    if i == 40:
        return "active"
    if i < 50:
        return "drafts"
    return "waiting"


async def populate(ledger: Ledger, store: ActivationLedger, incidents: int, sessions: int) -> list[str]:
    gate = asyncio.Semaphore(16)
    holders: dict[str, dict[str, object]] = {}
    start = datetime.now(UTC) - timedelta(hours=2)

    async def one(i: int) -> str:
        request_id = f"bench-{i:03d}"
        kind = _kind(i)
        points = tuple(f"rp-{i}-{n}" for n in range(sessions * 2))
        request = RestoreRequest(request_id, f"INC-{i:03d}", "bench", "status benchmark",
                                 tuple(Artifact(p, "new") for p in points), activate=kind != "drafts",
                                 dry_run=False, payload_hash=uuid.uuid4().hex)
        plans = [SessionPlan(n, "new", points[2 * n:2 * n + 2]) for n in range(sessions)]
        async with gate:
            batches = await ledger.open_request(request, plans)
            created = [replace(b, state=StepState.DONE, session_id=f"{request_id}-s{b.index:03d}",
                               session_status="draft", created_date_time=start.isoformat()) for b in batches]
            await ledger.batches.save_many(created)  # type: ignore[arg-type]
            await ledger.set_request_state(request_id, "accepted")
            if kind == "finished":
                for b in created:
                    await ledger.record_outcome(request_id, SessionOutcome(b.index, str(b.session_id), "completed",
                                                                           {"succeeded": 2}))
                return request_id
            tracked = [TrackedSession(str(b.session_id), request_id, b.index, created_at=start,
                                      incident_id=request.incident_id) for b in created]
            if kind != "drafts":
                requested = start + timedelta(seconds=i)
                tracked = [replace(t, activation=QUEUED, queue_key=order_key(requested, request_id, t.index))
                           for t in tracked]
                if kind == "active":
                    for t in tracked[:25]:
                        holders[t.session_id] = {"state": "activated", "since": start.isoformat(),
                                                 "requestId": request_id, "index": t.index}
                    tracked = [replace(t, activation=ACTIVATED, status="active", queue_key=None)
                               if t.session_id in holders else t for t in tracked]
            await store.track_many(tracked)
            for t in tracked:
                if t.activation == QUEUED and t.queue_key:
                    await store.enqueue(QueuedSession(t.queue_key, t.session_id, request_id, t.index))
        return request_id

    ids = list(await asyncio.gather(*(one(i) for i in range(incidents))))
    slots = await store.read_slots()
    await store.write_slots(Slots(holders, None, slots.etag))
    return ids


async def timed(call: object, repeat: int) -> list[float]:
    took = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = await call()  # type: ignore[operator]
        took.append((time.perf_counter() - t0) * 1000)
        assert answer.status == 200, answer.body[:200]
    return took


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(incidents: int, sessions: int, rounds: int) -> int:
    azurite = start_azurite()
    ledger = Ledger.from_connection_string(azurite.connection_string, f"bench{uuid.uuid4().hex[:12]}")
    try:
        store = ActivationLedger(ledger.table)
        t0 = time.perf_counter()
        ids = await populate(ledger, store, incidents, sessions)
        print(f"ledger: {incidents} incidents x {sessions} sessions written in {time.perf_counter() - t0:.1f} s")
        reader = StatusReader(ledger.table, max_active_sessions=25, window_days=30)
        results: dict[str, list[float]] = {}
        by_kind: dict[str, list[float]] = {}
        for _ in range(rounds):
            for i, request_id in enumerate(ids):
                took = await timed(lambda r=request_id: http.answer("restore", {"requestId": r}, reader), 1)
                results.setdefault("restores/{requestId}", []).extend(took)
                by_kind.setdefault(_kind(i), []).extend(took)
            for i in range(incidents):
                results.setdefault("incidents/{incidentId}", []).extend(
                    await timed(lambda n=i: http.answer("incident", {"incidentId": f"INC-{n:03d}"}, reader), 1))
        results["incidents"] = await timed(lambda: http.answer("incidents", {}, reader), max(3, rounds))
        results["capacity"] = await timed(lambda: http.answer("capacity", {}, reader), 20 * rounds)
        results["dashboard"] = await timed(lambda: http.answer("dashboard", {}, reader), 20 * rounds)
        print(f"{'route':<24} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8}")
        for route, took in results.items():
            print(f"{route:<24} {len(took):>6} {statistics.median(took):>8.1f} {quantile(took, 0.95):>8.1f}")
        print("restores/{requestId} by request kind:")
        for kind, took in by_kind.items():
            print(f"  {kind:<10} {len(took):>6} {statistics.median(took):>8.1f} {quantile(took, 0.95):>8.1f}")
        p95 = quantile(results["restores/{requestId}"], 0.95)
        verdict = "meets" if p95 <= TARGET_MS else "misses"
        print(f"restores/{{requestId}} p95 {p95:.1f} ms: {verdict} the target of {TARGET_MS:.0f} ms")
        return 0
    finally:
        await ledger.aclose()
        azurite.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    raise SystemExit(asyncio.run(main(options.incidents, options.sessions, options.rounds)))
