"""Who gets a slot: the first sessions in the queue that hold none, never beyond the cap, never while paused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrators.activation.decisions import Admission, reserve_next
from orchestrators.activation.records import QueuedSession, Slots

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def queued(n: int) -> list[QueuedSession]:
    return [QueuedSession(f"{i:015d}|req|{i:05d}", f"s{i}", "req", i) for i in range(n)]


def test_free_slots_go_to_the_head_of_the_queue_in_order() -> None:
    slots = Slots({"s0": {"state": "active"}}, None, "etag-1")
    changed = reserve_next(Admission(slots, queued(5)), cap=3, now=NOW)
    assert changed is not None
    assert [q.session_id for q in changed.reserved] == ["s1", "s2"]  # s0 holds one already; 2 of 3 were free
    assert set(changed.slots.holders) == {"s0", "s1", "s2"}
    assert changed.slots.holders["s1"] == {"state": "reserved", "since": NOW.isoformat(), "requestId": "req",
                                           "index": 1, "queueKey": queued(5)[1].key}
    assert changed.slots.etag == "etag-1"  # written under the ETag that was read


def test_nothing_changes_when_full_paused_or_nobody_waits() -> None:
    full = Slots({f"x{i}": {"state": "active"} for i in range(3)})
    assert reserve_next(Admission(full, queued(2)), cap=3, now=NOW) is None
    paused = Slots({}, NOW + timedelta(seconds=30))
    assert reserve_next(Admission(paused, queued(2)), cap=3, now=NOW) is None
    assert reserve_next(Admission(Slots({}), []), cap=3, now=NOW) is None
    resumed = reserve_next(Admission(Slots({}, NOW - timedelta(seconds=1)), queued(2)), cap=3, now=NOW)
    assert resumed is not None and resumed.slots.backoff_until is None and len(resumed.reserved) == 2
