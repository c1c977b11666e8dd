"""Pure planning: restore points in, restore sessions out. No I/O.

The plan is a function of the request alone, so a redelivered message plans exactly the same
sessions with the same indexes, and the ledger can match its records to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrators.contracts import Artifact


@dataclass(frozen=True)
class SessionPlan:
    index: int
    destination_type: str
    restore_point_ids: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "destinationType": self.destination_type,
            "restorePointIds": list(self.restore_point_ids),
        }


def plan_sessions(artifacts: Iterable[Artifact], max_per_session: int) -> list[SessionPlan]:
    """Group by destination type (Graph allows one per session), drop repeats, cut into sessions.

    Destination groups come in the order their first artifact appears; within a group the request's
    order is kept. Each session holds at most `max_per_session` restore points.
    """
    if max_per_session < 1:
        raise ValueError("max_per_session must be at least 1")
    groups: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for artifact in artifacts:
        key = (artifact.restore_point_id, artifact.destination_type)
        if key in seen:
            continue
        seen.add(key)
        groups.setdefault(artifact.destination_type, []).append(artifact.restore_point_id)
    plans: list[SessionPlan] = []
    for destination, points in groups.items():
        for start in range(0, len(points), max_per_session):
            plans.append(SessionPlan(len(plans), destination, tuple(points[start:start + max_per_session])))
    return plans
