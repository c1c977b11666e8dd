"""Restore by point in time (`selection`), end to end: host runner, Service Bus stand-in, Graph emulator, Azurite."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from orchestrators.adapters.credentials import FixedTokenCredential
from orchestrators.adapters.graph import GraphGateway
from orchestrators.adapters.tables.ledger import Ledger
from orchestrators.app.runtime import Runtime
from tests.e2e.harness import Harness, SimulatedCrash, of_type

pytestmark = pytest.mark.timeout(240)


def _now() -> str:
    """A point in time after every restore point the emulator has: "the latest one"."""
    return (datetime.now(UTC) + timedelta(minutes=1)).isoformat()


def _selection(request_id: str, users: list[str], point_in_time: str | None = None, **extra) -> dict:
    options = {k: extra.pop(k) for k in ("strategy", "notBefore", "directoryObjectIds") if k in extra}
    return {"requestId": request_id, "incidentId": "INC-7", **extra,
            "selection": {"users": users, "pointInTime": point_in_time or _now(), **options}}


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _only(events: list[dict], event_type: str) -> dict:
    found = of_type(events, event_type)
    assert len(found) == 1, [(e["type"], e["data"].get("lastError")) for e in events]
    return found[0]["data"]


async def test_one_user_is_restored_to_the_latest_restore_point(harness):
    drive = harness.graph.samples(1)["drives"][0]
    latest = harness.graph.samples(1)["fastRestorePoints"][0]
    events = await harness.run(_selection("sel-one", [drive["email"]]))
    accepted = _only(events, "restore.request.accepted")
    assert accepted["strategy"] == "standard" and accepted["unresolved"] == []
    created = _only(events, "restore.session.created")
    assert created["restorePointIds"] == [latest["id"]] and created["strategy"] == "standard"
    assert len(harness.graph_calls("getDriveProtectionUnit") + harness.graph_calls("listDriveProtectionUnits")) == 1
    sessions = harness.graph_sessions()
    assert [a["restorePointId"] for s in sessions for a in s["artifacts"]] == [latest["id"]]


async def test_forty_five_users_take_one_listing_and_three_searches(harness):
    drives = harness.graph.samples(45)["drives"]
    events = await harness.run(_selection("sel-45", [d["email"] for d in drives]))
    accepted = _only(events, "restore.request.accepted")
    assert accepted["resolvedDriveCount"] == 45 and accepted["sessionCount"] == 1
    assert len(harness.graph_calls("searchRestorePoints")) == 3
    assert len(harness.graph_calls("listDriveProtectionUnits")) == 1  # 300 drives: one page of 1000
    assert len(harness.graph_sessions()[0]["artifacts"]) == 45


async def test_unknown_and_unprotected_users_are_reported_and_the_rest_restored(harness):
    samples = harness.graph.samples(3)
    known = [d["email"] for d in samples["drives"]]
    unprotected = samples["unprotectedDrives"][0]["email"]
    events = await harness.run(_selection("sel-mixed", [*known, "nobody@contoso.com", unprotected]))
    accepted = _only(events, "restore.request.accepted")
    assert sorted((u["selector"], u["reason"]) for u in accepted["unresolved"]) == [
        ("nobody@contoso.com", "unknownUser"), (unprotected, "notProtected")]
    assert accepted["restoringArtifactCount"] == 3
    assert len(harness.graph_sessions()[0]["artifacts"]) == 3


async def test_a_point_in_time_between_two_restore_points_picks_the_earlier_one(harness):
    samples = harness.graph.samples(1)
    earlier = samples["restorePoints"][0]  # ten minutes before the newest
    between = _parse(earlier["protectionDateTime"]) + timedelta(minutes=5)
    events = await harness.run(_selection("sel-between", [samples["drives"][0]["email"]], _iso(between)))
    assert _only(events, "restore.session.created")["restorePointIds"] == [earlier["id"]]


async def test_a_point_in_time_before_every_restore_point_leaves_the_drive_unresolved(harness):
    drive = harness.graph.samples(1)["drives"][0]
    events = await harness.run(_selection("sel-too-early", [drive["email"]], "2001-01-01T00:00:00Z"))
    accepted = _only(events, "restore.request.accepted")
    assert accepted["unresolved"][0]["reason"] == "noRestorePointInWindow"
    assert accepted["sessionCount"] == 0 and not harness.graph_sessions()


async def test_a_dry_run_lists_the_chosen_restore_points_and_writes_nothing(harness):
    samples = harness.graph.samples(2)
    users = [d["email"] for d in samples["drives"]] + ["ghost@contoso.com"]
    events = await harness.run(_selection("sel-dry", users, dryRun=True))
    planned = _only(events, "restore.request.planned")
    assert planned["strategy"] == "standard"
    chosen = {d["selector"]: d for d in planned["drives"]}
    for drive, point in zip(samples["drives"], samples["fastRestorePoints"], strict=True):
        assert chosen[drive["email"]]["restorePointId"] == point["id"]
        assert chosen[drive["email"]]["protectionDateTime"] == point["protectionDateTime"]
    assert chosen["ghost@contoso.com"]["reason"] == "unknownUser"
    assert not harness.graph_sessions()


async def test_two_thousand_users_go_bulk_by_auto_and_forty_sessions_by_standard(graph, harness):
    graph.admin.reset(seed=11, drives=2100, active_cap=25, clock_scale=1.0, unprotected_fraction=0.0)
    users = [d["email"] for d in harness.graph.samples(2000)["drives"]]

    events = await harness.run(_selection("sel-2000-auto", users), timeout=120)
    accepted = _only(events, "restore.request.accepted")
    assert accepted["strategy"] == "bulk" and accepted["sessionCount"] == 1
    created = _only(events, "restore.session.created")
    assert created["strategy"] == "bulk" and created["driveCount"] == 2000
    bulk = harness.bulk_requests(created["sessionId"])
    assert len(bulk) == 1 and len(bulk[0]["drives"]) == 2000 and bulk[0]["status"] == "active"
    assert not harness.graph_calls("searchRestorePoints")  # Graph picks the restore points itself

    events = await harness.run(_selection("sel-2000-standard", users, strategy="standard"), timeout=120)
    accepted = _only(events, "restore.request.accepted")
    assert accepted["strategy"] == "standard" and accepted["createdSessionCount"] == 40
    assert len(harness.graph_calls("searchRestorePoints")) == 100


async def test_a_bulk_restore_is_activated_under_the_cap_and_reports_each_drive(graph, harness):
    graph.admin.reset(seed=11, drives=300, active_cap=25, clock_scale=0.0)
    samples = harness.graph.samples(4)
    users = [d["email"] for d in samples["drives"]] + ["ghost@contoso.com"]
    events = await harness.run(_selection("sel-bulk", users, strategy="bulk", activate=True))
    assert _only(events, "restore.request.accepted")["unresolved"][0]["selector"] == "ghost@contoso.com"
    assert _only(events, "restore.session.activated")
    for _ in range(10):
        harness.graph.advance(seconds=300)
        await harness.host.run_timer("session_tracker")
        events += await harness.drain_events()
        if of_type(events, "restore.request.completed"):
            break
    outcome = _only(events, "restore.bulk.completed")
    assert outcome["status"] == "completed" and outcome["driveCounts"] == {"added": 4, "notRestored": 1}
    added = {d["selector"]: d["restorePointId"] for d in outcome["drives"] if d["status"] == "added"}
    assert added == {d["email"]: p["id"] for d, p in zip(samples["drives"], samples["fastRestorePoints"],
                                                         strict=True)}
    completed = _only(events, "restore.request.completed")
    assert completed["sessionTotals"] == {"completed": 1}


class CrashingSelectionLedger(Ledger):
    """The worker dies after Graph answered the second search, before the answer is recorded."""

    searches_recorded = 0

    async def upsert_rows(self, entities):
        if entities and str(entities[0]["RowKey"]).startswith("selection:rp:"):
            type(self).searches_recorded += 1
            if type(self).searches_recorded == 2:
                raise SimulatedCrash("search answer not recorded")
        await super().upsert_rows(entities)


async def test_a_redelivery_after_a_crash_mid_resolution_neither_resolves_nor_creates_twice(unstarted_harness):
    harness: Harness = unstarted_harness
    harness.settings_env["SEARCH_CONCURRENCY"] = "1"
    parts = await Runtime.create(harness.settings)
    ledger = CrashingSelectionLedger.from_connection_string(harness.settings.ledger_connection,
                                                            harness.settings.ledger_table)
    parts._closers.append(ledger)
    parts.ledger = ledger
    await harness.start(parts)
    try:
        drives = harness.graph.samples(120)["drives"]
        events = await harness.run(_selection("sel-crash", [d["email"] for d in drives]))
        assert len(harness.graph_calls("listDriveProtectionUnits")) == 1
        assert len(harness.graph_calls("searchRestorePoints")) == 6 + 1  # only the lost answer is asked again
        sessions = harness.graph_sessions()
        assert len(sessions) == 3
        restored = Counter(a["restorePointId"] for s in sessions for a in s["artifacts"])
        assert len(restored) == 120 and set(restored.values()) == {1}
        assert len(of_type(events, "restore.request.accepted")) == 1
    finally:
        await harness.stop()


class GraphThatDiesAfter(GraphGateway):
    """The real gateway; the worker dies once right after Graph answered the chosen create."""

    die_after = ""
    died = False

    async def create_empty_restore_session(self):
        created = await super().create_empty_restore_session()
        self._maybe_die("create_empty_restore_session")
        return created

    async def create_bulk_addition(self, session_id, body):
        created = await super().create_bulk_addition(session_id, body)
        self._maybe_die("create_bulk_addition")
        return created

    def _maybe_die(self, step: str) -> None:
        if step == self.die_after and not GraphThatDiesAfter.died:
            GraphThatDiesAfter.died = True
            raise SimulatedCrash(step)


@pytest.mark.parametrize("step", ["create_empty_restore_session", "create_bulk_addition"])
async def test_a_bulk_restore_whose_create_answer_is_lost_creates_nothing_twice(unstarted_harness, step):
    harness = unstarted_harness
    settings = harness.settings
    parts = await Runtime.create(settings)
    graph = GraphThatDiesAfter.create(FixedTokenCredential(settings.graph_access_token or ""),
                                      settings.graph_base_url, application_id=settings.graph_client_id)
    graph.die_after = step
    GraphThatDiesAfter.died = False
    parts._closers.append(graph)
    parts.graph = graph
    await harness.start(parts)
    try:
        users = [d["email"] for d in harness.graph.samples(30)["drives"]]
        events = await harness.run(_selection(f"sel-bulk-crash-{step}", users, strategy="bulk"))
        assert GraphThatDiesAfter.died
        assert [i.outcome for i in harness.host.invocations] == ["abandoned", "completed"]
        sessions = harness.graph_sessions()
        assert len(sessions) == 1, f"{len(sessions)} sessions after a crash after {step}"
        [bulk] = harness.bulk_requests(sessions[0]["id"])
        assert len(bulk["drives"]) == 30
        created = _only(events, "restore.session.created")
        assert created["sessionId"] == sessions[0]["id"] and created["bulkAdditionRequestId"] == bulk["id"]
    finally:
        await harness.stop()


async def test_a_bulk_request_graph_refuses_is_reported_and_leaves_no_empty_session(harness):
    users = [d["email"] for d in harness.graph.samples(5)["drives"]]
    harness.graph.fail_next(1, status=400, code="BulkRestoreInvalidCreateRequest",
                            operation="createBulkAdditionRequest", message="The request is not valid.")
    events = await harness.run(_selection("sel-bulk-refused", users, strategy="bulk"))
    failed = _only(events, "restore.session.failed")
    assert failed["error"]["code"] == "BulkRestoreInvalidCreateRequest" and failed["error"]["status"] == 400
    assert _only(events, "restore.request.accepted")["failedSessionCount"] == 1
    assert harness.graph_sessions() == []
    assert [i.outcome for i in harness.host.invocations] == ["completed"]
