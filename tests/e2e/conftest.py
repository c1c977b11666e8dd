from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from emulators.graph import GraphEmulator
from emulators.servicebus import ServiceBusStandIn
from tests.e2e.harness import Harness, base_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def graph_emulator() -> Iterator[GraphEmulator]:
    emulator = GraphEmulator(seed=11, drives=300).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def graph(graph_emulator: GraphEmulator) -> GraphEmulator:
    graph_emulator.admin.reset(seed=11, drives=300, active_cap=25, clock_scale=1.0)
    return graph_emulator


@pytest.fixture
def service_bus() -> Iterator[ServiceBusStandIn]:
    broker = ServiceBusStandIn(config=str(ROOT / "emulators" / "servicebus" / "Config.json")).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def settings_env(graph, service_bus, azurite) -> dict[str, str]:
    return base_settings(graph.base_url, service_bus.connection_string, azurite.connection_string)


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
