"""Which draft sessions a lost create is looked for in: narrowed by what the session list says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrators.adapters.graph import DraftSession
from orchestrators.kernel.step import StepState
from orchestrators.restore.orchestrator import candidate_drafts
from orchestrators.restore.records import BatchRecord

MARK = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BATCH = BatchRecord("req-1", 0, "new", tuple(f"rp-{i}" for i in range(50)), state=StepState.ACTING,
                    creating_since=MARK, owner="dead-worker", lease_until=MARK + timedelta(minutes=3))


def draft(session_id: str, minutes: float, total: int | None = 50, app: str | None = "app-1") -> DraftSession:
    return DraftSession(session_id, MARK + timedelta(minutes=minutes), total, app)


def test_only_drafts_of_this_app_with_the_batch_size_created_within_its_lease_remain_nearest_first() -> None:
    drafts = [
        draft("later-but-in-lease", 2), draft("just-after-mark", 0.1), draft("other-size", 0.2, total=20),
        draft("other-app", 0.2, app="app-2"), draft("long-before", -30), draft("long-after-lease", 30),
        draft("recorded-already", 0.3), draft("size-unknown", 1, total=None),
    ]
    found = candidate_drafts(drafts, BATCH, 50, {"recorded-already"}, "app-1")
    assert [d.session_id for d in found] == ["just-after-mark", "size-unknown", "later-but-in-lease"]


def test_a_mark_from_the_first_version_without_a_lease_has_no_upper_bound() -> None:
    old_mark = BatchRecord("req-1", 0, "new", ("rp-1",), state=StepState.ACTING, creating_since=MARK)
    found = candidate_drafts([draft("an-hour-later", 60, total=1)], old_mark, 1, set(), None)
    assert [d.session_id for d in found] == ["an-hour-later"]
