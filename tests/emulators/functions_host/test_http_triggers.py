"""HTTP triggers under the host runner, as ``func start`` serves them: routes under /api, keys, the function's
response passed back. In-process mode; real-worker mode has its own tests in tests/emulators/functions_worker."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from emulators.functions_host import FunctionsHost
from emulators.functions_host.http_triggers import RouteTemplate

ROOT = Path(__file__).resolve().parents[3]
APP = Path(__file__).resolve().parent / "http_app.py"
KEY = "local-test-key"


@pytest.fixture
async def host() -> AsyncIterator[FunctionsHost]:
    async with FunctionsHost(APP, host_json={}, http_port=0, http_key=KEY) as running:
        yield running


@pytest.fixture
async def client(host: FunctionsHost) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=str(host.http_url), timeout=10) as http:
        yield http


async def test_a_route_parameter_reaches_the_function_with_the_key_in_the_query(
    host: FunctionsHost, client: httpx.AsyncClient
) -> None:
    response = await client.get("/restores/inc-4711", params={"code": KEY, "verbose": "1"},
                                headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"requestId": "inc-4711", "verbose": "1", "accept": "application/json"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "inc-4711"
    assert response.headers["set-cookie"] == "last-request=inc-4711; path=/; httponly"
    [invocation] = host.invocations
    assert (invocation.function, invocation.outcome, invocation.status_code) == ("restore_status", "completed", 200)


async def test_the_key_may_come_in_the_x_functions_key_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/restores/r-1", headers={"x-functions-key": KEY})
    assert response.status_code == 200 and response.json()["requestId"] == "r-1"


async def test_without_the_key_or_with_another_the_host_answers_401(
    host: FunctionsHost, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/restores/r-1")).status_code == 401
    assert (await client.get("/restores/r-1", params={"code": "guess"})).status_code == 401
    assert (await client.post("/restores", content=b"{}")).status_code == 401  # ADMIN asks for it too
    assert host.invocations == []


async def test_an_unknown_route_is_404(host: FunctionsHost, client: httpx.AsyncClient) -> None:
    assert (await client.get("/nowhere", params={"code": KEY})).status_code == 404
    assert (await client.get("/restores/r-1/extra", params={"code": KEY})).status_code == 404
    # The routes live under the route prefix (host.json's extensions.http.routePrefix, "api" by default).
    async with httpx.AsyncClient(timeout=10) as bare:
        root = str(host.http_url).removesuffix("/api")
        assert (await bare.get(f"{root}/health")).status_code == 404
        assert (await bare.get(f"{root}/api/health")).status_code == 200


async def test_a_method_the_function_does_not_declare_is_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/restores/r-1", params={"code": KEY})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


async def test_the_functions_response_comes_back_as_it_built_it(client: httpx.AsyncClient) -> None:
    posted = await client.post("/restores", params={"code": KEY}, content=b"\x00raw body")
    assert posted.status_code == 202
    assert posted.content == b"\x00raw body"
    assert posted.headers["content-type"] == "application/octet-stream"
    # An anonymous route needs no key; a function without methods takes any; a string return is a 200.
    health = await client.put("/health")
    assert (health.status_code, health.text) == (200, "ok PUT")


async def test_a_function_that_raises_is_a_500_and_a_failed_invocation(
    host: FunctionsHost, client: httpx.AsyncClient
) -> None:
    response = await client.get("/broken")
    assert response.status_code == 500 and response.content == b""
    [invocation] = host.invocations
    assert invocation.outcome == "failed" and "broken on purpose" in (invocation.exception or "")


async def test_the_route_prefix_comes_from_host_json() -> None:
    host_json = {"extensions": {"http": {"routePrefix": ""}}}
    async with FunctionsHost(APP, host_json=host_json, http_port=0, http_key=KEY) as host:
        assert host.http_url is not None and not host.http_url.endswith("/api")
        async with httpx.AsyncClient(base_url=host.http_url, timeout=10) as http:
            assert (await http.get("/restores/r-2", params={"code": KEY})).status_code == 200


def test_the_command_line_serves_the_routes_and_prints_them_with_the_key() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "emulators.functions_host", "--app", str(APP), "--host-json", str(ROOT / "host.json"),
         "--http-port", "0", "--no-timers"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert child.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("HTTP function key") for line in lines):
            line = child.stdout.readline()
            assert line, f"the runner exited ({child.poll()}) after printing {lines}"
            lines.append(line.strip())
        url = next(m[1] for line in lines if (m := re.search(r"restore_status: \[GET\] (\S+)", line)))
        key = lines[-1].rsplit(" ", 1)[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api/restores/{request_id}")
        response = httpx.get(url.replace("{request_id}", "r-9"), params={"code": key}, timeout=10)
        assert response.status_code == 200 and json.loads(response.text)["requestId"] == "r-9"
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=15)
    assert child.returncode == 0


def test_route_templates_read_as_the_hosts_routing_reads_them() -> None:
    plain = RouteTemplate.compile("restores/{request_id}")
    assert plain.match("/restores/r-1") == {"request_id": "r-1"}
    assert plain.match("/RESTORES/r-1/") == {"request_id": "r-1"}  # literals in any case, a trailing slash
    assert plain.match("/restores") is None and plain.match("/restores/r-1/x") is None
    optional = RouteTemplate.compile("sessions/{id}/items/{page?}")
    assert optional.match("/sessions/s-1/items") == {"id": "s-1"}
    assert optional.match("/sessions/s-1/items/2") == {"id": "s-1", "page": "2"}
    typed = RouteTemplate.compile("points/{n:int}")
    assert typed.match("/points/42") == {"n": "42"} and typed.match("/points/forty-two") is None
    defaulted = RouteTemplate.compile("events/{subscription=all}")
    assert defaulted.match("/events") == {"subscription": "all"}
    assert defaulted.match("/events/audit") == {"subscription": "audit"}
    rest = RouteTemplate.compile("files/{*path}")
    assert rest.match("/files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert rest.match("/files") == {}
    # A literal route wins over a parameter in the same place, and a catch-all comes last.
    latest = RouteTemplate.compile("restores/latest")
    assert sorted([rest, plain, latest], key=lambda t: t.precedence) == [latest, plain, rest]
