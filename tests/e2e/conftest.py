from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.functions_worker import runtime_available
from emulators.graph import GraphEmulator
from emulators.servicebus import ServiceBusStandIn
from tests.e2e import servicebus_backend
from tests.e2e.harness import REAL_WORKER, Harness, base_settings

ROOT = Path(__file__).resolve().parents[2]

if servicebus_backend.BACKEND not in ("standin", "docker"):
    raise pytest.UsageError(
        f"E2E_SERVICEBUS={servicebus_backend.BACKEND!r}: use 'standin' (the default) or 'docker' (Microsoft's "
        "Service Bus emulator, started with `docker compose up -d`)"
    )

if REAL_WORKER and not runtime_available():
    raise pytest.UsageError(
        "E2E_WORKER=real needs azure-functions-runtime, which needs Python 3.13+: run scripts/setup, then "
        "E2E_WORKER=real .venv313/bin/python -m pytest tests/e2e/..."
    )

# Short sessions for the scenarios: 4 emulated minutes from activate to done whatever the size (Microsoft's
# published figures, the emulator's defaults, are hours). The service estimates with the same model.
GRAPH_TIMING = {"activating_seconds": 30.0, "scheduled_seconds": 30.0, "in_progress_seconds": 180.0,
                "in_progress_per_artifact_seconds": 0.0, "in_progress_parallelism": 50,
                "in_progress_jitter_seconds": 0.0}
SERVICE_TIMING = {"ONEDRIVE_SESSION_FIXED_SECONDS": "240", "ONEDRIVE_SESSION_PER_ARTIFACT_SECONDS": "0",
                  "ONEDRIVE_SESSION_PARALLELISM": "50"}


@pytest.fixture(scope="session")
def graph_emulator() -> Iterator[GraphEmulator]:
    emulator = GraphEmulator(seed=11, drives=300, **GRAPH_TIMING).start()
    if servicebus_backend.DOCKER:  # no seeded session id may repeat on a broker that outlives the test
        emulator._admin = servicebus_backend.FreshSeedAdmin(emulator.root_url)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def graph(graph_emulator: GraphEmulator) -> GraphEmulator:
    graph_emulator.admin.reset(seed=11, drives=300, active_cap=25, clock_scale=1.0, **GRAPH_TIMING)
    return graph_emulator


@pytest.fixture(scope="session")
def emulator_service_bus() -> servicebus_backend.EmulatorServiceBus | None:
    """With E2E_SERVICEBUS=docker, Microsoft's emulator, checked once: if Docker or the emulator is missing the
    whole run stops here, saying what to start, rather than every test timing out on its connection."""
    if not servicebus_backend.DOCKER:
        return None
    connection = servicebus_backend.connection_string()
    problem = servicebus_backend.emulator_problem(connection, servicebus_backend.health_url())
    if problem is not None:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)
    if asyncio.run(servicebus_backend.remembers_an_earlier_run(connection)):
        pytest.exit(servicebus_backend.STALE_HINT, returncode=pytest.ExitCode.USAGE_ERROR)
    return servicebus_backend.EmulatorServiceBus(connection)


@pytest.fixture
def service_bus(emulator_service_bus: servicebus_backend.EmulatorServiceBus | None) -> Iterator[Any]:
    """A fresh stand-in per test; or, with E2E_SERVICEBUS=docker, the emulator with every entity emptied."""
    if emulator_service_bus is not None:
        asyncio.run(servicebus_backend.purge(emulator_service_bus.connection_string))
        yield emulator_service_bus
        return
    broker = ServiceBusStandIn(config=str(ROOT / "emulators" / "servicebus" / "Config.json")).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def settings_env(graph, service_bus, azurite) -> dict[str, str]:
    return base_settings(graph.base_url, service_bus.connection_string, azurite.connection_string, **SERVICE_TIMING)


@pytest.fixture
async def harness(graph, service_bus, settings_env) -> AsyncIterator[Harness]:
    h = Harness(settings_env, graph.admin, service_bus.connection_string, standin=service_bus)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
def unstarted_harness(graph, service_bus, settings_env) -> Harness:
    """For tests that build their own runtime parts (crash injection) before starting the app."""
    return Harness(settings_env, graph.admin, service_bus.connection_string, standin=service_bus)
