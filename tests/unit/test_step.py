"""The one idempotent step, crashed at every point against the in-memory store: one act, one outcome."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from orchestrators.adapters.memory import MemoryStepStore
from orchestrators.kernel.errors import Contended, GraphError, RetryLater
from orchestrators.kernel.step import (
    Intent,
    LeaseHeld,
    StepPolicy,
    StepState,
    again,
    done,
    failed,
    mark_all,
    run_step,
    run_steps,
)

LEASE = timedelta(seconds=120)
POLICY = StepPolicy(lease=LEASE)


class SimulatedCrash(ConnectionError):
    """The process died here."""


@dataclass(frozen=True)
class Job:
    key: str
    points: tuple[str, ...] = ("a", "b")
    session_id: str | None = None
    excluded: tuple[str, ...] = ()
    state: StepState = StepState.PLANNED
    since: datetime | None = None
    owner: str | None = None
    lease_until: datetime | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def intent(self) -> Intent:
        return Intent(self.state, self.since, self.owner, self.lease_until)

    def with_intent(self, intent: Intent) -> Job:
        return dataclasses.replace(self, state=intent.state, since=intent.since, owner=intent.owner,
                                   lease_until=intent.lease_until)


class FakeClock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class World:
    """Graph, as far as a step can tell: sessions created, each with the points it holds."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sessions: dict[str, tuple[str, ...]] = {}
        self.acts = 0
        self.crash_after_act = False
        self.refuse: set[str] = set()
        self.answer_lost = False

    def actions(self) -> Actions:
        return Actions(self)


class Actions:
    def __init__(self, world: World) -> None:
        self.world = world

    async def act(self, job: Job) -> Job:
        points = tuple(p for p in job.points if p not in job.excluded)
        bad = [p for p in points if p in self.world.refuse]
        if bad:
            return again(dataclasses.replace(job, excluded=job.excluded + tuple(bad)))
        if not points:
            return failed(job)
        self.world.acts += 1
        session_id = f"s{self.world.acts}"
        self.world.sessions[session_id] = points
        if self.world.crash_after_act:
            raise SimulatedCrash("died with the create's answer in flight")
        if self.world.answer_lost:
            raise RetryLater(GraphError(504, "GatewayTimeout", "no answer"), outcome_unknown=True)
        return done(dataclasses.replace(job, session_id=session_id))

    async def reconcile(self, job: Job) -> Job | None:
        points = tuple(p for p in job.points if p not in job.excluded)
        for session_id, held in self.world.sessions.items():
            if held == points:
                return done(dataclasses.replace(job, session_id=session_id))
        return None


class CrashingStore(MemoryStepStore[Job]):
    """Dies before or after its n-th write."""

    def __init__(self) -> None:
        super().__init__(key=lambda j: j.key)
        self.crash_at: tuple[int, str] | None = None
        self.calls = 0

    async def save(self, record: Job) -> Job:
        self.calls += 1
        if self.crash_at == (self.calls, "before"):
            raise SimulatedCrash("died before the write")
        saved = await super().save(record)
        if self.crash_at == (self.calls, "after"):
            raise SimulatedCrash("died after the write")
        return saved


async def settle(store: CrashingStore, world: World, clock: FakeClock, owner: str) -> Job:
    job = store.get("job")
    assert job is not None
    return await run_step(job, world.actions(), store, owner=owner, clock=clock, policy=POLICY)


# Writes of a clean run: 1 the mark, 2 the record.
CRASH_POINTS = {
    "before the mark": (1, "before"),
    "after the mark": (1, "after"),
    "after the act": (2, "before"),
    "after the record": (2, "after"),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_a_crash_at_any_point_then_a_redelivery_acts_once_and_records_one_outcome(point: str) -> None:
    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        store.put(Job("job"))
        store.crash_at = CRASH_POINTS[point]
        with pytest.raises(SimulatedCrash):
            await settle(store, world, clock, "first-worker")
        store.crash_at = None
        clock.at += LEASE + timedelta(seconds=1)  # the dead worker's lease runs out before the redelivery
        job = await settle(store, world, clock, "second-worker")
        assert world.acts == 1
        assert job.state is StepState.DONE and job.session_id == "s1"
        assert store.get("job") == job

    asyncio.run(scenario())


def test_a_crash_with_the_answer_in_flight_is_reconciled_not_repeated() -> None:
    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        store.put(Job("job"))
        world.crash_after_act = True
        with pytest.raises(SimulatedCrash):
            await settle(store, world, clock, "first-worker")
        world.crash_after_act = False
        clock.at += LEASE + timedelta(seconds=1)
        job = await settle(store, world, clock, "second-worker")
        assert (world.acts, job.session_id, job.state) == (1, "s1", StepState.DONE)

    asyncio.run(scenario())


def test_a_live_lease_of_another_worker_is_waited_for_not_reconciled() -> None:
    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        # Another worker marked the record and its create is in flight: Graph does not list it yet.
        store.put(Job("job").with_intent(Intent(StepState.ACTING, clock.now(), "first-worker", clock.now() + LEASE)))
        clock.at += LEASE / 2
        with pytest.raises(LeaseHeld) as held:
            await settle(store, world, clock, "second-worker")
        assert held.value.owner == "first-worker"
        assert world.acts == 0  # nothing created while the owner may still be acting
        clock.at += LEASE  # the owner died: its lease ran out, and Graph has nothing
        job = await settle(store, world, clock, "second-worker")
        assert (world.acts, job.session_id) == (1, "s1")

    asyncio.run(scenario())


def test_a_worker_that_fails_after_acting_ends_its_lease_so_a_redelivery_reconciles_at_once() -> None:
    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        store.put(Job("job"))
        world.crash_after_act = True  # raised in a process that lives on (the message is abandoned)
        with pytest.raises(SimulatedCrash):
            await settle(store, world, clock, "first-worker")
        stored = store.get("job")
        assert stored is not None and stored.state is StepState.ACTING
        assert not stored.intent.lease_live(clock.now())
        world.crash_after_act = False
        job = await settle(store, world, clock, "second-worker")  # no wait, no second act
        assert (world.acts, job.session_id) == (1, "s1")

    asyncio.run(scenario())


def test_two_workers_racing_on_one_record_act_once() -> None:
    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        store.put(Job("job"))
        outcomes = await asyncio.gather(settle(store, world, clock, "worker-a"),
                                        settle(store, world, clock, "worker-b"), return_exceptions=True)
        assert world.acts == 1
        winners = [o for o in outcomes if isinstance(o, Job)]
        assert len(winners) == 1 and winners[0].state is StepState.DONE
        assert all(isinstance(o, Contended | LeaseHeld) for o in outcomes if not isinstance(o, Job))

    asyncio.run(scenario())


def test_an_unknown_outcome_ends_the_lease_so_the_next_attempt_reconciles_at_once() -> None:
    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        store.put(Job("job"))
        world.answer_lost = True
        with pytest.raises(RetryLater):
            await settle(store, world, clock, "first-worker")
        stored = store.get("job")
        assert stored is not None and stored.state is StepState.ACTING
        assert not stored.intent.lease_live(clock.now())
        world.answer_lost = False
        job = await settle(store, world, clock, "second-worker")  # no waiting for a lease
        assert (world.acts, job.session_id) == (1, "s1")

    asyncio.run(scenario())


def test_a_transient_refusal_before_acting_returns_the_record_to_planned() -> None:
    class Busy(Actions):
        async def act(self, job: Job) -> Job:
            raise RetryLater(GraphError(429, "TooManyRequests", "slow down"), after=5.0)

    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        store.put(Job("job"))
        with pytest.raises(RetryLater):
            await run_step(store.get("job"), Busy(world), store, owner="w", clock=clock,  # type: ignore[arg-type]
                           policy=POLICY)
        stored = store.get("job")
        assert stored is not None and stored.state is StepState.PLANNED and stored.owner is None

    asyncio.run(scenario())


def test_points_excluded_are_recorded_before_the_record_is_acted_on_again() -> None:
    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        world.refuse = {"b"}
        store.put(Job("job"))
        # Writes: mark, exclusion recorded as planned, mark again, then the record: crash before the last.
        store.crash_at = (4, "before")
        with pytest.raises(SimulatedCrash):
            await settle(store, world, clock, "first-worker")
        stored = store.get("job")
        assert stored is not None and stored.excluded == ("b",)
        store.crash_at = None
        clock.at += LEASE + timedelta(seconds=1)
        job = await settle(store, world, clock, "second-worker")
        assert world.acts == 1 and world.sessions == {"s1": ("a",)} and job.session_id == "s1"

    asyncio.run(scenario())


def test_a_long_act_renews_its_lease() -> None:
    class Slow(Actions):
        async def act(self, job: Job) -> Job:
            await asyncio.sleep(0.35)
            return await super().act(job)

    async def scenario() -> None:
        from orchestrators.kernel.clock import SYSTEM_CLOCK

        store = CrashingStore()
        world = World(FakeClock())
        store.put(Job("job"))
        policy = StepPolicy(lease=timedelta(seconds=0.3))
        task = asyncio.ensure_future(run_step(store.get("job"), Slow(world), store,  # type: ignore[arg-type]
                                              owner="w", clock=SYSTEM_CLOCK, policy=policy))
        await asyncio.sleep(0.25)
        during = store.get("job")
        assert during is not None and during.intent.lease_live(SYSTEM_CLOCK.now())
        job = await task
        assert job.state is StepState.DONE and store.writes >= 3  # mark, at least one renewal, record

    asyncio.run(scenario())


def test_run_steps_waits_for_the_owner_to_record_then_uses_its_outcome() -> None:
    async def scenario() -> None:
        clock, store = FakeClock(), CrashingStore()
        world = World(clock)
        store.put(Job("job"))
        owner_mark = await store.save(store.get("job").with_intent(  # type: ignore[union-attr]
            Intent(StepState.ACTING, clock.now(), "other", clock.now() + LEASE)))

        async def other_worker_finishes() -> None:
            await asyncio.sleep(0)
            await store.save(done(dataclasses.replace(owner_mark, session_id="theirs")))

        async def step(job: Job) -> Job:
            return await run_step(job, world.actions(), store, owner="me", clock=clock, policy=POLICY)

        finisher = asyncio.ensure_future(other_worker_finishes())
        results = await run_steps([owner_mark], step, store.reload, clock=clock, wait_budget=timedelta(seconds=60))
        await finisher
        assert world.acts == 0
        assert isinstance(results[0], Job) and results[0].session_id == "theirs"

    asyncio.run(scenario())


def test_records_marked_together_then_abandoned_by_a_dead_worker_are_each_acted_on_once() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        store = MemoryStepStore[Job](key=lambda j: j.key)
        world = World(clock)
        jobs = [store.put(Job(f"job{i}", points=(f"p{i}",))) for i in range(5)]
        marked = await mark_all(jobs, store, owner="first-worker", clock=clock, policy=POLICY)
        assert all(j.state is StepState.ACTING and j.owner == "first-worker" for j in marked)
        # It acts on two, then dies before recording either.
        world.crash_after_act = True
        for job in marked[:2]:
            with pytest.raises(SimulatedCrash):
                await Actions(world).act(job)
        world.crash_after_act = False
        clock.at += LEASE + timedelta(seconds=1)

        async def step(job: Job) -> Job:
            return await run_step(job, world.actions(), store, owner="second-worker", clock=clock, policy=POLICY)

        results = await run_steps([store.get(j.key) for j in jobs], step, store.reload,  # type: ignore[misc]
                                  clock=clock, wait_budget=timedelta(0))
        assert world.acts == 5 and len(world.sessions) == 5
        assert sorted(r.session_id for r in results if isinstance(r, Job)) == ["s1", "s2", "s3", "s4", "s5"]

    asyncio.run(scenario())


def test_an_attempt_acts_on_its_own_marks_without_reconciling_even_after_their_lease_ran_out() -> None:
    class NoReconcile(Actions):
        async def reconcile(self, job: Job) -> Job | None:
            raise AssertionError("an attempt never reconciles its own marks")

    async def scenario() -> None:
        clock = FakeClock()
        store = MemoryStepStore[Job](key=lambda j: j.key)
        world = World(clock)
        [job] = await mark_all([store.put(Job("job"))], store, owner="me", clock=clock, policy=POLICY)
        clock.at += LEASE * 2  # a long queue of creates ahead of it (throttling)
        settled = await run_step(job, NoReconcile(world), store, owner="me", clock=clock, policy=POLICY)
        assert (world.acts, settled.state) == (1, StepState.DONE)

    asyncio.run(scenario())
