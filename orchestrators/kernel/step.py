"""The one idempotent step: mark the intent, act once, record the outcome, reconcile an intent found in flight.

Every write the service makes in Graph (a restore session for a batch, a browse session for a restore point, a
bulk session and its bulk request) is a step. Its record is marked `acting` in a store before the call, with an
owner and a lease; the outcome is recorded right after. A later attempt that finds the record still `acting`:
- waits (`LeaseHeld`) while the lease is live and the owner is another worker, which may still be acting: its
  answer may arrive at any moment, and acting again now is how duplicates are made;
- otherwise reconciles: asks Graph whether the act happened and adopts the result, and acts again only when
  Graph says it did not.

The lease outlives one Graph call (its timeout plus throttling waits), and is renewed while an act runs longer
than a third of it, so a live owner never loses it. Writes are conditional on the version read, so of two workers
that race for one record exactly one marks it; the other sees `Contended` and leaves the record alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, Self, TypeVar

from orchestrators.kernel.clock import Clock
from orchestrators.kernel.errors import Contended, OrchestrationError, RetryLater


class StepState(StrEnum):
    """Where a step stands. The stored values are those of the first version's ledgers, so a row written by it
    is read the same way after an upgrade."""

    PLANNED = "planned"
    ACTING = "creating"
    DONE = "created"
    FAILED = "failed"


@dataclass(frozen=True)
class Intent:
    """The step's part of a record: its state and, while acting, since when, by whom, and until when."""

    state: StepState = StepState.PLANNED
    since: datetime | None = None
    owner: str | None = None
    lease_until: datetime | None = None

    @property
    def settled(self) -> bool:
        return self.state in (StepState.DONE, StepState.FAILED)

    def lease_live(self, now: datetime) -> bool:
        """True while the owner may still be acting (a mark without a lease, from the first version, is not)."""
        return self.state is StepState.ACTING and self.lease_until is not None and self.lease_until > now


@dataclass(frozen=True, kw_only=True)
class LeasedRecord:
    """The step's part of a record, in the field names of the first version's rows; a record kind is a frozen
    dataclass that extends this one with its own fields."""

    state: StepState = StepState.PLANNED
    creating_since: datetime | None = None
    owner: str | None = None
    lease_until: datetime | None = None

    @property
    def intent(self) -> Intent:
        return Intent(self.state, self.creating_since, self.owner, self.lease_until)

    def with_intent(self, intent: Intent) -> Self:
        return dataclasses.replace(self, state=intent.state, creating_since=intent.since,  # type: ignore[type-var]
                                   owner=intent.owner, lease_until=intent.lease_until)


class StepRecord(Protocol):
    """A record a step works on: a frozen dataclass with an `intent` and the store's version in `etag`."""

    @property
    def intent(self) -> Intent: ...

    @property
    def etag(self) -> str | None: ...

    def with_intent(self, intent: Intent) -> Self: ...


R = TypeVar("R", bound=StepRecord)


class StepStore(Protocol[R]):
    """Where step records live: Table storage in production, a dict in unit tests."""

    async def save(self, record: R) -> R:
        """Write `record` if the stored version is still `record.etag`; return it with the new version.
        Raises `Contended` when someone wrote it since."""
        ...

    async def reload(self, record: R) -> R:
        """The stored version of `record`'s row."""
        ...


class BulkStepStore(StepStore[R], Protocol[R]):
    async def save_many(self, records: list[R]) -> list[R | Contended]:
        """Save each record as `save` would, in as few writes as the store allows (a Table transaction holds
        up to 100 rows of one partition); a record someone else changed comes back as `Contended`."""
        ...


class StepActions(Protocol[R]):
    """What a capability supplies: the act and the reconcile; the mechanism does the rest."""

    async def act(self, record: R) -> R:
        """Do the work once. Return the record with the outcome: intent `DONE` or `FAILED` to settle, or
        `PLANNED` with changes (say, restore points excluded) to act again on the changed record."""
        ...

    async def reconcile(self, record: R) -> R | None:
        """The record was found `acting` with no live lease: adopt what the earlier act did (a settled record),
        or say it provably did nothing (None, or the record with what was learned on the way, not settled).
        Raise `RetryLater(outcome_unknown=True)` when Graph cannot tell."""
        ...


class LeaseHeld(OrchestrationError):
    """Another worker holds the step and may still be acting: wait until `until`, then look again."""

    def __init__(self, record: Any, owner: str | None, until: datetime) -> None:
        super().__init__(f"held by {owner or 'another worker'} until {until.isoformat()}")
        self.record = record
        self.owner = owner
        self.until = until


@dataclass(frozen=True)
class StepPolicy:
    lease: timedelta
    max_rounds: int = 6  # act again on a changed record at most this often in one attempt


async def mark_all(records: list[R], store: BulkStepStore[R], *, owner: str, clock: Clock,
                   policy: StepPolicy) -> list[R]:
    """Mark every planned record `acting` for this attempt in few writes; `run_step` then acts on each at once.

    Records in any other state are returned as they are (`run_step` reconciles or skips them), and so are
    planned ones another worker changed meanwhile (`run_step` then loses the race on its own write)."""
    planned = [i for i, r in enumerate(records) if r.intent.state is StepState.PLANNED]
    if not planned:
        return records
    now = clock.now()
    marks = [records[i].with_intent(Intent(StepState.ACTING, now, owner, now + policy.lease)) for i in planned]
    saved = await store.save_many(marks)
    result = list(records)
    for i, outcome in zip(planned, saved, strict=True):
        if not isinstance(outcome, Contended):
            result[i] = outcome
    return result


def done(record: R) -> R:
    return record.with_intent(Intent(StepState.DONE, record.intent.since))


def failed(record: R) -> R:
    return record.with_intent(Intent(StepState.FAILED, record.intent.since))


def again(record: R) -> R:
    """Act again on this changed record (recorded as planned first, so a crash in between loses nothing)."""
    return record.with_intent(Intent(StepState.PLANNED))


async def run_step(record: R, actions: StepActions[R], store: StepStore[R], *, owner: str, clock: Clock,
                   policy: StepPolicy) -> R:
    """Take one record to a settled state, acting at most once for each time it is marked."""
    for _ in range(policy.max_rounds):
        intent = record.intent
        if intent.settled:
            return record
        if intent.state is StepState.ACTING and intent.owner == owner:
            # Marked by this very attempt (`mark_all`) and not acted on yet (an owner is one attempt, and an act
            # that fails leaves `run_step` for good). Renew a lease that ran out while the record waited its turn.
            if not intent.lease_live(clock.now()):
                renewed = dataclasses.replace(intent, lease_until=clock.now() + policy.lease)
                record = await store.save(record.with_intent(renewed))
            record = await _act_under_lease(record, actions, store, clock, policy)
            if record.intent.settled:
                return record
            continue
        if intent.state is StepState.ACTING:
            now = clock.now()
            if intent.owner != owner and intent.lease_live(now):
                assert intent.lease_until is not None
                raise LeaseHeld(record, intent.owner, intent.lease_until)
            found = await actions.reconcile(record)
            if found is not None and found.intent.settled:
                return await store.save(found)
            record = found or record  # what the reconcile learned (not settled) is written with the mark
        now = clock.now()
        record = await store.save(record.with_intent(Intent(StepState.ACTING, now, owner, now + policy.lease)))
        record = await _act_under_lease(record, actions, store, clock, policy)
        if record.intent.settled:
            return record
    raise RetryLater(_not_settled(), after=30.0)


async def _act_under_lease(record: R, actions: StepActions[R], store: StepStore[R], clock: Clock,
                           policy: StepPolicy) -> R:
    keeper = _LeaseKeeper(record, store, clock, policy.lease)
    try:
        async with keeper.renewing():
            outcome = await actions.act(record)
        return await store.save(dataclasses.replace(outcome, etag=keeper.latest.etag))  # type: ignore[type-var]
    except RetryLater as retry:
        if retry.outcome_unknown:
            await _end_lease(store, keeper.latest, clock)
        else:  # Graph said no before acting: nothing to reconcile
            with contextlib.suppress(Exception):
                await store.save(keeper.latest.with_intent(Intent(StepState.PLANNED)))
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        # This worker is no longer acting (the act or its record failed here): keep the mark for the next attempt
        # to reconcile, and end the lease so that it need not wait. Only a worker that dies keeps its lease.
        await _end_lease(store, keeper.latest, clock)
        raise


async def _end_lease(store: StepStore[R], record: R, clock: Clock) -> None:
    with contextlib.suppress(Exception):
        await store.save(record.with_intent(dataclasses.replace(record.intent, lease_until=clock.now())))


class _LeaseKeeper:
    """Renews the lease of a long act; the act itself never writes the record, so versions stay ours."""

    def __init__(self, record: R, store: StepStore[Any], clock: Clock, lease: timedelta) -> None:
        self.latest: Any = record
        self._store = store
        self._clock = clock
        self._lease = lease

    @contextlib.asynccontextmanager
    async def renewing(self) -> Any:
        task = asyncio.ensure_future(self._renew_forever())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OrchestrationError):
                await task

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            intent = self.latest.intent
            self.latest = await self._store.save(self.latest.with_intent(
                dataclasses.replace(intent, lease_until=self._clock.now() + self._lease)))


def _not_settled() -> Any:
    from orchestrators.kernel.errors import GraphError

    return GraphError(None, "StepNotSettled", "the step changed too often in one attempt; trying again later")


async def run_steps(records: list[R], step: Callable[[R], Awaitable[R]], reload: Callable[[R], Awaitable[R]], *,
                    clock: Clock, wait_budget: timedelta, poll_seconds: float = 2.0) -> list[R | BaseException]:
    """Run many steps concurrently; wait for records held by other workers, within `wait_budget`.

    A held record is looked at again every `poll_seconds` (its owner usually records the outcome long before its
    lease ends). Returns each record settled, or the exception that stopped it (a `LeaseHeld` still held when
    the budget is spent among them), in the order given."""
    results: list[R | BaseException] = list(await asyncio.gather(*(step(r) for r in records),
                                                                  return_exceptions=True))
    deadline = clock.now() + wait_budget
    while True:
        held = [i for i, r in enumerate(results) if isinstance(r, LeaseHeld)]
        if not held or clock.now() >= deadline:
            return results
        await clock.sleep(poll_seconds)

        async def look_again(index: int) -> R:
            held_error = results[index]
            assert isinstance(held_error, LeaseHeld)
            return await step(await reload(held_error.record))

        later = await asyncio.gather(*(look_again(i) for i in held), return_exceptions=True)
        for index, result in zip(held, later, strict=True):
            results[index] = result


def new_owner() -> str:
    """Names one attempt at a message: its host and process, and a random part (a redelivery is a new owner)."""
    import os
    import socket
    import uuid

    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
