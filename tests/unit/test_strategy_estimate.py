"""`auto` by estimated completion time: the session duration model, the plans' estimates, and the choice."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.graph.config import EmulatorConfig
from orchestrators.kernel.settings import Settings, SettingsError
from orchestrators.selection.resolver import (
    AutoStrategy,
    SessionDurationModel,
    choose_strategy,
    completion_seconds,
    standard_session_sizes,
)

BASE = {
    "ServiceBusConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=x;SharedAccessKey=y;"
                            "UseDevelopmentEmulator=true;",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}
HOUR = 3600.0
PUBLISHED = SessionDurationModel(fixed_seconds=10_080, per_artifact_seconds=720, parallelism=50)


def _auto(env: dict[str, str] | None = None) -> AutoStrategy:
    return AutoStrategy.from_settings(Settings.from_env({**BASE, **(env or {})}))


def test_the_default_model_is_microsofts_published_onedrive_figures_and_the_emulators():
    settings = Settings.from_env(BASE)
    model = SessionDurationModel.onedrive(settings)
    assert model == PUBLISHED
    assert model.seconds(50) == 3 * HOUR  # 50 accounts: 3 hours
    assert (model.seconds(10_050) - model.seconds(50)) / HOUR == 10_000 / 250  # then 250 accounts an hour
    emulator = EmulatorConfig()
    assert model.fixed_seconds == emulator.activating_seconds + emulator.scheduled_seconds + \
        emulator.in_progress_seconds
    assert (model.per_artifact_seconds, model.parallelism) == (emulator.in_progress_per_artifact_seconds,
                                                                emulator.in_progress_parallelism)


def test_a_session_lasts_its_fixed_part_plus_one_round_per_parallelism_started():
    model = SessionDurationModel(fixed_seconds=100, per_artifact_seconds=10, parallelism=4)
    assert [model.seconds(n) for n in (1, 4, 5, 8, 9)] == [110, 110, 120, 120, 130]
    assert model.seconds(0) == 100


def test_standard_sessions_hold_at_most_the_per_session_cap_per_destination_type():
    assert standard_session_sizes([120], 50) == [50, 50, 20]
    assert standard_session_sizes([50, 3], 50) == [50, 3]
    assert standard_session_sizes([0], 50) == []


def test_sessions_run_in_waves_under_the_active_session_cap():
    model = SessionDurationModel(fixed_seconds=60, per_artifact_seconds=0, parallelism=50)
    assert completion_seconds([50] * 25, 25, model) == 60
    assert completion_seconds([50] * 26, 25, model) == 120
    assert completion_seconds([50] * 200, 25, model) == 8 * 60
    assert completion_seconds([], 25, model) == 0.0
    # Unequal sessions: a freed slot takes the next session at once, no waiting for the whole wave.
    sized = SessionDurationModel(fixed_seconds=0, per_artifact_seconds=10, parallelism=1)
    assert completion_seconds([3, 1, 1, 1], 2, sized) == 30  # slot A: 30; slot B: 10 + 10 + 10


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 10_000), min_size=1, max_size=60), cap=st.integers(1, 30),
       fixed=st.integers(0, 20_000), per=st.integers(0, 2_000), parallelism=st.integers(1, 100))
def test_the_estimate_is_never_below_what_the_cap_allows(sizes, cap, fixed, per, parallelism):
    model = SessionDurationModel(fixed, per, parallelism)
    total = completion_seconds(sizes, cap, model)
    durations = [model.seconds(s) for s in sizes]
    assert total >= max(durations)
    assert total >= sum(durations) / cap - 1e-6
    assert total <= sum(durations) / cap + max(durations) + 1e-6  # greedy: within one session of the ideal
    if len(set(durations)) == 1:
        assert total == math.ceil(len(sizes) / cap) * durations[0]


def test_with_the_published_figures_standard_sessions_beat_one_bulk_session_under_the_full_cap():
    auto = _auto()
    for drives, standard_hours, bulk_hours in ((2_000, 6, 2.8 + 40 * 0.2), (10_000, 24, 2.8 + 200 * 0.2)):
        estimate = auto.estimate([drives])
        assert estimate.standard_seconds == pytest.approx(standard_hours * HOUR)
        assert estimate.bulk_seconds == pytest.approx(bulk_hours * HOUR)
        assert choose_strategy("auto", [drives], auto) == "standard"


def test_when_few_slots_are_free_one_bulk_session_wins():
    auto = _auto({"MAX_ACTIVE_SESSIONS": "5"})
    estimate = auto.estimate([10_000])
    assert estimate.standard_seconds == 40 * 3 * HOUR  # 200 sessions, 5 at a time
    assert estimate.bulk_seconds == pytest.approx(42.8 * HOUR)
    assert choose_strategy("auto", [10_000], auto) == "bulk"


def test_the_duration_model_comes_from_the_settings():
    # Sessions of any size in 4 minutes (the end-to-end tests' emulator): bulk wins above the threshold.
    fast = {"ONEDRIVE_SESSION_FIXED_SECONDS": "240", "ONEDRIVE_SESSION_PER_ARTIFACT_SECONDS": "0"}
    assert choose_strategy("auto", [2_000], _auto(fast)) == "bulk"
    assert choose_strategy("auto", [2_000], _auto()) == "standard"
    # Slower per-artifact work and small in-session parallelism make large sessions even slower.
    slow = {"ONEDRIVE_SESSION_PARALLELISM": "5", "MAX_ACTIVE_SESSIONS": "5"}
    assert _auto(slow).estimate([10_000]).bulk_seconds == pytest.approx(10_080 + 2_000 * 720)


def test_bulk_is_never_chosen_at_or_below_the_threshold_nor_beyond_graphs_bulk_limit():
    one_slot = {"MAX_ACTIVE_SESSIONS": "1"}  # standard sessions one after the other: bulk would be faster
    assert _auto(one_slot).estimate([1_000]).bulk_seconds < _auto(one_slot).estimate([1_000]).standard_seconds
    assert choose_strategy("auto", [1_000], _auto(one_slot)) == "standard"
    assert choose_strategy("auto", [1_000], _auto({**one_slot, "BULK_THRESHOLD_DRIVES": "999"})) == "bulk"
    over = _auto(one_slot).estimate([10_001])
    assert over.bulk_seconds is None
    assert choose_strategy("auto", [10_001], _auto(one_slot)) == "standard"


def test_bulk_is_one_session_per_destination_type_under_the_cap():
    auto = AutoStrategy(threshold=1, per_session=50, max_active=25, model=PUBLISHED)
    both = auto.estimate([6_000, 4_000]).bulk_seconds
    assert both == PUBLISHED.seconds(6_000)  # the two run side by side
    alone = AutoStrategy(threshold=1, per_session=50, max_active=1, model=PUBLISHED)
    assert alone.estimate([6_000, 4_000]).bulk_seconds == PUBLISHED.seconds(6_000) + PUBLISHED.seconds(4_000)


@pytest.mark.parametrize("env", [{}, {"MAX_ACTIVE_SESSIONS": "1"}, {"ONEDRIVE_SESSION_PER_ARTIFACT_SECONDS": "0"}])
@pytest.mark.parametrize("drives", [1, 1_250, 1_251, 10_000, 10_001])
def test_an_explicit_strategy_is_always_kept(env, drives):
    auto = _auto(env)
    assert choose_strategy("standard", [drives], auto) == "standard"
    assert choose_strategy("bulk", [drives], auto) == "bulk"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"ONEDRIVE_SESSION_FIXED_SECONDS": "-1"}, "ONEDRIVE_SESSION_FIXED_SECONDS"),
        ({"ONEDRIVE_SESSION_PER_ARTIFACT_SECONDS": "slow"}, "ONEDRIVE_SESSION_PER_ARTIFACT_SECONDS"),
        ({"ONEDRIVE_SESSION_PARALLELISM": "0"}, "ONEDRIVE_SESSION_PARALLELISM"),
    ],
)
def test_a_malformed_duration_setting_fails_naming_it(override, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**BASE, **override})
