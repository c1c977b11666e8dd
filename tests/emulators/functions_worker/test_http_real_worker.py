"""HTTP triggers in real-worker mode: the request goes to the function as an RpcHttp through
azure-functions-runtime, and the library's response comes back as the host answers it.

Needs the worker library (Python 3.13+, ``.venv313``); skipped elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip(
    "azure_functions_runtime",
    reason="the worker library azure-functions-runtime needs Python 3.13+: run these with .venv313/bin/python",
)

import httpx

from emulators.functions_host import FunctionsHost

APP = Path(__file__).resolve().parents[1] / "functions_host" / "http_app.py"
KEY = "worker-test-key"


@pytest.fixture
async def host() -> AsyncIterator[FunctionsHost]:
    async with FunctionsHost(APP, host_json={}, worker="real", http_port=0, http_key=KEY) as running:
        yield running


@pytest.fixture
async def client(host: FunctionsHost) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=str(host.http_url), timeout=20) as http:
        yield http


async def test_the_worker_indexes_the_routes_and_the_function_gets_its_route_parameter(
    host: FunctionsHost, client: httpx.AsyncClient
) -> None:
    assert host.triggers["restore_status"].kind == "http"
    assert host.triggers["restore_status"].route == "restores/{request_id}"
    assert host.triggers["restore_status"].methods == ("GET",)
    assert host.triggers["restore_status"].auth_level == "function"
    response = await client.get("/restores/inc-4711", params={"code": KEY, "verbose": "1"},
                                headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"requestId": "inc-4711", "verbose": "1", "accept": "application/json"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "inc-4711"
    # The worker sends the cookie apart from the headers; the host writes it back, as in-process.
    assert response.headers["set-cookie"] == "last-request=inc-4711; path=/; httponly"
    [invocation] = host.invocations
    assert (invocation.function, invocation.outcome, invocation.status_code) == ("restore_status", "completed", 200)


async def test_keys_routes_and_methods_are_the_hosts_as_in_process(client: httpx.AsyncClient) -> None:
    assert (await client.get("/restores/r-1")).status_code == 401
    assert (await client.get("/restores/r-1", headers={"x-functions-key": KEY})).status_code == 200
    assert (await client.get("/nowhere", params={"code": KEY})).status_code == 404
    assert (await client.delete("/restores/r-1", params={"code": KEY})).status_code == 405


async def test_bodies_strings_and_failures_through_the_library(host: FunctionsHost, client: httpx.AsyncClient) -> None:
    posted = await client.post("/restores", params={"code": KEY}, content=b"\x00raw body")
    assert (posted.status_code, posted.content) == (202, b"\x00raw body")
    assert posted.headers["content-type"] == "application/octet-stream"
    health = await client.put("/health")
    assert (health.status_code, health.text) == (200, "ok PUT")
    broken = await client.get("/broken")
    assert broken.status_code == 500
    failed = [i for i in host.invocations if i.function == "broken"]
    assert [i.outcome for i in failed] == ["failed"] and "broken on purpose" in (failed[0].exception or "")
