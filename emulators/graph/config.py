"""Emulator settings (all durations are in emulated seconds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class EmulatorConfig:
    seed: int = 1
    drives: int = 200
    active_cap: int = 25
    clock_scale: float = 1.0
    start_time: float | None = None  # epoch seconds; None = the wall clock at start/reset
    # lifecycle (defaults: a session completes about 4 emulated minutes after activate)
    activating_seconds: float = 30.0  # session activating -> active; artifacts scheduling -> scheduled
    scheduled_seconds: float = 30.0  # artifacts wait in `scheduled` before `inProgress`
    in_progress_seconds: float = 180.0  # per artifact, artifacts of a session run in parallel
    in_progress_jitter_seconds: float = 0.0  # + uniform(0, jitter), seeded
    browse_creating_seconds: float = 10.0
    # Guess: the docs' example expires a browse session ~3 days after creation; the real TTL is undocumented.
    browse_ttl_seconds: float = 3 * 86400.0
    # limits
    max_artifacts_per_request: int = 50
    max_search_units: int = 20
    max_bulk_resources: int = 10_000
    default_page_size: int = 100
    max_page_size: int = 1000
    browse_page_size: int = 200
    # tenant realism
    unprotected_fraction: float = 0.02
    expired_points_per_drive: int = 2
    call_log_size: int = 100_000

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f for f in fields(self)}
        for key, value in values.items():
            snake = _snake(key)
            if snake not in names:
                raise ValueError(f"unknown setting {key!r}")
            current = getattr(self, snake)
            if value is not None and isinstance(current, bool):
                value = bool(value)
            elif value is not None and isinstance(current, int) and not isinstance(current, bool):
                value = int(value)
            elif value is not None and isinstance(current, float):
                value = float(value)
            setattr(self, snake, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _snake(name: str) -> str:
    out = []
    for ch in name:
        if ch.isupper():
            out.append("_" + ch.lower())
        else:
            out.append(ch)
    return "".join(out)
