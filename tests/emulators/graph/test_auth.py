"""Bearer tokens and app roles; the azure-identity compatible credentials."""

from __future__ import annotations

import asyncio
import time

import pytest
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_point_preference import RestorePointPreference
from msgraph.generated.models.time_period import TimePeriod
from msgraph.generated.solutions.backup_restore.restore_points.search.search_post_request_body import (
    SearchPostRequestBody,
)

from emulators.graph import AsyncEmulatorCredential, EmulatorCredential, make_token
from emulators.graph.auth import CONFIG_READ, RESTORE_READ, RESTORE_READWRITE, SEARCH_READ
from emulators.graph.sdk import make_graph_client

from .conftest import ODB, R
from .helpers import odata_error, point_ids, session_body

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_request_without_a_token_is_401_invalid_authentication_token(emu):
    import httpx

    async with httpx.AsyncClient(base_url=emu.base_url) as c:
        resp = await c.get(f"{R}/restoreSessions")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert resp.headers["request-id"]


async def test_unreadable_and_expired_tokens_are_401(emu):
    import httpx

    expired = make_token(now=time.time() - 7200, lifetime=3600)
    async with httpx.AsyncClient(base_url=emu.base_url) as c:
        for token in ("garbage", "a.%%%.b", expired):
            resp = await c.get(f"{R}/restoreSessions", headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 401, token
            assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"


async def test_unsigned_alg_none_token_with_the_role_is_accepted(emu):
    import httpx

    token = make_token([RESTORE_READ])
    assert token.endswith(".")  # header.payload. with alg none
    async with httpx.AsyncClient(base_url=emu.base_url) as c:
        resp = await c.get(f"{R}/restoreSessions", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


async def test_read_role_cannot_create_a_session_403(client_for):
    br = client_for(roles=[RESTORE_READ]).solutions.backup_restore
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    status, code, message = odata_error(info.value)
    assert (status, code) == (403, "Forbidden")
    assert RESTORE_READWRITE in message


async def test_read_role_lists_and_gets_sessions(client_for, br):
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    reader = client_for(roles=[RESTORE_READ]).solutions.backup_restore
    assert (await reader.restore_sessions.by_restore_session_base_id(created.id).get()).id == created.id
    assert len((await reader.restore_sessions.get()).value) == 1
    with pytest.raises(ODataError) as info:
        await reader.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    assert odata_error(info.value)[0] == 403


async def test_search_requires_the_search_role(client_for, samples):
    body = SearchPostRequestBody(
        protection_unit_ids=[samples["drives"][0]["id"]],
        protection_time_period=TimePeriod(),
        restore_point_preference=RestorePointPreference.Latest,
    )
    writer = client_for(roles=[RESTORE_READWRITE]).solutions.backup_restore
    with pytest.raises(ODataError) as info:
        await writer.restore_points.search.post(body)
    assert odata_error(info.value)[:2] == (403, "Forbidden")
    searcher = client_for(roles=[SEARCH_READ]).solutions.backup_restore
    result = await searcher.restore_points.search.post(body)
    assert len(result.search_results) == 1


async def test_configuration_role_reads_protection_units_but_not_sessions(client_for):
    br = client_for(roles=[CONFIG_READ]).solutions.backup_restore
    units = await br.drive_protection_units.get()
    assert units.value
    with pytest.raises(ODataError) as info:
        await br.restore_sessions.get()
    assert odata_error(info.value)[0] == 403


async def test_sync_credential_follows_token_credential_protocol(emu, samples):
    cred = EmulatorCredential(roles=[RESTORE_READWRITE], tenant_id="t1", app_id="a1")
    assert isinstance(cred, TokenCredential)
    tok = cred.get_token("https://graph.microsoft.com/.default", claims=None, enable_cae=True)
    assert isinstance(tok, AccessToken) and tok.expires_on > time.time()
    br = make_graph_client(emu.base_url, cred, max_retries=0).solutions.backup_restore
    created = await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 1)))
    assert created.created_by.application.id == "a1"
    assert cred.calls >= 2


async def test_async_credential_follows_async_token_credential_protocol():
    async with AsyncEmulatorCredential(roles=[RESTORE_READ]) as cred:
        assert isinstance(cred, AsyncTokenCredential)
        tok = await cred.get_token("https://graph.microsoft.com/.default")
        info = await cred.get_token_info("https://graph.microsoft.com/.default")
    assert isinstance(tok, AccessToken)
    assert info.token.count(".") == 2
    await asyncio.sleep(0)


async def test_token_is_sent_to_the_emulator_host_over_plain_http(emu, br):
    await br.restore_sessions.get()
    assert emu.admin.calls()[-1]["status"] == 200
    assert emu.base_url.startswith("http://127.0.0.1:")
    assert ODB.startswith(R)
