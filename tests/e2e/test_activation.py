"""Activation under Graph's 25-session cap, and tracking every session to the end."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from orchestrators.app.runtime import Runtime
from orchestrators.tracking.tracker import SessionTracker
from tests.e2e.harness import Harness, SimulatedCrash, of_type

pytestmark = pytest.mark.timeout(300)

SESSION_SECONDS = 300  # longer than the emulator's activating + scheduled + in-progress durations


def _request(points, request_id, **extra):
    return {"requestId": request_id, "incidentId": "INC-9", "artifacts": [{"restorePointId": p} for p in points],
            **extra}


async def _start(graph, service_bus, settings_env, runtime_factory=None, **settings) -> Harness:
    settings_env.update({k: str(v) for k, v in settings.items()})
    harness = Harness(settings_env, graph.admin, service_bus.connection_string, standin=service_bus)
    parts = await runtime_factory(harness.settings) if runtime_factory else None
    await harness.start(parts)
    return harness


async def _track_until_done(harness: Harness, rounds: int = 40, cap: int = 25) -> list[dict]:
    """Advance Graph's clock and run the tracker until nothing is tracked; check the cap at every step."""
    events: list[dict] = []
    for _ in range(rounds):
        state = harness.graph.state(sessions=False)
        assert state["maxActiveObserved"] <= cap, state
        if state["sessionCount"] and not (set(state["statusCounts"]) & {"draft", "activating", "active"}):
            break
        harness.graph.advance(seconds=SESSION_SECONDS)
        await harness.host.run_timer("session_tracker")
        events += await harness.drain_events()
    else:
        raise AssertionError("sessions did not finish")
    await harness.host.run_timer("session_tracker")  # the run that sees the last ones end
    events += await harness.drain_events()
    return events


def _graph_outcomes(harness: Harness) -> dict[str, dict[str, str]]:
    return {s["id"]: {a["restorePointId"]: a["status"] for a in s["artifacts"]} for s in harness.graph_sessions()}


async def test_three_hundred_sessions_never_exceed_the_cap_and_all_end_reported(graph, service_bus, settings_env):
    graph.admin.reset(seed=11, drives=700, active_cap=25, clock_scale=1.0)
    harness = await _start(graph, service_bus, settings_env, MAX_ARTIFACTS_PER_SESSION=2)
    try:
        points = harness.restore_points(600)
        failing_drive = harness.graph.samples(1)["drives"][0]["id"]
        harness.graph.set_faults(artifact_failures={"ArtifactNotFound": 0.05},
                                 artifact_failure_targets={failing_drive: "ArtifactCannotBeRestored"}, seed=3)
        events = await harness.run(_request(points, "r-300", activate=True), timeout=240)
        assert len(of_type(events, "restore.session.created")) == 300
        assert len(of_type(events, "restore.session.activated")) == 25

        events += await _track_until_done(harness)
        state = harness.graph.state(sessions=False)
        assert state["maxActiveObserved"] == 25 and state["rejectedActivations"] == 0
        assert state["activations"] == 300
        assert set(state["statusCounts"]) <= {"completed", "completedWithError", "failed"}

        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids))
        completed = of_type(events, "restore.session.completed")
        assert len(completed) == 300
        in_graph = _graph_outcomes(harness)
        for event in completed:
            reported = {a["restorePointId"]: a["status"] for a in event["data"]["artifacts"]}
            assert reported == in_graph[event["data"]["sessionId"]]
            for artifact in event["data"]["artifacts"]:
                if artifact["status"] == "succeeded":
                    assert artifact["restoredSiteWebUrl"]
                else:
                    assert artifact["error"]["code"] in ("ArtifactNotFound", "ArtifactCannotBeRestored")
        statuses = Counter(e["data"]["status"] for e in completed)
        assert statuses["completedWithError"] + statuses["failed"] >= 1  # the injected failures show
        [request_done] = of_type(events, "restore.request.completed")
        assert sum(request_done["data"]["sessionTotals"].values()) == 300
        assert sum(request_done["data"]["artifactTotals"].values()) == 600
        assert request_done["data"]["sessionTotals"] == dict(statuses)
    finally:
        await harness.stop()


async def test_activation_requested_twice_activates_once(harness):
    points = harness.restore_points(6)
    events = await harness.run(_request(points, "r-approve"))
    assert of_type(events, "restore.session.activated") == []
    first = await harness.run({"requestId": "r-approve"}, message_id="approve-1", queue="activation-requests")
    await harness.send({"requestId": "r-approve"}, message_id="approve-2", queue="activation-requests")
    await harness.settle()
    second = await harness.drain_events()
    [accepted_first] = of_type(first, "activation.request.accepted")
    assert len(accepted_first["data"]["queued"]) == 1
    assert len(of_type(first, "restore.session.activated")) == 1
    [accepted_second] = of_type(second, "activation.request.accepted")
    assert accepted_second["data"]["queued"] == [] and len(accepted_second["data"]["alreadyActivated"]) == 1
    assert of_type(second, "restore.session.activated") == []
    assert harness.graph.state(sessions=False)["activations"] == 1


async def test_an_approval_by_session_ids_activates_those_drafts_only(harness):
    harness.settings_env["MAX_ARTIFACTS_PER_SESSION"] = "2"
    points = harness.restore_points(6)
    events = await harness.run(_request(points, "r-ids"))
    sessions = sorted(of_type(events, "restore.session.created"), key=lambda e: e["data"]["index"])
    # The runtime was built before the setting changed: one session of 6 points; approve it by id.
    chosen = sessions[0]["data"]["sessionId"]
    approval = await harness.run({"sessionIds": [chosen, "00000000-0000-0000-0000-000000000000"]},
                                 message_id="approve-ids", queue="activation-requests")
    [activated] = of_type(approval, "restore.session.activated")
    assert activated["data"]["sessionId"] == chosen
    [rejected] = of_type(approval, "activation.request.rejected")
    assert rejected["data"]["errors"][0]["field"] == "sessionIds[1]"
    statuses = {s["id"]: s["status"] for s in harness.graph.state()["sessions"]}
    assert statuses[chosen] == "activating"


async def test_a_bad_activation_request_is_rejected_with_the_reason(harness):
    events = await harness.run(b'{"requestId": "r-x", "sessionIds": ["a"]}', message_id="bad-activation",
                               queue="activation-requests")
    [rejected] = events
    assert rejected["type"] == "activation.request.rejected"
    assert "not both" in rejected["data"]["errors"][0]["message"]


async def test_an_approval_for_an_unknown_request_is_rejected(harness):
    [rejected] = await harness.run({"requestId": "never-sent"}, message_id="approve-unknown",
                                   queue="activation-requests")
    assert rejected["type"] == "activation.request.rejected"
    assert "no restore request" in rejected["data"]["errors"][0]["message"]


async def test_sessions_graph_refuses_for_the_cap_wait_their_turn(graph, service_bus, settings_env):
    # Other tools hold slots: Graph's own cap is 4 while ours is 25. Graph's 500 is the final word.
    graph.admin.reset(seed=11, drives=300, active_cap=4, clock_scale=1.0)
    harness = await _start(graph, service_bus, settings_env, ACTIVATION_BACKOFF_SECONDS="0")
    try:
        points = harness.restore_points(10)
        harness.settings_env["MAX_ARTIFACTS_PER_SESSION"] = "1"
        events = await harness.run(_request(points[:1], "r-cap-1", activate=True))
        assert len(of_type(events, "restore.session.activated")) == 1
        for n in range(2, 7):
            await harness.run(_request(points[n:n + 1], f"r-cap-{n}", activate=True))
        state = harness.graph.state(sessions=False)
        assert state["activeCount"] == 4 and state["rejectedActivations"] >= 1
        events = await _track_until_done(harness, cap=4)
        assert len(of_type(events, "restore.request.completed")) == 6
        assert harness.graph.state(sessions=False)["activations"] == 6
    finally:
        await harness.stop()


class CrashingTracker(SessionTracker):
    """Dies once, right after publishing a session's completion and before recording it."""

    crashed = False

    async def _settle(self, row, status, counts):
        if not CrashingTracker.crashed:
            CrashingTracker.crashed = True
            raise SimulatedCrash("tracker")
        await super()._settle(row, status, counts)


class RuntimeWithCrashingTracker(Runtime):
    def session_tracker(self) -> SessionTracker:
        coordinator = self.activation_coordinator()
        return CrashingTracker(self.settings, self.graph, self.ledger, coordinator.store, coordinator,
                               self.publisher)


async def test_a_tracker_crash_mid_run_loses_nothing(graph, service_bus, settings_env):
    CrashingTracker.crashed = False
    harness = await _start(graph, service_bus, settings_env, RuntimeWithCrashingTracker.create)
    try:
        points = harness.restore_points(150)
        events = await harness.run(_request(points, "r-crash", activate=True))
        harness.graph.advance(seconds=SESSION_SECONDS)
        invocation = await harness.host.run_timer("session_tracker", raise_errors=False)
        assert invocation.outcome == "failed" and CrashingTracker.crashed
        events += await harness.drain_events()
        events += await _track_until_done(harness)
        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids))
        assert len(of_type(events, "restore.session.completed")) == 3
        assert len(of_type(events, "restore.request.completed")) == 1
        store = harness.runtime.activation_coordinator().store
        assert await store.all_tracked() == []
        assert (await store.read_slots()).holders == {}
    finally:
        await harness.stop()


async def test_a_draft_nobody_approves_is_deleted_and_reported(graph, service_bus, settings_env):
    harness = await _start(graph, service_bus, settings_env, DRAFT_SESSION_MAX_AGE_HOURS="0.0003")
    try:
        points = harness.restore_points(2)
        events = await harness.run(_request(points, "r-stale"))
        [created] = of_type(events, "restore.session.created")
        await asyncio.sleep(1.5)
        await harness.host.run_timer("session_tracker")
        events = await harness.drain_events()
        [deleted] = of_type(events, "restore.session.deleted")
        assert deleted["data"]["sessionId"] == created["data"]["sessionId"]
        assert harness.graph_sessions() == []
        [done] = of_type(events, "restore.request.completed")
        assert done["data"]["sessionTotals"] == {"deleted": 1}
    finally:
        await harness.stop()


def _mixed_request(points, request_id):
    """Two restore points to a new location, two in place, one session each (MAX_ARTIFACTS_PER_SESSION=1)."""
    artifacts = [{"restorePointId": p, "destinationType": "new" if n < 2 else "inPlace"} for n, p in enumerate(points)]
    return {"requestId": request_id, "incidentId": "INC-9", "artifacts": artifacts, "activate": True}


def _by_destination(created: list[dict]) -> dict[str, list[str]]:
    ordered = sorted(created, key=lambda e: e["data"]["index"])
    return {kind: [e["data"]["sessionId"] for e in ordered if e["data"]["destinationType"] == kind]
            for kind in ("new", "inPlace")}


async def test_with_approval_required_activate_true_leaves_in_place_sessions_to_an_approval(
        graph, service_bus, settings_env):
    harness = await _start(graph, service_bus, settings_env, IN_PLACE_REQUIRES_APPROVAL="true",
                           MAX_ARTIFACTS_PER_SESSION=1)
    try:
        events = await harness.run(_mixed_request(harness.restore_points(4), "r-sod"))
        created = of_type(events, "restore.session.created")
        sessions = _by_destination(created)
        assert len(sessions["new"]) == 2 and len(sessions["inPlace"]) == 2
        for event in created:
            held = event["data"]["destinationType"] == "inPlace"
            assert event["data"].get("awaitingApproval") is (True if held else None)
        [accepted] = of_type(events, "restore.request.accepted")
        assert accepted["data"]["awaitingApproval"] == sessions["inPlace"]
        assert {e["data"]["sessionId"] for e in of_type(events, "restore.session.activated")} == set(sessions["new"])

        # The tracker follows the new-location sessions and leaves the in-place drafts alone.
        harness.graph.advance(seconds=60)
        await harness.host.run_timer("session_tracker")
        events += await harness.drain_events()
        statuses = {s["id"]: s["status"] for s in harness.graph.state()["sessions"]}
        assert [statuses[s] for s in sessions["inPlace"]] == ["draft", "draft"]
        assert all(statuses[s] != "draft" for s in sessions["new"])
        assert harness.graph.state(sessions=False)["activations"] == 2

        # The approval (an activation request naming the restore request) activates the rest, once each.
        approval = await harness.run({"requestId": "r-sod", "requestedBy": "approver"}, message_id="approve-sod",
                                     queue="activation-requests")
        [answer] = of_type(approval, "activation.request.accepted")
        assert sorted(answer["data"]["queued"]) == sorted(sessions["inPlace"])
        assert sorted(answer["data"]["alreadyActivated"]) == sorted(sessions["new"])
        assert {e["data"]["sessionId"] for e in of_type(approval, "restore.session.activated")} \
            == set(sessions["inPlace"])
        assert harness.graph.state(sessions=False)["activations"] == 4

        events += approval + await _track_until_done(harness)
        [done] = of_type(events, "restore.request.completed")
        assert sum(done["data"]["sessionTotals"].values()) == 4
        assert len(of_type(events, "restore.session.completed")) == 4
    finally:
        await harness.stop()


async def test_with_approval_required_an_approval_by_session_id_activates_that_session(
        graph, service_bus, settings_env):
    harness = await _start(graph, service_bus, settings_env, IN_PLACE_REQUIRES_APPROVAL="true",
                           MAX_ARTIFACTS_PER_SESSION=1)
    try:
        events = await harness.run(_mixed_request(harness.restore_points(4), "r-sod-ids"))
        sessions = _by_destination(of_type(events, "restore.session.created"))
        chosen, other = sessions["inPlace"]
        approval = await harness.run({"sessionIds": [chosen]}, message_id="approve-one", queue="activation-requests")
        [activated] = of_type(approval, "restore.session.activated")
        assert activated["data"]["sessionId"] == chosen
        statuses = {s["id"]: s["status"] for s in harness.graph.state()["sessions"]}
        assert statuses[chosen] == "activating" and statuses[other] == "draft"
    finally:
        await harness.stop()


async def test_without_the_policy_activate_true_activates_every_destination(graph, service_bus, settings_env):
    harness = await _start(graph, service_bus, settings_env, MAX_ARTIFACTS_PER_SESSION=1)
    try:
        events = await harness.run(_mixed_request(harness.restore_points(4), "r-no-sod"))
        created = of_type(events, "restore.session.created")
        assert len(created) == 4 and all("awaitingApproval" not in e["data"] for e in created)
        [accepted] = of_type(events, "restore.request.accepted")
        assert accepted["data"]["awaitingApproval"] == []
        assert len(of_type(events, "restore.session.activated")) == 4
    finally:
        await harness.stop()
