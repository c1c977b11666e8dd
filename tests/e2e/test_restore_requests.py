"""Restore requests end to end: a message in, sessions in the Graph emulator, events out."""

from __future__ import annotations

import base64
import json
from collections import Counter

import pytest

from tests.e2e.harness import of_type

pytestmark = pytest.mark.timeout(240)


def _request(points: list[str], request_id: str, **extra):
    return {"requestId": request_id, "incidentId": "INC-4711", "requestedBy": "e2e",
            "artifacts": [{"restorePointId": rp} for rp in points], **extra}


def _graph_sessions_for(harness, points: set[str]) -> list[dict]:
    return [s for s in harness.graph_sessions()
            if {a["restorePointId"] for a in s.get("artifacts", [])} & points]


async def test_one_artifact_creates_one_draft_session_and_reports_it(harness):
    [point] = harness.restore_points(1)
    events = await harness.run(_request([point], "r-one"))

    [created] = of_type(events, "restore.session.created")
    [accepted] = of_type(events, "restore.request.accepted")
    assert created["data"]["restorePointIds"] == [point]
    assert created["data"]["status"] == "draft"
    assert created["data"]["index"] == 0 and created["data"]["sessionCount"] == 1
    sessions = harness.graph_sessions()
    assert [s["id"] for s in sessions] == [created["data"]["sessionId"]]
    assert accepted["data"]["sessions"] == [{"index": 0, "sessionId": created["data"]["sessionId"]}]
    assert accepted["data"]["createdSessionCount"] == 1


async def test_events_follow_the_cloudevents_contract_and_service_bus_properties(harness):
    [point] = harness.restore_points(1)
    events = await harness.run(_request([point], "r-shape"))
    for event in events:
        assert event["specversion"] == "1.0" and event["source"] == "/restore-orchestrator"
        assert event["subject"] == "r-shape" and event["datacontenttype"] == "application/json"
        assert event["time"].endswith("Z")
        message = event["_message"]
        assert message["message_id"] == event["id"]
        assert message["subject"] == event["type"]
        assert message["correlation_id"] == "INC-4711"
        assert message["content_type"] == "application/cloudevents+json; charset=utf-8"
        assert message["application_properties"]["type"] == event["type"]
        assert message["application_properties"]["requestId"] == "r-shape"
        assert message["application_properties"]["incidentId"] == "INC-4711"
    [created] = of_type(events, "restore.session.created")
    assert created["id"] == "r-shape:session:0"
    assert created["_message"]["application_properties"]["sessionId"] == created["data"]["sessionId"]
    assert of_type(events, "restore.request.accepted")[0]["id"] == "r-shape:accepted"


@pytest.mark.parametrize(("count", "sizes"), [(50, [50]), (51, [50, 1])])
async def test_artifacts_are_cut_into_sessions_of_at_most_fifty(harness, count, sizes):
    points = harness.restore_points(count)
    events = await harness.run(_request(points, f"r-{count}"))
    created = sorted(of_type(events, "restore.session.created"), key=lambda e: e["data"]["index"])
    assert [len(e["data"]["restorePointIds"]) for e in created] == sizes
    in_graph = sorted(len(s["artifacts"]) for s in harness.graph_sessions())
    assert in_graph == sorted(sizes)


async def test_mixed_destinations_get_separate_sessions(harness):
    points = harness.restore_points(4)
    body = {"requestId": "r-mixed", "destinationType": "new", "artifacts": [
        {"restorePointId": points[0]}, {"restorePointId": points[1], "destinationType": "inPlace"},
        {"restorePointId": points[2]}, {"restorePointId": points[3], "destinationType": "inPlace"}]}
    events = await harness.run(body)
    created = {e["data"]["destinationType"]: set(e["data"]["restorePointIds"])
               for e in of_type(events, "restore.session.created")}
    assert created == {"new": {points[0], points[2]}, "inPlace": {points[1], points[3]}}
    for session in harness.graph_sessions():
        assert len({a["destinationType"] for a in session["artifacts"]}) == 1


async def test_a_restore_point_listed_twice_is_restored_once(harness):
    points = harness.restore_points(2)
    events = await harness.run(_request([points[0], points[1], points[0]], "r-dupes"))
    [created] = of_type(events, "restore.session.created")
    assert sorted(created["data"]["restorePointIds"]) == sorted(points)
    [session] = harness.graph_sessions()
    assert len(session["artifacts"]) == 2


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b'{"requestId": "bad-1", "artifacts": [{"restorePointId": "x"}', "(body)", "not valid JSON"),
        (json.dumps({"requestId": "bad-2", "artifacts": [{"restorePointId": 5}], "dryRun": "no"}).encode(),
         "artifacts[0].restorePointId", "non-empty string"),
        (json.dumps({"requestId": "bad-3", "artifacts": [{"restorePointId": "x"}], "destinaton": "new"}).encode(),
         "destinaton", "not a field"),
        (json.dumps({"requestId": "bad-4", "artifacts": [{"restorePointId": f"p{i}"} for i in range(10_001)]})
         .encode(), "artifacts", "at most 10000"),
        (b"\xff\xfe\xfa not text", "(body)", "not UTF-8"),  # bound as bytes: it arrives as sent
        (b" ", "(body)", "empty"),
        (json.dumps({"requestId": "bad-7", "selection": {"users": ["a@contoso.com"],
                                                          "pointInTime": "2026-11-20T03:00:00"}}).encode(),
         "selection.pointInTime", "zone"),
    ],
    ids=["truncated-json", "wrong-types", "unknown-field", "10001-artifacts", "not-utf8", "empty", "selection"],
)
async def test_bad_input_ends_in_one_rejection_naming_the_problem(harness, request, body, field, words):
    # One message id per case: on a broker that outlives the test (E2E_SERVICEBUS=docker) the events topic's
    # duplicate detection would drop a second "msg-bad:rejected".
    events = await harness.run(body, message_id=f"msg-bad-{request.node.callspec.id}")
    [rejected] = events
    assert rejected["type"] == "restore.request.rejected"
    problems = {e["field"]: e["message"] for e in rejected["data"]["errors"]}
    assert field in problems and words in problems[field]
    if rejected["data"].get("bodyEncoding") == "base64":
        assert base64.b64decode(rejected["data"]["body"]) == body
    elif not rejected["data"].get("bodyTruncated"):
        assert rejected["data"]["body"] == body.decode()
    assert harness.graph_sessions() == []
    outcomes = [i.outcome for i in harness.host.invocations]
    assert outcomes == ["completed"]  # settled once: no redelivery loop


async def test_a_body_with_keys_named_like_trigger_metadata_is_judged_on_its_own_content(harness):
    """Under the Functions host a string-bound JSON body would have these keys merged into the trigger metadata
    (and "DeliveryCount": "x" would fail the invocation before the app runs); bound as bytes it arrives as sent."""
    body = json.dumps({"requestId": "r-meta", "DeliveryCount": "x", "UserProperties": "x", "MessageId": "forged",
                       "ApplicationProperties": {"restoreAttempt": 99, "restoreRequestId": "someone-else"},
                       "artifacts": [{"restorePointId": "p-1"}]}).encode()
    events = await harness.run(body, message_id="msg-meta")
    [rejected] = events
    assert rejected["type"] == "restore.request.rejected" and rejected["id"] == "r-meta:rejected"
    fields = {e["field"] for e in rejected["data"]["errors"]}
    assert fields == {"DeliveryCount", "UserProperties", "MessageId", "ApplicationProperties"}
    assert rejected["data"]["body"] == body.decode()
    [invocation] = [i for i in harness.host.invocations if i.function == "restore_requests"]
    assert (invocation.message_id, invocation.delivery_count, invocation.outcome) == ("msg-meta", 1, "completed")


async def test_a_dry_run_plans_without_writing_to_graph(harness):
    points = harness.restore_points(120)
    harness.graph.clear_calls()
    events = await harness.run(_request(points, "r-dry", dryRun=True))
    [planned] = events
    assert planned["type"] == "restore.request.planned" and planned["id"] == "r-dry:planned"
    assert [len(s["restorePointIds"]) for s in planned["data"]["sessions"]] == [50, 50, 20]
    assert harness.graph.calls() == []


async def test_the_same_request_twice_creates_nothing_new_and_republishes_the_same_ids(harness):
    points = harness.restore_points(60)
    first = await harness.run(_request(points, "r-twice"), message_id="m-1")
    writes_before = [c for c in harness.graph.calls() if c["method"] != "GET"]
    second = await harness.run(_request(points, "r-twice"), message_id="m-2")
    writes_after = [c for c in harness.graph.calls() if c["method"] != "GET"]
    assert len(harness.graph_sessions()) == 2
    assert writes_after == writes_before
    assert {e["id"] for e in first} == {"r-twice:session:0", "r-twice:session:1", "r-twice:accepted"}
    assert second == []  # re-published with the same ids, dropped by the topic's duplicate detection


async def test_a_reused_request_id_with_another_payload_is_rejected_as_a_conflict(harness):
    points = harness.restore_points(3)
    await harness.run(_request(points[:2], "r-reuse"), message_id="m-a")
    events = await harness.run(_request(points[2:], "r-reuse"), message_id="m-b")
    [rejected] = events
    assert rejected["type"] == "restore.request.rejected" and rejected["id"] == "m-b:rejected"
    assert rejected["data"]["requestId"] == "r-reuse"
    assert "already used" in rejected["data"]["errors"][0]["message"]
    assert len(harness.graph_sessions()) == 1


async def test_one_invalid_restore_point_among_fifty_valid_ones_is_isolated(harness):
    points = harness.restore_points(50)
    bad = harness.graph.samples(1)["expiredRestorePoints"][0]["id"]
    # 51 restore points: batch 0 holds the expired one and 49 valid ones, batch 1 the last valid one.
    events = await harness.run(_request([*points[:20], bad, *points[20:]], "r-isolate"))
    created = sorted(of_type(events, "restore.session.created"), key=lambda e: e["data"]["index"])
    [failed] = of_type(events, "restore.session.failed")
    assert [len(e["data"]["restorePointIds"]) for e in created] == [49, 1]
    assert sorted(rp for e in created for rp in e["data"]["restorePointIds"]) == sorted(points)
    assert failed["data"]["restorePointIds"] == [bad]
    assert failed["data"]["error"]["code"] == "InvalidRestorePoint"
    assert failed["data"]["error"]["status"] == 400 and failed["data"]["error"]["graphRequestId"]
    assert failed["id"] == "r-isolate:session:0:failed"
    in_graph = sorted(rp for s in harness.graph_sessions() for rp in (a["restorePointId"] for a in s["artifacts"]))
    assert in_graph == sorted(points)
    [accepted] = of_type(events, "restore.request.accepted")
    assert accepted["data"]["sessions"][0]["failedRestorePointIds"] == [bad]
    assert accepted["data"]["restoringArtifactCount"] == 50 and accepted["data"]["failedArtifactCount"] == 1


async def test_two_restore_points_of_one_drive_are_split_and_the_second_reported(harness):
    samples = harness.graph.samples(3)
    first, other = samples["restorePoints"][0], samples["restorePoints"][1]
    same_drive = next(p for p in samples["fastRestorePoints"] if p["protectionUnitId"] == first["protectionUnitId"])
    events = await harness.run(_request([first["id"], other["id"], same_drive["id"]], "r-same-drive"))
    [created] = of_type(events, "restore.session.created")
    [failed] = of_type(events, "restore.session.failed")
    assert sorted(created["data"]["restorePointIds"]) == sorted([first["id"], other["id"]])
    assert failed["data"]["failures"][0]["restorePointId"] == same_drive["id"]
    assert failed["data"]["failures"][0]["code"] == "DuplicateArtifactInList"


async def test_an_unknown_restore_point_alone_fails_its_batch_with_graphs_error(harness):
    events = await harness.run(_request(["00000000-0000-0000-0000-00000000dead"], "r-unknown"))
    [failed] = of_type(events, "restore.session.failed")
    assert failed["data"]["error"]["code"] == "InvalidRestorePoint"
    assert of_type(events, "restore.session.created") == []
    [accepted] = of_type(events, "restore.request.accepted")
    assert accepted["data"]["failedSessionCount"] == 1
    [completed] = of_type(events, "restore.request.completed")  # nothing to wait for: complete at once
    assert completed["data"]["sessionTotals"] == {"notCreated": 1}
    assert harness.graph_sessions() == []


async def test_a_429_storm_is_waited_out_with_retry_after_and_creates_each_session_once(harness):
    points = harness.restore_points(120)
    # Fifteen throttled answers in a row, each asking for 1 s: more than one invocation may wait out
    # (GRAPH_THROTTLE_WAIT_LIMIT_SECONDS=3), so the request must come back as a scheduled copy.
    harness.graph.fail_next(15, status=429, code="TooManyRequests", operation="createRestoreSession",
                            retry_after=1)
    events = await harness.run(_request(points, "r-429"), timeout=120)
    created = of_type(events, "restore.session.created")
    assert sorted(e["data"]["index"] for e in created) == [0, 1, 2]
    assert len(harness.graph_sessions()) == 3
    assert len([c for c in harness.graph.calls() if c["status"] == 429]) == 15
    deliveries = [i for i in harness.host.invocations if i.function == "restore_requests"]
    assert len(deliveries) >= 2  # the original and at least one scheduled copy
    assert all(i.outcome == "completed" for i in deliveries)
    # The first delivery waited out 3 s of throttling, then scheduled its copy Retry-After (1 s) later.
    assert deliveries[1].started_at - deliveries[0].started_at >= 3.9


async def test_transient_failures_beyond_the_budget_end_in_request_failed(graph, service_bus, settings_env):
    from tests.e2e.harness import Harness

    settings_env["RETRY_MAX_ATTEMPTS"] = "3"
    harness = Harness(settings_env, graph.admin, service_bus.connection_string, standin=service_bus)
    await harness.start()
    try:
        points = harness.restore_points(2)
        graph.admin.fail_next(1000, status=503, code="serviceNotAvailable", operation="createRestoreSession")
        events = await harness.run(_request(points, "r-budget"), timeout=120)
        [failed] = of_type(events, "restore.request.failed")
        assert failed["id"] == "r-budget:failed:3"
        assert failed["data"]["lastError"]["status"] == 503
        assert failed["data"]["remaining"][0]["restorePointIds"] == points
        assert of_type(events, "restore.request.accepted") == []
        assert len([i for i in harness.host.invocations if i.function == "restore_requests"]) == 3
    finally:
        await harness.stop()


async def test_ten_thousand_artifacts_make_two_hundred_sessions(harness):
    harness.graph.reset(seed=11, drives=10_400)  # a few seeded drives are unprotected
    points = harness.restore_points(10_000)
    assert len(set(points)) == 10_000
    events = await harness.run(_request(points, "r-10k"), timeout=200)
    created = of_type(events, "restore.session.created")
    assert len(created) == 200
    assert Counter(len(e["data"]["restorePointIds"]) for e in created) == {50: 200}
    assert len(harness.graph_sessions()) == 200
    [accepted] = of_type(events, "restore.request.accepted")
    assert accepted["data"]["createdSessionCount"] == 200
