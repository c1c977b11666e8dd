"""Emulator settings (all durations are in emulated seconds)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

ONEDRIVE = "oneDrive"
SHAREPOINT = "sharePoint"
EXCHANGE = "exchange"
WORKLOADS = (ONEDRIVE, SHAREPOINT, EXCHANGE)  # the workloads whose restore sessions the emulator serves


@dataclass(frozen=True)
class SessionTiming:
    """The `inProgress` phase of one workload's restore sessions.

    A session's artifacts are worked on at most `parallelism` at a time, each for `per_artifact_seconds`
    (plus jitter), after `fixed_seconds` that every session spends whatever its size. Without jitter the
    phase lasts `fixed + ceil(artifacts / parallelism) * per_artifact`.
    """

    fixed_seconds: float
    per_artifact_seconds: float
    parallelism: int

    def in_progress_seconds(self, artifacts: int) -> float:
        if artifacts <= 0:
            return self.fixed_seconds
        return self.fixed_seconds + math.ceil(artifacts / self.parallelism) * self.per_artifact_seconds


# OneDrive defaults fitted to Microsoft's published restore times ("Overview of Microsoft 365 Backup",
# Performance expectations; see README): with 30 s activating and 30 s scheduled, activate -> done is
# 3 hours for 50 accounts, and beyond that the session restores 250 accounts an hour (50 every 12 minutes).
ONEDRIVE_TIMING = SessionTiming(fixed_seconds=10_020.0, per_artifact_seconds=720.0, parallelism=50)
# SharePoint: Microsoft publishes the same figures for OneDrive accounts and SharePoint sites.
SHAREPOINT_TIMING = ONEDRIVE_TIMING
# Exchange ("Overview of Microsoft 365 Backup", Exchange Online column): 50 mailboxes in 2.5 hours, and beyond
# that 250 mailboxes an hour: 60 s activating and scheduled + 8,220 s + 720 s per 50 mailboxes.
EXCHANGE_TIMING = SessionTiming(fixed_seconds=8_220.0, per_artifact_seconds=720.0, parallelism=50)

#: The settings of each workload's `inProgress` phase: (fixed, per artifact, parallelism).
TIMING_FIELDS = {
    ONEDRIVE: ("in_progress_seconds", "in_progress_per_artifact_seconds", "in_progress_parallelism"),
    SHAREPOINT: ("sharepoint_in_progress_seconds", "sharepoint_in_progress_per_artifact_seconds",
                 "sharepoint_in_progress_parallelism"),
    EXCHANGE: ("exchange_in_progress_seconds", "exchange_in_progress_per_artifact_seconds",
               "exchange_in_progress_parallelism"),
}
_PARALLELISM = tuple(names[2] for names in TIMING_FIELDS.values())
_NON_NEGATIVE = ("activating_seconds", "scheduled_seconds", "in_progress_jitter_seconds", "browse_creating_seconds",
                 "browse_ttl_seconds", "sites", "mailboxes", "drives",
                 *(name for names in TIMING_FIELDS.values() for name in names[:2]))


@dataclass
class EmulatorConfig:
    seed: int = 1
    drives: int = 200
    sites: int = 50  # SharePoint site protection units: the users' team sites
    mailboxes: int = 50  # Exchange mailbox protection units: the users' mailboxes
    active_cap: int = 25
    clock_scale: float = 1.0
    start_time: float | None = None  # epoch seconds; None = the wall clock at start/reset
    # lifecycle of OneDrive restore sessions (defaults: 3 hours for 50 artifacts, 12 minutes per 50 more)
    activating_seconds: float = 30.0  # session activating -> active; artifacts scheduling -> scheduled
    scheduled_seconds: float = 30.0  # artifacts wait in `scheduled` before `inProgress`
    in_progress_seconds: float = ONEDRIVE_TIMING.fixed_seconds  # fixed part of `inProgress`, any session size
    in_progress_per_artifact_seconds: float = ONEDRIVE_TIMING.per_artifact_seconds  # work on one artifact
    in_progress_parallelism: int = ONEDRIVE_TIMING.parallelism  # artifacts of one session worked on at a time
    # SharePoint and Exchange sessions: the same phases, their own `inProgress` timing
    sharepoint_in_progress_seconds: float = SHAREPOINT_TIMING.fixed_seconds
    sharepoint_in_progress_per_artifact_seconds: float = SHAREPOINT_TIMING.per_artifact_seconds
    sharepoint_in_progress_parallelism: int = SHAREPOINT_TIMING.parallelism
    exchange_in_progress_seconds: float = EXCHANGE_TIMING.fixed_seconds
    exchange_in_progress_per_artifact_seconds: float = EXCHANGE_TIMING.per_artifact_seconds
    exchange_in_progress_parallelism: int = EXCHANGE_TIMING.parallelism
    in_progress_jitter_seconds: float = 0.0  # + uniform(0, jitter) per artifact, seeded (every workload)
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
            if snake in _PARALLELISM and (value is None or value < 1):
                raise ValueError(f"{key} must be at least 1, got {value!r}")
            if snake in _NON_NEGATIVE and (value is None or value < 0):
                raise ValueError(f"{key} must not be negative, got {value!r}")
            setattr(self, snake, value)

    def session_timing(self, workload: str = ONEDRIVE) -> SessionTiming:
        """The in-progress timing of `workload`'s sessions."""
        names = TIMING_FIELDS.get(workload)
        if names is None:
            raise ValueError(f"no restore session timing for workload {workload!r}")
        fixed, per_artifact, parallelism = (getattr(self, name) for name in names)
        return SessionTiming(fixed, per_artifact, parallelism)

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
