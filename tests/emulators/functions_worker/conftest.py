"""Fixtures: a fresh Service Bus stand-in per test, with two queues for the sample app."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.servicebus import ServiceBusStandIn
from tests.support.servicebus_config import config, queue

SAMPLE_APP = Path(__file__).resolve().parent / "worker_sample_app.py"
#: Two queues for the sample app, with a lock long enough for the worker library's first invocation.
CONFIG: dict[str, Any] = config(queues=[queue(name, LockDuration="PT5S") for name in ("sample-q", "sample-bin")])


@pytest.fixture(autouse=True)
def _quiet_sdk_logs() -> None:
    logging.getLogger("azure").setLevel(logging.WARNING)


@pytest.fixture
def sb() -> Iterator[ServiceBusStandIn]:
    standin = ServiceBusStandIn(config=CONFIG).start(host="127.0.0.1", port=0)
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def settings(sb: ServiceBusStandIn) -> dict[str, str]:
    return {
        "ServiceBusConnection": sb.connection_string,
        "SAMPLE_QUEUE": "sample-q",
        "SAMPLE_BINARY_QUEUE": "sample-bin",
    }
