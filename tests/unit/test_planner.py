from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrators.contracts import Artifact
from orchestrators.restore.planner import plan_sessions

point_ids = st.sampled_from([f"rp-{i:03d}" for i in range(120)])
artifacts_strategy = st.lists(
    st.builds(Artifact, point_ids, st.sampled_from(["new", "inPlace"])), min_size=0, max_size=400
)


def _artifacts(n: int, destination: str = "new", prefix: str = "rp") -> list[Artifact]:
    return [Artifact(f"{prefix}-{i}", destination) for i in range(n)]


def test_one_artifact_makes_one_session():
    plans = plan_sessions(_artifacts(1), 50)
    assert [(p.index, p.destination_type, len(p.restore_point_ids)) for p in plans] == [(0, "new", 1)]


def test_fifty_fit_one_session_and_fifty_one_need_two():
    assert [len(p.restore_point_ids) for p in plan_sessions(_artifacts(50), 50)] == [50]
    assert [len(p.restore_point_ids) for p in plan_sessions(_artifacts(51), 50)] == [50, 1]


def test_ten_thousand_artifacts_make_two_hundred_sessions_with_consecutive_indexes():
    plans = plan_sessions(_artifacts(10_000), 50)
    assert len(plans) == 200
    assert [p.index for p in plans] == list(range(200))


def test_mixed_destinations_are_never_in_one_session():
    items = [Artifact("a", "new"), Artifact("b", "inPlace"), Artifact("c", "new")]
    plans = plan_sessions(items, 50)
    assert [(p.destination_type, p.restore_point_ids) for p in plans] == [
        ("new", ("a", "c")),
        ("inPlace", ("b",)),
    ]


def test_the_same_restore_point_twice_is_planned_once():
    plans = plan_sessions([Artifact("a", "new"), Artifact("a", "new")], 50)
    assert [p.restore_point_ids for p in plans] == [("a",)]


@settings(max_examples=200, deadline=None)
@given(artifacts_strategy, st.integers(min_value=1, max_value=60))
def test_every_restore_point_lands_in_exactly_one_session_of_its_destination(artifacts, cap):
    plans = plan_sessions(artifacts, cap)
    planned = [(rp, p.destination_type) for p in plans for rp in p.restore_point_ids]
    assert sorted(planned) == sorted({(a.restore_point_id, a.destination_type) for a in artifacts})
    assert len(planned) == len(set(planned))


@settings(max_examples=200, deadline=None)
@given(artifacts_strategy, st.integers(min_value=1, max_value=60))
def test_no_session_exceeds_the_cap_or_mixes_destinations_or_repeats_a_point(artifacts, cap):
    for plan in plan_sessions(artifacts, cap):
        assert 1 <= len(plan.restore_point_ids) <= cap
        assert len(set(plan.restore_point_ids)) == len(plan.restore_point_ids)
        assert plan.destination_type in ("new", "inPlace")


@settings(max_examples=100, deadline=None)
@given(artifacts_strategy, st.integers(min_value=1, max_value=60))
def test_the_plan_is_deterministic_and_uses_the_fewest_sessions(artifacts, cap):
    first = plan_sessions(artifacts, cap)
    assert first == plan_sessions(list(artifacts), cap)
    assert [p.index for p in first] == list(range(len(first)))
    by_destination: dict[str, int] = {}
    for a in set(artifacts):
        by_destination[a.destination_type] = by_destination.get(a.destination_type, 0) + 1
    assert len(first) == sum(-(-n // cap) for n in by_destination.values())
