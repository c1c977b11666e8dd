"""What a tracker pass decides, from the tracking rows and the slots alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrators.activation.records import ACTIVATED, NOT_REQUESTED, QUEUED, RESERVED, Slots, TrackedSession
from orchestrators.tracking.decisions import plan_pass

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=120)


def row(session_id: str, activation: str = NOT_REQUESTED, status: str = "draft", **extra: object) -> TrackedSession:
    return TrackedSession(session_id, "req-1", int(session_id[1:]), status=status, activation=activation,
                          **extra)  # type: ignore[arg-type]


def holder(state: str, seconds_ago: float) -> dict[str, object]:
    return {"state": state, "since": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def test_a_slot_reserved_by_a_worker_that_died_before_marking_the_session_is_released() -> None:
    rows = [row("s1", QUEUED), row("s2", QUEUED)]
    slots = Slots({"s1": holder("reserved", 600), "s2": holder("reserved", 5)})
    plan = plan_pass(rows, slots, NOW, draft_max_age=None, reserved_grace=GRACE)
    assert plan.release == ["s1"]  # s2 was reserved moments ago: its worker is marking it now


def test_a_reserved_session_whose_activation_answer_was_lost_keeps_its_slot_and_is_polled() -> None:
    rows = [row("s1", RESERVED), row("s2", ACTIVATED, status="active")]
    slots = Slots({"s1": holder("reserved", 600), "s2": holder("active", 600)})
    plan = plan_pass(rows, slots, NOW, draft_max_age=None, reserved_grace=GRACE)
    assert plan.release == []
    assert {r.session_id for r in plan.poll} == {"s1", "s2"}


def test_slots_of_sessions_no_longer_tracked_go_back_to_the_pool() -> None:
    plan = plan_pass([], Slots({"gone": holder("active", 10)}), NOW, draft_max_age=None, reserved_grace=GRACE)
    assert plan.release == ["gone"]


def test_only_unrequested_drafts_past_the_age_limit_are_discarded_and_polling_starts_with_the_oldest_check() -> None:
    old = NOW - timedelta(hours=80)
    rows = [row("s1", created_at=old), row("s2", QUEUED, created_at=old), row("s3", created_at=NOW),
            row("s4", ACTIVATED, status="active", last_checked_at=NOW - timedelta(minutes=1)),
            row("s5", ACTIVATED, status="active", last_checked_at=NOW - timedelta(minutes=9))]
    plan = plan_pass(rows, Slots({}), NOW, draft_max_age=timedelta(hours=72), reserved_grace=GRACE)
    assert [r.session_id for r in plan.discard] == ["s1"]
    assert [r.session_id for r in plan.poll] == ["s5", "s4"]
    assert plan_pass(rows, Slots({}), NOW, draft_max_age=None, reserved_grace=GRACE).discard == []
