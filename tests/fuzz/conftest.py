from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.azurite import Azurite
from emulators.graph import GraphEmulator, make_token
from emulators.servicebus import ServiceBusStandIn
from tests.support.hostile import LoopThread, Rig, fuzz_settings

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("BackupRestore-Restore.ReadWrite.All", "BackupRestore-Search.Read.All",
         "BackupRestore-Configuration.Read.All")


@pytest.fixture(scope="module")
def rig(azurite: Azurite) -> Iterator[tuple[LoopThread, Rig]]:
    graph = GraphEmulator(seed=5, drives=20).start()
    bus = ServiceBusStandIn(config=str(ROOT / "emulators" / "servicebus" / "Config.json")).start()
    token = make_token(ROLES, lifetime=3600)
    account_key = dict(p.split("=", 1) for p in azurite.connection_string.split(";") if "=" in p)["AccountKey"]

    def scheduled() -> int:
        snap = bus.snapshot()
        return sum(snap[q]["scheduled"] for q in ("restore-requests", "browse-requests", "activation-requests"))

    loop = LoopThread()
    rig = Rig(fuzz_settings(graph.base_url, bus.connection_string, azurite.connection_string, token),
              secrets=[token, account_key, "SAS_KEY_VALUE"], scheduled_copies=scheduled)
    loop.run(rig.__aenter__())
    try:
        yield loop, rig
    finally:
        loop.run(rig.__aexit__(None, None, None))
        loop.close()
        bus.stop()
        graph.stop()
