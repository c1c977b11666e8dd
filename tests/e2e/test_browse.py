"""Browse requests end to end: a message in, browse sessions in the Graph emulator, events out, and the
responder's `browse` command listing what a session shows."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import httpx
import pytest

from orchestrators.adapters.bus import EventPublisher
from orchestrators.app.runtime import Runtime
from orchestrators.cli import main as cli
from tests.e2e.crashing import CrashingLedger
from tests.e2e.harness import Harness, SimulatedCrash, eventually, of_type

pytestmark = pytest.mark.timeout(180)

BROWSE_TTL_SECONDS = 3 * 86400


@pytest.fixture(autouse=True)
def quick_browse_sessions(graph):
    """Sessions leave `creating` after one emulated second; the emulator's settings are put back afterwards."""
    before = graph.admin.config()
    graph.admin.configure(browse_creating_seconds=1)
    yield graph
    graph.admin.configure(browse_creating_seconds=before["browse_creating_seconds"],
                          clock_scale=before["clock_scale"])


def _browse(points: list[str], request_id: str, **extra):
    return {"requestId": request_id, "incidentId": "INC-4711", "restorePointIds": points, **extra}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _graph_http(harness: Harness) -> httpx.Client:
    """Raw calls to the Graph emulator, as another client of the tenant would make them."""
    return httpx.Client(base_url=harness.settings_env["GRAPH_BASE_URL"] + "/solutions/backupRestore",
                        headers={"Authorization": f"Bearer {harness.settings_env['GRAPH_ACCESS_TOKEN']}"},
                        timeout=30)


def _points_of(harness: Harness, sessions: list[dict], extra: tuple[dict, ...] = ()) -> list[str]:
    """The restore point of each browse session, found the only way Graph's reads allow: by the drive
    (`directoryObjectId`) and the restore point's time (`restorePointDateTime`)."""
    samples = harness.graph.samples(10)
    drives = {d["id"]: d["directoryObjectId"] for d in samples["drives"]}
    index = {(drives[p["protectionUnitId"]], _instant(p["protectionDateTime"])): p["id"]
             for p in [*samples["fastRestorePoints"], *extra]}
    return [index.get((s["directoryObjectId"], _instant(s["restorePointDateTime"])), "?") for s in sessions]


def _earlier_fast_point(harness: Harness, point_id: str) -> dict:
    """Another fastRestore point of the same drive, hours older, from Graph's documented restore point list."""
    [sample] = [p for p in harness.graph.samples(10)["fastRestorePoints"] if p["id"] == point_id]
    params = {"$expand": f"protectionUnit($filter=id eq '{sample['protectionUnitId']}')",
              "$filter": f"protectionDateTime lt {sample['protectionDateTime'].split('.')[0].rstrip('Z')}Z",
              "$top": "100"}
    with _graph_http(harness) as http:
        listed = http.get("/restorePoints", params=params).json()["value"]
    other = next(p for p in listed if p["tags"] == "fastRestore")
    return {"id": other["id"], "protectionUnitId": sample["protectionUnitId"],
            "protectionDateTime": other["protectionDateTime"]}


async def _run_cli(monkeypatch, capsys, harness: Harness, *argv: str) -> tuple[int, list[str], str]:
    """`python -m orchestrators browse ...` in-process, with the service's settings in the environment."""
    for key, value in harness.settings_env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["browse", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


async def test_one_fast_restore_point_gets_a_browse_session_reported_once_created(harness):
    [point] = harness.fast_restore_points(1)
    events = await harness.run_browse(_browse([point], "b-one"))

    [created] = events
    assert created["type"] == "browse.session.created" and created["id"] == f"b-one:browse:{point}"
    data = created["data"]
    [session] = harness.browse_sessions()
    assert data["browseSessionId"] == session["id"] and data["status"] == "created"
    assert data["requestId"] == "b-one" and data["restorePointId"] == point
    for name in ("expirationDateTime", "restorePointDateTime", "backupSizeInBytes", "directoryObjectId"):
        assert data[name] == session[name], name
    message = created["_message"]
    assert message["message_id"] == created["id"] and message["correlation_id"] == "INC-4711"
    assert message["application_properties"]["sessionId"] == session["id"]
    assert [i.outcome for i in harness.host.invocations] == ["completed"]
    assert harness.graph_calls("getRestorePoint") == []  # nothing is looked up on the way to a session


async def test_many_restore_points_get_one_browse_session_each_and_a_repeat_gets_none(harness):
    points = harness.fast_restore_points(6)
    events = await harness.run_browse(_browse([*points, points[0], points[3]], "b-many"))

    created = of_type(events, "browse.session.created")
    assert sorted(e["data"]["restorePointId"] for e in created) == sorted(points)
    sessions = harness.browse_sessions()
    assert len(sessions) == 6
    assert {s["id"] for s in sessions} == {e["data"]["browseSessionId"] for e in created}

    again = await harness.run_browse(_browse(points, "b-many"), message_id="another-message")
    assert again == []  # same event ids: dropped by the topic's duplicate detection
    assert len(harness.browse_sessions()) == 6


async def test_a_restore_point_that_is_not_fast_restore_is_reported_failed_with_graphs_error(harness):
    [slow] = harness.restore_points(1)
    [fast] = harness.fast_restore_points(1)
    events = await harness.run_browse(_browse([slow, fast], "b-slow"))

    [failed] = of_type(events, "browse.session.failed")
    assert failed["id"] == f"b-slow:browse:{slow}:failed"
    error = failed["data"]["error"]
    assert error["status"] == 400 and error["code"] == "InvalidRestorePoint"
    assert "fastRestore" in error["message"] and error["graphRequestId"]
    [created] = of_type(events, "browse.session.created")
    assert created["data"]["restorePointId"] == fast
    assert len(harness.browse_sessions()) == 1
    assert [i.outcome for i in harness.host.invocations] == ["completed"]


async def test_an_unknown_restore_point_is_reported_failed(harness):
    unknown = "00000000-0000-0000-0000-000000000000"
    events = await harness.run_browse(_browse([unknown], "b-unknown"))

    [failed] = events
    assert failed["type"] == "browse.session.failed"
    assert failed["data"]["restorePointId"] == unknown
    assert failed["data"]["error"]["code"] == "InvalidRestorePoint"
    assert harness.browse_sessions() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"restorePointIds": ["x"]', "(body)"),
        (b'{"restorePointIds": ["x"], "restorePoints": ["y"]}', "restorePoints"),
        (b'{"requestId": "b-empty", "restorePointIds": []}', "restorePointIds"),
    ],
    ids=["truncated-json", "unknown-field", "empty-list"],
)
async def test_bad_input_is_rejected_once_with_field_level_reasons_and_the_body(harness, request, body, field):
    message_id = f"msg-bad-{request.node.callspec.id}"  # one per case, as duplicate detection may outlive a test
    [rejected] = await harness.run_browse(body, message_id=message_id)

    assert rejected["type"] == "browse.request.rejected"
    key = "b-empty" if field == "restorePointIds" else message_id
    assert rejected["id"] == f"{key}:browse:rejected"
    assert field in {e["field"] for e in rejected["data"]["errors"]}
    assert rejected["data"]["body"] == body.decode()
    assert harness.browse_sessions() == []
    assert [i.outcome for i in harness.host.invocations] == ["completed"]


class CrashingPublisher(EventPublisher):
    crash_at = ""
    crashed = False

    async def publish(self, events):
        if self.crash_at == "before_publish" and not self.crashed:
            self.crashed = True
            raise SimulatedCrash("before_publish")
        await super().publish(events)


@pytest.mark.parametrize("step", ["before_create", "after_create_before_record", "before_publish"])
async def test_redelivery_after_a_crash_creates_no_second_browse_session(unstarted_harness, step):
    harness = unstarted_harness
    parts = await Runtime.create(harness.settings)
    ledger = CrashingLedger.from_connection_string(harness.settings.ledger_connection,
                                                   harness.settings.ledger_table)
    assert isinstance(ledger, CrashingLedger)
    ledger.crash_at, ledger.crash_on_call, ledger.calls = step, 2, Counter()
    parts._closers.append(ledger)
    parts.ledger = ledger
    publisher = CrashingPublisher(parts.publisher._sender)
    publisher.crash_at = step
    parts.publisher = publisher
    await harness.start(parts)
    try:
        points = harness.fast_restore_points(3)  # the crash hits the second write of its kind
        events = await harness.run_browse(_browse(points, f"b-crash-{step}"))

        sessions = harness.browse_sessions()
        assert sorted(_points_of(harness, sessions)) == sorted(points), \
            f"{len(sessions)} browse sessions in Graph after a crash at {step}"
        assert [i.outcome for i in harness.host.invocations] == ["abandoned", "completed"]
        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids)), "a subscriber saw an event twice"
        created = of_type(events, "browse.session.created")
        assert {e["data"]["browseSessionId"] for e in created} == {s["id"] for s in sessions}
        assert of_type(events, "browse.session.failed") == []
    finally:
        await harness.stop()


async def test_a_lost_create_answer_is_reconciled_by_drive_and_time_and_the_session_adopted(harness):
    points = harness.fast_restore_points(3)
    harness.graph.lose_next_answer(1, operation="createBrowseSession")  # Graph creates it; we never hear
    events = await harness.run_browse(_browse(points, "b-lost-answer"))

    sessions = harness.browse_sessions()
    assert all("restorePointId" not in s for s in sessions)  # Graph's reads do not name the restore point
    assert sorted(_points_of(harness, sessions)) == sorted(points)  # one browse session per restore point
    assert [c["status"] for c in harness.graph_calls("createBrowseSession")] == [0, 201, 201]
    assert len(harness.graph_calls("getRestorePoint")) == 1  # only the row that was left `creating`
    created = of_type(events, "browse.session.created")
    assert sorted(e["data"]["restorePointId"] for e in created) == sorted(points)
    assert {e["data"]["browseSessionId"] for e in created} == {s["id"] for s in sessions}
    for event in created:
        [session] = [s for s in sessions if s["id"] == event["data"]["browseSessionId"]]
        assert _points_of(harness, [session]) == [event["data"]["restorePointId"]]
    assert of_type(events, "browse.session.failed") == []
    assert [i.outcome for i in harness.host.invocations] == ["completed", "completed"]


async def test_a_browse_session_on_another_restore_point_of_the_same_drive_is_never_adopted(harness):
    [point] = harness.fast_restore_points(1)
    other = _earlier_fast_point(harness, point)
    with _graph_http(harness) as http:  # another client browses the same OneDrive, 6 hours further back
        foreign = http.post("/oneDriveForBusinessBrowseSessions", json={"restorePointId": other["id"]}).json()
    # Our first create fails without an answer that says whether it was applied (it was not); the second one
    # is applied but its answer is lost. Each redelivery must tell the other client's session from ours.
    harness.graph.fail_next(1, status=504, code="gatewayTimeout", operation="createBrowseSession")
    harness.graph.lose_next_answer(1, operation="createBrowseSession")
    events = await harness.run_browse(_browse([point], "b-same-drive"))

    sessions = harness.browse_sessions()
    assert sorted(_points_of(harness, sessions, (other,))) == sorted([point, other["id"]])
    [created] = events
    assert created["type"] == "browse.session.created" and created["data"]["restorePointId"] == point
    assert created["data"]["browseSessionId"] != foreign["id"]
    [ours] = [s for s in sessions if s["id"] == created["data"]["browseSessionId"]]
    assert _points_of(harness, [ours]) == [point]
    assert [c["status"] for c in harness.graph_calls("createBrowseSession")] == [201, 504, 0]
    # The restore point was looked up by the first reconcile only; the second read it from the ledger.
    assert len(harness.graph_calls("getRestorePoint")) == 1
    assert [i.outcome for i in harness.host.invocations] == ["completed", "completed", "completed"]


async def test_a_session_still_creating_after_the_invocation_is_followed_by_a_scheduled_copy(harness, graph):
    graph.admin.set_clock_scale(0)  # Graph's clock stands still: the session stays `creating`
    [point] = harness.fast_restore_points(1)
    await harness.send(_browse([point], "b-slow-create"), queue="browse-requests")
    await eventually(lambda: len(harness.host.invocations) >= 1, timeout=30)
    assert await harness.drain_events() == []  # nothing yet: the session is still `creating`
    graph.admin.advance(seconds=5)
    await harness.settle()
    [created] = await harness.drain_events()

    assert created["type"] == "browse.session.created"
    assert len(harness.browse_sessions()) == 1
    outcomes = [i.outcome for i in harness.host.invocations]
    assert len(outcomes) >= 2 and set(outcomes) == {"completed"}


async def test_a_session_still_creating_past_the_retry_budget_is_reported_failed(graph, service_bus,
                                                                                 settings_env):
    settings_env["RETRY_MAX_ATTEMPTS"] = "2"
    harness = Harness(settings_env, graph.admin, service_bus.connection_string, standin=service_bus)
    await harness.start()
    try:
        graph.admin.set_clock_scale(0)
        [point] = harness.fast_restore_points(1)
        [failed] = await harness.run_browse(_browse([point], "b-never-ready"))

        assert failed["type"] == "browse.session.failed"
        error = failed["data"]["error"]
        assert error["code"] == "BrowseSessionStillCreating" and error["retryBudgetExhausted"] is True
        assert "gave up after 2 attempts" in error["message"]
        assert failed["data"]["browseSessionId"] == harness.browse_sessions()[0]["id"]
        assert [i.outcome for i in harness.host.invocations] == ["completed", "completed"]
    finally:
        await harness.stop()


async def test_a_transient_graph_failure_on_create_is_retried_without_a_second_session(harness, graph):
    [point] = harness.fast_restore_points(1)
    graph.admin.fail_next(count=1, status=503, code="serviceNotAvailable", operation="createBrowseSession")
    events = await harness.run_browse(_browse([point], "b-flaky"))

    [created] = events
    assert created["type"] == "browse.session.created"
    assert len(harness.browse_sessions()) == 1
    assert [i.outcome for i in harness.host.invocations] == ["completed", "completed"]


async def test_the_browse_command_pages_through_a_large_folder(harness, monkeypatch, capsys):
    [point] = harness.fast_restore_points(1)
    [created] = await harness.run_browse(_browse([point], "b-cli"))
    session_id = created["data"]["browseSessionId"]

    code, top, _ = await _run_cli(monkeypatch, capsys, harness, session_id)
    assert code == 0 and top[0].split() == ["type", "name", "items/size", "itemKey"]
    [library] = top[1:]
    assert library.startswith("documentLibrary") and "Documents" in library
    code, folders, _ = await _run_cli(monkeypatch, capsys, harness, session_id, "--item-key", library.split()[-1])
    [large] = [row for row in folders if row.startswith("folder") and "Large folder" in row]
    large_key, item_count = large.split()[-1], int(large.split()[-3])
    assert item_count > 1000

    code, rows, notes = await _run_cli(monkeypatch, capsys, harness, session_id, "--item-key", large_key, "--all")
    assert code == 0 and len(rows) - 1 == item_count
    assert len({row.split()[-1] for row in rows[1:]}) == item_count  # every item once
    assert f"{item_count} of {item_count} items" in notes

    code, rows, notes = await _run_cli(monkeypatch, capsys, harness, session_id, "--item-key", large_key,
                                       "--page-size", "500")
    assert code == 0 and len(rows) - 1 == 500 and "more follow" in notes


async def test_the_browse_command_on_an_expired_session_says_so(harness, graph, monkeypatch, capsys):
    [point] = harness.fast_restore_points(1)
    [created] = await harness.run_browse(_browse([point], "b-expired"))
    graph.admin.advance(seconds=BROWSE_TTL_SECONDS + 60)

    code, rows, notes = await _run_cli(monkeypatch, capsys, harness, created["data"]["browseSessionId"])
    assert code == 1 and rows == []
    assert "expire" in notes and "BrowseSessionNotFound" in notes
