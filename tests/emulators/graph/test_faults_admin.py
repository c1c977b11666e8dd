"""Fault injection, the call log, reset/reseed, samples and the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import httpx
import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession

from emulators.graph import AdminClient

from .conftest import ODB, R
from .helpers import odata_error

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_fail_next_n_calls_then_the_endpoint_recovers(br, emu):
    emu.admin.fail_next(2, status=503, code="serviceNotAvailable", operation="createRestoreSession")
    for _ in range(2):
        with pytest.raises(ODataError) as info:
            await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
        assert odata_error(info.value)[:2] == (503, "serviceNotAvailable")
    await br.restore_sessions.get()  # other operations are untouched
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    assert created.id
    assert [c["status"] for c in emu.admin.calls()] == [503, 503, 200, 201]


async def test_fail_next_can_fake_the_cap_error_for_activate(br, emu, samples):
    emu.admin.fail_next(1, status=500, code="TooManyActiveRestoreSessions", path="*/restoreSessions/*/activate")
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    with pytest.raises(ODataError) as info:
        await br.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    assert odata_error(info.value)[:2] == (500, "TooManyActiveRestoreSessions")


async def test_rate_limit_answers_429_with_retry_after(http, emu):
    emu.admin.add_fault(name="throttle", operation="listRestoreSessions",
                        rateLimit={"requests": 3, "perSeconds": 60, "retryAfter": 7})
    statuses = []
    for _ in range(5):
        resp = await http.get(f"{R}/restoreSessions")
        statuses.append(resp.status_code)
    assert statuses == [200, 200, 200, 429, 429]
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()["error"]["code"] == "TooManyRequests"


async def test_sdk_retry_handler_rides_over_a_429_with_retry_after_zero(client_for, emu):
    emu.admin.fail_next(1, status=429, code="activityLimitReached", operation="listRestoreSessions", retry_after=0)
    br = client_for(max_retries=3).solutions.backup_restore
    listed = await br.restore_sessions.get()
    assert listed.value == []
    assert [c["status"] for c in emu.admin.calls()] == [429, 200]


async def test_error_rate_is_seeded_and_repeatable(http, emu):
    outcomes = []
    for _ in range(2):
        emu.admin.reset(seed=7, clock_scale=0.0)
        emu.admin.set_faults([{"operation": "listRestoreSessions", "errorRate": 0.5}])
        seq = [(await http.get(f"{R}/restoreSessions")).status_code for _ in range(20)]
        outcomes.append(seq)
    assert outcomes[0] == outcomes[1]
    assert {200, 503} == set(outcomes[0])


async def test_latency_is_added_to_matching_calls(http, emu):
    emu.admin.add_fault(method="GET", path="*/restoreSessions", latencyMs=150, jitterMs=10)
    t0 = time.perf_counter()
    await http.get(f"{R}/restoreSessions")
    assert time.perf_counter() - t0 >= 0.15


async def test_dropped_connection_closes_without_an_answer(emu):
    emu.admin.add_fault(operation="listRestoreSessions", dropRate=1.0)
    from emulators.graph import make_token

    transport = httpx.AsyncHTTPTransport(retries=0)
    async with httpx.AsyncClient(base_url=emu.base_url, transport=transport,
                                 headers={"Authorization": f"Bearer {make_token()}"}) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get(f"{R}/restoreSessions")
    assert emu.admin.calls()[-1]["status"] == 0


async def test_a_lost_answer_takes_effect_but_never_reaches_the_client(emu, samples):
    emu.admin.lose_next_answer(1, operation="createBrowseSession")
    from emulators.graph import make_token

    transport = httpx.AsyncHTTPTransport(retries=0)
    body = {"restorePointId": samples["fastRestorePoints"][0]["id"]}
    async with httpx.AsyncClient(base_url=emu.base_url, transport=transport,
                                 headers={"Authorization": f"Bearer {make_token()}"}) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post(f"{R}/oneDriveForBusinessBrowseSessions", json=body)
        [made] = (await c.get(f"{R}/oneDriveForBusinessBrowseSessions")).json()["value"]  # it was created
        again = await c.post(f"{R}/oneDriveForBusinessBrowseSessions", json=body)  # the rule is used up
    assert again.status_code == 201 and again.json()["id"] != made["id"]
    assert [c["status"] for c in emu.admin.calls()] == [0, 200, 201]
    assert emu.admin.calls()[0]["fault"] == "lose-answer-createBrowseSession"


async def test_call_log_records_each_graph_call_and_can_be_cleared(http, emu):
    resp = await http.post(ODB, json={}, headers={"client-request-id": "c-1"})
    calls = emu.admin.calls()
    (call,) = calls
    assert call["method"] == "POST" and call["path"] == f"/v1.0{ODB}"
    assert call["status"] == 201 and call["operation"] == "createRestoreSession"
    assert call["requestId"] == resp.headers["request-id"] and call["clientRequestId"] == "c-1"
    assert call["responseBytes"] == len(resp.content) and call["requestBytes"] == 2
    assert emu.admin.calls(since=call["seq"]) == []
    emu.admin.clear_calls()
    assert emu.admin.calls() == []


async def test_reset_reseeds_the_tenant_deterministically(emu):
    a = emu.admin.samples(3)
    emu.admin.reset(seed=8, clock_scale=0.0)
    b = emu.admin.samples(3)
    emu.admin.reset(seed=7, clock_scale=0.0)
    c = emu.admin.samples(3)
    assert a == c
    assert a["drives"][0]["id"] != b["drives"][0]["id"]
    assert a["drives"][0]["email"] == "user00000@contoso.com"


async def test_admin_client_accepts_the_graph_base_url(emu):
    assert AdminClient(emu.base_url).health()["status"] == "ok"
    clock = emu.admin.clock()
    moved = emu.admin.advance(hours=1)
    assert moved["epoch"] - clock["epoch"] == pytest.approx(3600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_starts_a_server_that_answers_health():
    port = _free_port()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.graph", "--host", "127.0.0.1", "--port", str(port), "--drives", "10",
         "--seed", "3", "--clock-scale", "60", "--active-cap", "5"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/config", timeout=1) as resp:
                    import json

                    cfg = json.loads(resp.read())
                break
            except OSError:
                assert time.monotonic() < deadline, "CLI emulator did not start"
                time.sleep(0.1)
        assert (cfg["drives"], cfg["seed"], cfg["active_cap"], cfg["clock_scale"]) == (10, 3, 5, 60.0)
    finally:
        proc.terminate()
        proc.wait(10)
