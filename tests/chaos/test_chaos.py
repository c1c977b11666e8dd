"""Worker processes SIGKILLed and raced on one restore request, against the real local services.

Four seeded rounds (tests/support/chaos.py runs them; about 90 s in all on two cores): a worker killed while it
creates sessions and the message redelivered to a fresh one; two live workers handed the same message by a
lapsing lock; `activate: true` with the worker killed after some creates; and `activate: true` raced, the first
worker killed among its activations. Each promise is a test of its own, for every round it applies to, so a
failure names the promise, the round and its seed, and carries every count of the round.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.chaos import RoundPlan, RoundResult, plan_round

pytestmark = pytest.mark.chaos

ROUNDS = {
    plan.name: plan
    for plan in (
        # Two creates at a time, so the kill lands between creates (3 waves of 2 batches).
        plan_round("kill-and-redeliver", 11, 300, activate=False, race=False, kill_writes=(0.2, 0.7),
                   concurrency=2),
        plan_round("race", 12, 300, activate=False, race=True, kill=False),
        # 5 creates then 5 activations: killed after 2 to 4 writes, that is among the creates.
        plan_round("activate-killed-mid-creates", 13, 250, activate=True, race=False, kill_writes=(0.15, 0.45),
                   concurrency=2),
        # 4 creates then 4 activations (about 90 ms apart): killed right after the first activation.
        plan_round("activate-race-killed-mid-activations", 14, 200, activate=True, race=True,
                   kill_writes=(0.6, 0.62)),
    )
}
ALL = list(ROUNDS)
ACTIVATING = [name for name, plan in ROUNDS.items() if plan.activate]
KILLED = [name for name, plan in ROUNDS.items() if plan.kill]
RACES = [name for name, plan in ROUNDS.items() if plan.race]

Run = Callable[[RoundPlan], RoundResult]


@pytest.mark.parametrize("name", ALL)
def test_no_planned_batch_gets_a_second_session(chaos_round: Run, name: str) -> None:
    outcome = chaos_round(ROUNDS[name])
    assert (outcome.duplicate_sessions, outcome.points_in_two_sessions) == (0, 0), outcome.describe()


@pytest.mark.parametrize("name", ALL)
def test_every_restore_point_is_in_a_session_or_reported_failed(chaos_round: Run, name: str) -> None:
    outcome = chaos_round(ROUNDS[name])
    assert outcome.missing_points == 0, outcome.describe()


@pytest.mark.parametrize("name", ALL)
def test_every_request_ends_in_its_terminal_event(chaos_round: Run, name: str) -> None:
    outcome = chaos_round(ROUNDS[name])
    assert outcome.settled, outcome.describe()
    assert outcome.terminal_event == "restore.request.accepted", outcome.describe()


@pytest.mark.parametrize("name", ACTIVATING)
def test_no_session_is_activated_twice(chaos_round: Run, name: str) -> None:
    outcome = chaos_round(ROUNDS[name])
    assert outcome.double_activations == 0, outcome.describe()


@pytest.mark.parametrize("name", ACTIVATING)
def test_with_activate_every_session_ends_activated(chaos_round: Run, name: str) -> None:
    """Sessions end 5 s after activation, so all of a round's sessions fit under the cap: none may stay draft."""
    outcome = chaos_round(ROUNDS[name])
    assert outcome.unactivated == 0 and outcome.drafts_left == 0, outcome.describe()


@pytest.mark.parametrize("name", ALL)
def test_recovery_reads_one_listing_and_only_the_drafts_no_row_holds(chaos_round: Run, name: str) -> None:
    """The bound, per reconcile: one listing of the sessions (every page) and one artifact listing per draft no
    ledger row holds, which are at most the creates the dead worker had in flight (GRAPH_CREATE_CONCURRENCY).
    A reconcile that listed, or read a draft's artifacts, once per marked batch would pass it as soon as two
    batches were found marked with their answers lost. A race without a kill reconciles nothing: the live
    worker's leases hold."""
    outcome = chaos_round(ROUNDS[name])
    assert outcome.recovery_calls <= outcome.recovery_bound, outcome.describe()
    if not ROUNDS[name].kill:
        assert outcome.recovery_calls == 0, outcome.describe()


@pytest.mark.parametrize("name", KILLED)
def test_the_kill_landed_while_work_remained(chaos_round: Run, name: str) -> None:
    """Otherwise the round proves nothing about recovery."""
    plan = ROUNDS[name]
    outcome = chaos_round(plan)
    assert outcome.killed_after is not None, outcome.describe()
    creates, activations = outcome.killed_after
    assert creates < plan.batches or (plan.activate and activations < plan.batches), outcome.describe()


@pytest.mark.parametrize("name", RACES)
def test_the_message_came_back_while_the_first_worker_still_created(chaos_round: Run, name: str) -> None:
    """Otherwise the race proves nothing: the lock lapsed and the second worker took the message mid-work."""
    outcome = chaos_round(ROUNDS[name])
    assert outcome.raced, outcome.describe()
