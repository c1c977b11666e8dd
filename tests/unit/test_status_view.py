"""The status projection: what an operator reads about a request, from the ledger's records alone."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from orchestrators.activation.records import ACTIVATED, QUEUED, TrackedSession
from orchestrators.kernel.step import StepState
from orchestrators.restore.records import BatchRecord
from orchestrators.status import http, view
from orchestrators.status.page import CONTENT_SECURITY_POLICY, PAGE, SCRIPT, STYLE

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
FIELDS = {"requestId", "incidentId", "requestedBy", "reason", "receivedDateTime", "updatedDateTime", "state",
          "sessions", "sessionTotals", "artifactTotals", "unresolved", "lastError"}
SESSION_FIELDS = {"index", "sessionId", "workload", "destinationType", "restoreJobType", "artifactCount", "status",
                  "queuePosition", "awaitingApproval", "error"}


def header(state: str = "accepted", **extra: object) -> view.RequestHeader:
    values: dict = {"request_id": "r1", "incident_id": "INC-1", "requested_by": "playbook", "reason": None,
                    "state": state, "received_at": NOW - timedelta(minutes=5), "changed_at": NOW - timedelta(minutes=4)}
    values.update(extra)
    return view.RequestHeader(**values)


def batch(index: int, state: StepState = StepState.DONE, session: bool = True, points: int = 2,
          destination: str = "new", **extra: object) -> BatchRecord:
    ids = tuple(f"rp-{index}-{n}" for n in range(points))
    return BatchRecord(request_id="r1", index=index, destination_type=destination, restore_point_ids=ids,
                       state=state, session_id=f"s{index}" if session else None, **extra)


def test_every_session_reports_its_current_status_and_totals_add_up():
    batches = [batch(0), batch(1), batch(2), batch(3), batch(4, StepState.FAILED, session=False,
                                                              error={"status": 400, "code": "InvalidRestorePoint",
                                                                     "message": "bad", "headers": "secret"})]
    rows = view.RequestRows(header(activate=True), batches,
                            {0: view.Outcome(0, "s0", "completed", {"succeeded": 2}, NOW)})
    activation = view.Activation(holders={"s1": {"state": "activated", "since": NOW.isoformat()},
                                          "s2": {"state": "reserved"}},
                                 queue_positions={"s3": 1},
                                 tracked={"s1": TrackedSession("s1", "r1", 1, status="active", activation=ACTIVATED)})
    status = view.request_status(rows, activation, NOW)
    assert set(status) == FIELDS
    assert all(set(s) == SESSION_FIELDS for s in status["sessions"])
    assert [s["status"] for s in status["sessions"]] == ["completed", "active", "activating", "waiting",
                                                          "createFailed"]
    assert status["sessions"][3]["queuePosition"] == 1
    assert status["state"] == "inProgress"
    assert status["sessionTotals"] == {"completed": 1, "active": 1, "activating": 1, "waiting": 1, "createFailed": 1}
    assert status["artifactTotals"] == {"succeeded": 2, "active": 2, "activating": 2, "waiting": 2,
                                        "createFailed": 2}
    assert status["lastError"] == {"status": 400, "code": "InvalidRestorePoint", "message": "bad"}
    assert status["updatedDateTime"] == "2026-12-03T12:00:00Z"


def test_a_request_is_completed_when_every_created_session_ended():
    rows = view.RequestRows(header(), [batch(0), batch(1, StepState.FAILED, session=False)],
                            {0: view.Outcome(0, "s0", "completedWithError", {"succeeded": 1, "failed": 1})})
    status = view.request_status(rows, view.Activation(), NOW)
    assert status["state"] == "completed"
    assert status["artifactTotals"] == {"succeeded": 1, "failed": 1, "createFailed": 2}


def test_open_requests_are_creating_while_a_batch_is_marked_and_retrying_when_quiet():
    creating = view.RequestRows(header("open"), [batch(0, StepState.ACTING, session=False)], {})
    assert view.request_status(creating, view.Activation(), NOW)["state"] == "creating"
    quiet = view.RequestRows(header("open"), [batch(0, StepState.PLANNED, session=False)], {})
    assert view.request_status(quiet, view.Activation(), NOW)["state"] == "retrying"
    assert view.request_status(quiet, view.Activation(), NOW)["sessions"][0]["status"] == "planned"
    failed = view.RequestRows(header("failed"), [batch(0, StepState.PLANNED, session=False)], {})
    assert view.request_status(failed, view.Activation(), NOW)["state"] == "failed"


def test_in_place_sessions_held_for_approval_are_drafts_awaiting_it():
    rows = view.RequestRows(header(activate=True), [batch(0, destination="inPlace"), batch(1)], {})
    status = view.request_status(rows, view.Activation(), NOW, in_place_requires_approval=True)
    assert [(s["status"], s["awaitingApproval"]) for s in status["sessions"]] == [("draft", True), ("waiting", False)]


def test_only_sessions_nothing_else_speaks_for_need_their_tracking_row():
    rows = view.RequestRows(header(activate=False), [batch(0), batch(1), batch(2), batch(3, StepState.PLANNED,
                                                                                          session=False)],
                            {0: view.Outcome(0, "s0", "completed", {})})
    activation = view.Activation(queue_positions={"s1": 4})
    assert view.needs_tracking_row(rows, activation) == ["s2"]  # it may be waiting behind the queue head read
    assert view.needs_tracking_row(rows, activation, queue_complete=True) == []  # then it is a draft
    assert view.request_status(rows, activation, NOW)["sessions"][2]["status"] == "draft"
    tracked = view.Activation(queue_positions={"s1": 4},
                              tracked={"s2": TrackedSession("s2", "r1", 2, activation=QUEUED)})
    assert view.request_status(rows, tracked, NOW)["sessions"][2]["status"] == "waiting"


def test_the_incident_list_adds_up_its_requests_and_puts_the_newest_first():
    a = {"sessionTotals": {"active": 2}, "artifactTotals": {"active": 4}, "updatedDateTime": "2026-12-03T10:00:00Z"}
    b = {"sessionTotals": {"active": 1, "completed": 1}, "artifactTotals": {"succeeded": 3},
         "updatedDateTime": "2026-12-03T11:00:00Z"}
    old = view.incident_entry("INC-old", [a])
    new = view.incident_entry("INC-new", [a, b])
    assert new == {"incidentId": "INC-new", "requestCount": 2, "sessionTotals": {"active": 3, "completed": 1},
                   "artifactTotals": {"active": 4, "succeeded": 3}, "lastUpdatedDateTime": "2026-12-03T11:00:00Z"}
    assert [e["incidentId"] for e in view.incidents_list([old, new])] == ["INC-new", "INC-old"]


def test_capacity_lists_the_slot_holders_and_a_pause_only_while_it_lasts():
    holders = {"s1": {"requestId": "r1", "since": "2026-12-03T11:00:00+00:00", "state": "activated"}}
    answer = view.capacity_status(25, holders, 7, NOW - timedelta(seconds=1), NOW)
    assert answer == {"maxActiveSessions": 25, "active": [{"sessionId": "s1", "requestId": "r1",
                                                           "workload": "oneDrive",
                                                           "since": "2026-12-03T11:00:00+00:00"}],
                      "waiting": 7, "pausedUntil": None}


def test_malformed_ids_are_refused_with_400_before_the_ledger_is_read():
    bad_request = asyncio.run(http.answer("restore", {"requestId": "has space"}, reader=object()))
    assert bad_request.status == 400
    assert json.loads(bad_request.body) == {"error": {"code": "invalidRequestId",
                                                      "message": bad_request.body and json.loads(
                                                          bad_request.body)["error"]["message"]}}
    bad_incident = asyncio.run(http.answer("incident", {"incidentId": "x" * 129}, reader=object()))
    assert bad_incident.status == 400 and json.loads(bad_incident.body)["error"]["code"] == "invalidIncidentId"


def test_the_dashboard_is_self_contained_and_allowed_by_its_own_policy():
    page = asyncio.run(http.answer("dashboard", {}))
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert f"<script>{SCRIPT}</script>" in PAGE and f"<style>{STYLE}</style>" in PAGE
    for external in ("http://", "https://", "src=", "<link"):
        assert external not in PAGE
    assert "innerHTML" not in SCRIPT  # data becomes text nodes only
