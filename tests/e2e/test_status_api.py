"""Status over HTTP: an operator follows a request through the host runner's HTTP routes while it runs."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from orchestrators.status.console import show
from orchestrators.status.reader import StatusReader
from tests.e2e.harness import Harness

pytestmark = pytest.mark.timeout(180)

SESSION_SECONDS = 300  # longer than the emulator's activating + scheduled + in-progress durations


async def start(graph, service_bus, settings_env, **settings: str) -> Harness:
    settings_env.update(settings)
    harness = Harness(settings_env, graph.admin, service_bus.connection_string, standin=service_bus)
    return await harness.start()


def client(harness: Harness) -> httpx.AsyncClient:
    assert harness.host is not None and harness.host.http_url is not None
    return httpx.AsyncClient(base_url=harness.host.http_url + "/", params={"code": harness.host.http_key},
                             timeout=30)


async def test_a_request_is_followed_from_waiting_to_completed(graph, service_bus, settings_env):
    harness = await start(graph, service_bus, settings_env, MAX_ARTIFACTS_PER_SESSION="2", MAX_ACTIVE_SESSIONS="2")
    try:
        points = harness.restore_points(5)
        await harness.run({"requestId": "status-r1", "incidentId": "INC-77", "requestedBy": "bridge",
                           "reason": "ransomware", "activate": True,
                           "artifacts": [{"restorePointId": p} for p in points]})
        async with client(harness) as http:
            answer = await http.get("restores/status-r1")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("application/json")
            status = answer.json()
            assert status["state"] == "inProgress" and status["incidentId"] == "INC-77"
            assert status["requestedBy"] == "bridge" and status["lastError"] is None
            assert [s["artifactCount"] for s in status["sessions"]] == [2, 2, 1]
            assert [s["status"] for s in status["sessions"]][2] == "waiting"
            assert status["sessions"][2]["queuePosition"] == 1
            assert {s["status"] for s in status["sessions"][:2]} <= {"activating", "active"}
            assert all(s["sessionId"] for s in status["sessions"])
            restore_points = set(points)
            assert not any(p in answer.text for p in restore_points)  # restore points are counted, not listed

            capacity = (await http.get("capacity")).json()
            assert capacity["maxActiveSessions"] == 2 and len(capacity["active"]) == 2
            assert capacity["waiting"] == 1 and capacity["pausedUntil"] is None
            assert {a["requestId"] for a in capacity["active"]} == {"status-r1"}

            incident = (await http.get("incidents/INC-77")).json()
            assert incident["incidentId"] == "INC-77"
            assert [r["requestId"] for r in incident["requests"]] == ["status-r1"]
            listed = (await http.get("incidents")).json()
            assert isinstance(listed, list) and listed[0]["incidentId"] == "INC-77"
            assert listed[0]["requestCount"] == 1 and sum(listed[0]["sessionTotals"].values()) == 3

            for _ in range(4):
                harness.graph.advance(seconds=SESSION_SECONDS)
                await harness.host.run_timer("session_tracker")
            done = (await http.get("restores/status-r1")).json()
            assert done["state"] == "completed"
            assert [s["status"] for s in done["sessions"]] == ["completed"] * 3
            assert all(s["queuePosition"] is None for s in done["sessions"])
            assert done["sessionTotals"] == {"completed": 3}
            assert sum(done["artifactTotals"].values()) == 5
            assert (await http.get("capacity")).json()["active"] == []

        # The CLI reads the ledger the same way: its --json is the route's answer, its table names every session.
        assert harness.runtime is not None
        reader = StatusReader.from_settings(harness.runtime.ledger.table, harness.settings)
        printed = io.StringIO()
        assert await show(reader, "status-r1", as_json=True, watch=True, out=printed) == 0
        assert json.loads(printed.getvalue()) == done
        table = io.StringIO()
        assert await show(reader, "INC-77", out=table) == 0
        assert "request status-r1" in table.getvalue() and "5/5 artifacts settled" in table.getvalue()
        assert all(s["sessionId"] in table.getvalue() for s in done["sessions"])
        assert await show(reader, "nothing-here", out=io.StringIO()) == 1
    finally:
        await harness.stop()


async def test_unknown_malformed_and_unauthorised_calls_are_told_apart(graph, service_bus, settings_env):
    harness = await start(graph, service_bus, settings_env)
    try:
        async with client(harness) as http:
            unknown = await http.get("restores/no-such-request")
            assert unknown.status_code == 404
            assert unknown.json()["error"]["code"] == "requestNotFound"
            assert (await http.get("incidents/INC-none")).status_code == 404
            malformed = await http.get("restores/has%20a%20space")
            assert malformed.status_code == 400 and set(malformed.json()["error"]) == {"code", "message"}
            assert (await http.get("incidents")).json() == []
            assert (await http.post("capacity")).status_code in (404, 405)
        assert harness.host is not None and harness.host.http_url is not None
        async with httpx.AsyncClient(timeout=10) as anonymous:
            assert (await anonymous.get(harness.host.http_url + "/capacity")).status_code == 401
    finally:
        await harness.stop()
