"""What the runner reads from ``host.json``: the Service Bus extension's settings, ``functionTimeout`` and the HTTP
route prefix, with the documented defaults."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("emulators.functions_host")

# Documented defaults of extensions.serviceBus (extension 5.x). maxConcurrentCalls: the docs say 16; the
# extension's code multiplies by the processor count. Guess: 16, as documented, so local runs stay small.
DEFAULT_MAX_CONCURRENT_CALLS = 16
DEFAULT_MAX_AUTO_LOCK_RENEWAL = 300.0
DEFAULT_MAX_MESSAGE_BATCH_SIZE = 1000
#: extensions.http.routePrefix: every HTTP route is served under /api unless host.json says otherwise.
DEFAULT_ROUTE_PREFIX = "api"
INFINITE = float("inf")


def timespan(value: Any) -> float:
    """Seconds from a host.json TimeSpan (``00:05:00``, ``1.00:00:00``) or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    m = re.fullmatch(r"(-)?(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if not m:
        raise ValueError(f"not a TimeSpan: {value!r}")
    seconds = int(m[2] or 0) * 86400 + int(m[3]) * 3600 + int(m[4]) * 60 + float(m[5])
    return -seconds if m[1] else seconds


@dataclass(frozen=True)
class HostOptions:
    """The ``host.json`` settings the runner honours."""

    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS
    prefetch_count: int = 0
    max_auto_lock_renewal_duration: float = DEFAULT_MAX_AUTO_LOCK_RENEWAL
    auto_complete_messages: bool = True
    max_message_batch_size: int = DEFAULT_MAX_MESSAGE_BATCH_SIZE
    function_timeout: float | None = None
    route_prefix: str = DEFAULT_ROUTE_PREFIX

    @classmethod
    def load(cls, host_json: str | os.PathLike[str] | Mapping[str, Any] | None) -> HostOptions:
        if host_json is None:
            return cls()
        if isinstance(host_json, Mapping):
            doc: Mapping[str, Any] = host_json
        else:
            path = Path(host_json)
            if not path.exists():
                log.warning("host.json %s not found; using defaults", path)
                return cls()
            doc = json.loads(path.read_text(encoding="utf-8"))
        extensions = doc.get("extensions") or {}
        sb = {k.lower(): v for k, v in (extensions.get("serviceBus") or {}).items()}
        http = {k.lower(): v for k, v in (extensions.get("http") or {}).items()}
        renewal = sb.get("maxautolockrenewalduration")
        renewal_s = DEFAULT_MAX_AUTO_LOCK_RENEWAL if renewal is None else timespan(renewal)
        timeout = doc.get("functionTimeout")
        timeout_s = None if timeout in (None, "") else timespan(timeout)
        prefix = http.get("routeprefix")
        return cls(
            max_concurrent_calls=int(sb.get("maxconcurrentcalls") or DEFAULT_MAX_CONCURRENT_CALLS),
            prefetch_count=int(sb.get("prefetchcount") or 0),
            # A negative TimeSpan (-00:00:00.001) means "renew for as long as the function runs".
            max_auto_lock_renewal_duration=INFINITE if renewal_s < 0 else renewal_s,
            auto_complete_messages=bool(sb.get("autocompletemessages", True)),
            max_message_batch_size=int(sb.get("maxmessagebatchsize") or DEFAULT_MAX_MESSAGE_BATCH_SIZE),
            function_timeout=None if timeout_s is None or timeout_s < 0 else timeout_s,
            # An empty routePrefix serves the routes at the root.
            route_prefix=DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip("/"),
        )
