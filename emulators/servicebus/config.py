"""Entity configuration in the shape of the official Service Bus emulator's ``Config.json``.

One file serves both the stand-in and the Docker emulator::

    {"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
        "Queues": [{"Name": "q", "Properties": {"LockDuration": "PT1M", "MaxDeliveryCount": 10, ...}}],
        "Topics": [{"Name": "t", "Properties": {...},
                    "Subscriptions": [{"Name": "s", "Properties": {...}, "Rules": [...]}]}]}],
        "Logging": {"Type": "File"}}}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Defaults as documented for Service Bus entities (LockDuration 1 minute, MaxDeliveryCount 10).
DEFAULT_LOCK_DURATION = 60.0
DEFAULT_MAX_DELIVERY_COUNT = 10
# Guess: the emulator's documented default history window is 20 s in its sample config; Azure's is 10 minutes.
DEFAULT_DUPLICATE_WINDOW = 600.0
# "TimeSpan.MaxValue" in Azure; the emulator caps TTL at 1 hour. Here "never" means no expiry.
NEVER = float("inf")

_ISO_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_TIMESPAN = re.compile(r"^(?P<sign>-)?(?:(?P<days>\d+)\.)?(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)$")


def parse_duration(value: Any) -> float:
    """Seconds from an ISO 8601 duration (``PT1M``), a .NET TimeSpan (``00:01:00``) or a number of seconds."""
    if value is None:
        raise ValueError("duration is missing")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    m = _ISO_DURATION.match(text)
    if m and text.upper() not in ("P", "PT"):
        seconds = (
            float(m["days"] or 0) * 86400
            + float(m["hours"] or 0) * 3600
            + float(m["minutes"] or 0) * 60
            + float(m["seconds"] or 0)
        )
        return -seconds if m["sign"] else seconds
    m = _TIMESPAN.match(text)
    if m:
        seconds = float(m["days"] or 0) * 86400 + int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])
        return -seconds if m["sign"] else seconds
    raise ValueError(f"not a duration: {value!r}")


@dataclass(frozen=True)
class RuleConfig:
    name: str
    # "sql" with an expression, "correlation" with the properties to match, or "true"/"false".
    kind: str
    sql: str = ""
    correlation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EntityConfig:
    """Properties of a queue or subscription (and the few that apply to a topic)."""

    name: str
    lock_duration: float = DEFAULT_LOCK_DURATION
    max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT
    requires_duplicate_detection: bool = False
    duplicate_detection_window: float = DEFAULT_DUPLICATE_WINDOW
    default_ttl: float = NEVER
    dead_lettering_on_expiration: bool = False
    requires_session: bool = False
    forward_to: str | None = None
    forward_dead_lettered_to: str | None = None
    rules: tuple[RuleConfig, ...] = ()


@dataclass(frozen=True)
class TopicConfig:
    entity: EntityConfig
    subscriptions: tuple[EntityConfig, ...]


@dataclass(frozen=True)
class NamespaceConfig:
    name: str
    queues: tuple[EntityConfig, ...]
    topics: tuple[TopicConfig, ...]


def _entity(raw: dict[str, Any], *, rules: tuple[RuleConfig, ...] = ()) -> EntityConfig:
    name = raw.get("Name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"entity without a Name: {raw!r}")
    props = raw.get("Properties") or {}

    def duration(key: str, default: float) -> float:
        value = props.get(key)
        return default if value in (None, "") else parse_duration(value)

    return EntityConfig(
        name=name,
        lock_duration=duration("LockDuration", DEFAULT_LOCK_DURATION),
        max_delivery_count=int(props.get("MaxDeliveryCount") or DEFAULT_MAX_DELIVERY_COUNT),
        requires_duplicate_detection=bool(props.get("RequiresDuplicateDetection", False)),
        duplicate_detection_window=duration("DuplicateDetectionHistoryTimeWindow", DEFAULT_DUPLICATE_WINDOW),
        default_ttl=duration("DefaultMessageTimeToLive", NEVER),
        dead_lettering_on_expiration=bool(props.get("DeadLetteringOnMessageExpiration", False)),
        requires_session=bool(props.get("RequiresSession", False)),
        forward_to=props.get("ForwardTo") or None,
        forward_dead_lettered_to=props.get("ForwardDeadLetteredMessagesTo") or None,
        rules=rules,
    )


def _rule(raw: dict[str, Any]) -> RuleConfig:
    name = str(raw.get("Name") or "$Default")
    props = raw.get("Properties") or {}
    filter_type = str(props.get("FilterType") or "").lower()
    if filter_type == "correlation":
        return RuleConfig(name=name, kind="correlation", correlation=dict(props.get("CorrelationFilter") or {}))
    if filter_type == "sql":
        sql = (props.get("SqlFilter") or {}).get("SqlExpression", "1=1")
        return RuleConfig(name=name, kind="sql", sql=str(sql))
    if filter_type == "false":
        return RuleConfig(name=name, kind="false")
    return RuleConfig(name=name, kind="true")


def parse_config(raw: dict[str, Any]) -> list[NamespaceConfig]:
    """Parse the emulator's ``Config.json`` document (already loaded)."""
    user = raw.get("UserConfig", raw)
    namespaces = user.get("Namespaces")
    if not isinstance(namespaces, list) or not namespaces:
        raise ValueError("config has no UserConfig.Namespaces")
    result = []
    for ns in namespaces:
        queues = tuple(_entity(q) for q in ns.get("Queues") or [])
        topics = []
        for t in ns.get("Topics") or []:
            subs = tuple(
                _entity(s, rules=tuple(_rule(r) for r in s.get("Rules") or [])) for s in t.get("Subscriptions") or []
            )
            topics.append(TopicConfig(entity=_entity(t), subscriptions=subs))
        result.append(NamespaceConfig(name=str(ns.get("Name") or "sbemulatorns"), queues=queues, topics=tuple(topics)))
    return result


def load_config(config: str | Path | dict[str, Any]) -> list[NamespaceConfig]:
    """Load a config from a path or an already parsed document."""
    if isinstance(config, dict):
        return parse_config(config)
    with open(config, encoding="utf-8") as fh:
        return parse_config(json.load(fh))
