"""Service Bus entity configurations for the stand-in, in the emulator's ``Config.json`` shape, for tests.

Every queue or subscription gets the same short-lived defaults (a 2 s lock, three deliveries, no duplicate
detection, an hour's time to live); a test overrides what its scenario is about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

NAMESPACE = "sbemulatorns"


def entity_properties(**overrides: Any) -> dict[str, Any]:
    """A queue's or subscription's ``Properties``: the test defaults, with ``overrides`` by property name."""
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


def queue(name: str, **overrides: Any) -> dict[str, Any]:
    return {"Name": name, "Properties": entity_properties(**overrides)}


def subscription(name: str, rules: Iterable[Mapping[str, Any]] = (), **overrides: Any) -> dict[str, Any]:
    return {"Name": name, "Properties": entity_properties(**overrides), "Rules": [dict(r) for r in rules]}


def config(queues: Iterable[Mapping[str, Any]], topics: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A whole configuration: one namespace holding ``queues`` and ``topics``."""
    namespace = {"Name": NAMESPACE, "Queues": [dict(q) for q in queues], "Topics": [dict(t) for t in topics]}
    return {"UserConfig": {"Namespaces": [namespace], "Logging": {"Type": "File"}}}
