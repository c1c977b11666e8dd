"""The dashboard in a real browser (Debian's chromium through playwright): an operator on a bridge call opens it
with the function key and watches a request's sessions settle, the page refreshing itself."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.harness import Harness

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary found (scripts/setup installs "
                                                          "Debian's chromium; or set CHROMIUM=/path/to/it)")]

SESSION_SECONDS = 300


async def request_progress(page, request_id: str) -> tuple[int, int]:
    bar = page.locator(f'[data-request="{request_id}"] > p progress')
    return int(await bar.get_attribute("aria-valuenow") or -1), int(await bar.get_attribute("aria-valuemax") or -1)


async def wait_for_progress(page, request_id: str, at_least: int) -> None:
    await page.wait_for_function(
        """([id, n]) => { const p = document.querySelector(`[data-request="${id}"] > p progress`);
                          return p && Number(p.getAttribute("aria-valuenow")) >= n; }""",
        arg=[request_id, at_least], timeout=15_000)


async def test_the_dashboard_follows_a_request_until_its_sessions_complete(graph, service_bus, settings_env):
    from playwright.async_api import async_playwright

    settings_env.update(MAX_ARTIFACTS_PER_SESSION="2", MAX_ACTIVE_SESSIONS="2")
    harness = await Harness(settings_env, graph.admin, service_bus.connection_string, standin=service_bus).start()
    try:
        assert harness.host is not None and harness.host.http_url is not None
        points = harness.restore_points(5)
        await harness.run({"requestId": "dash-r1", "incidentId": "INC-4711", "requestedBy": "soc-bridge",
                           "activate": True, "artifacts": [{"restorePointId": p} for p in points]})
        origin = urlsplit(harness.host.http_url).netloc
        requested: list[str] = []
        problems: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1366, "height": 820})
                page.on("request", lambda r: requested.append(r.url))
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                answer = await page.goto(f"{harness.host.http_url}/dashboard?code={harness.host.http_key}")
                assert answer is not None and answer.status == 200
                await page.wait_for_selector('[data-request="dash-r1"] tbody tr')
                assert await page.locator('[data-request="dash-r1"] tbody tr').count() == 3
                assert await page.get_by_text("INC-4711").count() >= 1
                assert await page.get_by_text("waiting", exact=True).count() >= 1  # a status in words
                assert await page.get_by_role("progressbar").count() == 4  # the request and its 3 sessions
                assert await request_progress(page, "dash-r1") == (0, 5)
                assert "Slots in use: 2 of 2" in await page.locator("#capacity").inner_text()

                harness.graph.advance(seconds=SESSION_SECONDS)
                await harness.host.run_timer("session_tracker")  # the first two sessions end
                await wait_for_progress(page, "dash-r1", 4)
                assert await request_progress(page, "dash-r1") == (4, 5)
                await page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)

                harness.graph.advance(seconds=SESSION_SECONDS)
                await harness.host.run_timer("session_tracker")
                await wait_for_progress(page, "dash-r1", 5)
                await page.wait_for_selector('[data-request="dash-r1"] h3 .s-completed')
            finally:
                await browser.close()
        assert requested and all(urlsplit(u).netloc == origin for u in requested), requested
        assert all(f"code={harness.host.http_key}" in u for u in requested)
        assert problems == []
    finally:
        await harness.stop()
