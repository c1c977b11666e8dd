"""Fixtures: one in-process emulator per test session, reset before every test; SDK clients bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from emulators.graph import AsyncEmulatorCredential, GraphEmulator, make_token
from emulators.graph.auth import ALL_ROLES
from emulators.graph.sdk import make_graph_client

# A frozen clock (scale 0): tests move time by hand with emu.admin.advance(...).
BASELINE: dict[str, Any] = {
    "seed": 7,
    "drives": 60,
    "sites": 30,
    "mailboxes": 30,
    "active_cap": 25,
    "clock_scale": 0.0,
    "start_time": 1_780_000_200.0,  # 2026-05-28T20:30:00Z (on a 10 minute boundary), fixed
    "activating_seconds": 30.0,
    "scheduled_seconds": 30.0,
    "in_progress_seconds": 180.0,
    "in_progress_per_artifact_seconds": 0.0,  # every session lasts 4 minutes whatever its size
    "in_progress_parallelism": 50,
    "in_progress_jitter_seconds": 0.0,
    # SharePoint and Exchange sessions also last 4 minutes
    "sharepoint_in_progress_seconds": 180.0,
    "sharepoint_in_progress_per_artifact_seconds": 0.0,
    "sharepoint_in_progress_parallelism": 50,
    "exchange_in_progress_seconds": 180.0,
    "exchange_in_progress_per_artifact_seconds": 0.0,
    "exchange_in_progress_parallelism": 50,
    "browse_creating_seconds": 10.0,
    "browse_ttl_seconds": 3 * 86400.0,
    "max_artifacts_per_request": 50,
    "default_page_size": 100,
    "browse_page_size": 200,
    "unprotected_fraction": 0.05,
    "expired_points_per_drive": 2,
}

R = "/solutions/backupRestore"
ODB = R + "/oneDriveForBusinessRestoreSessions"
SPO = R + "/sharePointRestoreSessions"
EXO = R + "/exchangeRestoreSessions"


@pytest.fixture(scope="session")
def _emulator() -> Iterator[GraphEmulator]:
    emu = GraphEmulator(**BASELINE).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emu(_emulator: GraphEmulator) -> GraphEmulator:
    _emulator.admin.reset(**BASELINE)
    return _emulator


@pytest.fixture
def samples(emu: GraphEmulator) -> dict[str, Any]:
    return emu.admin.samples(20)


@pytest.fixture
def client_for(emu: GraphEmulator) -> Callable[..., Any]:
    """An SDK client factory: client_for(roles=[...], max_retries=0)."""

    def make(roles: tuple[str, ...] | list[str] = ALL_ROLES, max_retries: int = 0) -> Any:
        return make_graph_client(emu.base_url, AsyncEmulatorCredential(roles=roles), max_retries=max_retries)

    return make


@pytest.fixture
def br(client_for: Callable[..., Any]) -> Any:
    """``GraphServiceClient(...).solutions.backup_restore`` with every backup role."""
    return client_for().solutions.backup_restore


@pytest.fixture
async def http(emu: GraphEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP against the emulator's /v1.0 with a full-role token (for what the SDK can't express)."""
    headers = {"Authorization": f"Bearer {make_token(ALL_ROLES)}"}
    async with httpx.AsyncClient(base_url=emu.base_url, headers=headers, timeout=30) as client:
        yield client
