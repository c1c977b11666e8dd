"""Fixtures: a fresh stand-in per test (in-process, ephemeral port) with short lock durations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from emulators.servicebus import ServiceBusStandIn
from tests.support.servicebus_config import config, queue, subscription

TEST_CONFIG: dict[str, Any] = config(
    queues=[
        queue("q"),
        queue("q2"),
        queue("long", LockDuration="PT1M", MaxDeliveryCount=10),
        queue("dup", RequiresDuplicateDetection=True),
        queue("dupshort", RequiresDuplicateDetection=True, DuplicateDetectionHistoryTimeWindow="PT1S"),
        queue("ttl", DefaultMessageTimeToLive="PT1S", DeadLetteringOnMessageExpiration=True),
        queue("fwd", ForwardTo="q2"),
        queue("host-q", LockDuration="PT2S", MaxDeliveryCount=3),
        queue("host-q2", LockDuration="PT2S", MaxDeliveryCount=3),
    ],
    topics=[
        {
            "Name": "events",
            "Properties": {"RequiresDuplicateDetection": True, "DuplicateDetectionHistoryTimeWindow": "PT10M"},
            "Subscriptions": [
                subscription("all"),
                subscription("audit"),
                subscription(
                    "created",
                    rules=[{"Name": "only-created", "Properties": {
                        "FilterType": "Correlation", "CorrelationFilter": {"Label": "restore.session.created"}}}],
                ),
                subscription(
                    "sql",
                    rules=[{"Name": "by-property", "Properties": {
                        "FilterType": "Sql", "SqlFilter": {"SqlExpression": "requestId = 'r-1'"}}}],
                ),
            ],
        }
    ],
)


@pytest.fixture(autouse=True)
def _quiet_sdk_logs() -> None:
    logging.getLogger("azure").setLevel(logging.WARNING)


@pytest.fixture
def sb() -> Iterator[ServiceBusStandIn]:
    standin = ServiceBusStandIn(config=TEST_CONFIG).start(host="127.0.0.1", port=0)
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def conn(sb: ServiceBusStandIn) -> str:
    return sb.connection_string
