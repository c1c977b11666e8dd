"""Fixtures: a fresh stand-in per test (in-process, ephemeral port) with short lock durations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from emulators.servicebus import ServiceBusStandIn


def _props(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "LockDuration": "PT2S",
        "MaxDeliveryCount": 3,
        "RequiresDuplicateDetection": False,
        "DuplicateDetectionHistoryTimeWindow": "PT20S",
        "DefaultMessageTimeToLive": "PT1H",
        "DeadLetteringOnMessageExpiration": False,
        "RequiresSession": False,
        "ForwardTo": "",
        "ForwardDeadLetteredMessagesTo": "",
    }
    props.update(overrides)
    return props


TEST_CONFIG: dict[str, Any] = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [
                    {"Name": "q", "Properties": _props()},
                    {"Name": "q2", "Properties": _props()},
                    {"Name": "long", "Properties": _props(LockDuration="PT1M", MaxDeliveryCount=10)},
                    {"Name": "dup", "Properties": _props(RequiresDuplicateDetection=True)},
                    {
                        "Name": "dupshort",
                        "Properties": _props(
                            RequiresDuplicateDetection=True, DuplicateDetectionHistoryTimeWindow="PT1S"
                        ),
                    },
                    {
                        "Name": "ttl",
                        "Properties": _props(DefaultMessageTimeToLive="PT1S", DeadLetteringOnMessageExpiration=True),
                    },
                    {"Name": "fwd", "Properties": _props(ForwardTo="q2")},
                    {"Name": "host-q", "Properties": _props(LockDuration="PT2S", MaxDeliveryCount=3)},
                    {"Name": "host-q2", "Properties": _props(LockDuration="PT2S", MaxDeliveryCount=3)},
                ],
                "Topics": [
                    {
                        "Name": "events",
                        "Properties": {
                            "RequiresDuplicateDetection": True,
                            "DuplicateDetectionHistoryTimeWindow": "PT10M",
                        },
                        "Subscriptions": [
                            {"Name": "all", "Properties": _props(), "Rules": []},
                            {"Name": "audit", "Properties": _props(), "Rules": []},
                            {
                                "Name": "created",
                                "Properties": _props(),
                                "Rules": [
                                    {
                                        "Name": "only-created",
                                        "Properties": {
                                            "FilterType": "Correlation",
                                            "CorrelationFilter": {"Label": "restore.session.created"},
                                        },
                                    }
                                ],
                            },
                            {
                                "Name": "sql",
                                "Properties": _props(),
                                "Rules": [
                                    {
                                        "Name": "by-property",
                                        "Properties": {
                                            "FilterType": "Sql",
                                            "SqlFilter": {"SqlExpression": "requestId = 'r-1'"},
                                        },
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        ],
        "Logging": {"Type": "File"},
    }
}


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
