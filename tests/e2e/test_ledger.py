import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrators.adapters.tables.ledger import Ledger, PayloadConflict
from orchestrators.contracts import Artifact, RestoreRequest
from orchestrators.kernel.errors import Contended
from orchestrators.kernel.step import Intent, StepState, done
from orchestrators.restore.planner import plan_sessions


def _request(n: int, request_id: str | None = None, payload_hash: str = "h1") -> RestoreRequest:
    artifacts = tuple(Artifact(f"rp-{i}", "new") for i in range(n))
    return RestoreRequest(request_id or f"req-{uuid.uuid4().hex[:8]}", "INC-1", "tests", "ledger test",
                          artifacts, False, False, payload_hash)


@pytest.fixture
async def ledger(azurite):
    ledger = Ledger.from_connection_string(azurite.connection_string, f"t{uuid.uuid4().hex[:12]}")
    yield ledger
    await ledger.aclose()


async def test_opening_a_request_twice_returns_the_same_batches(ledger):
    request = _request(120)
    plans = plan_sessions(request.artifacts, 50)
    first = await ledger.open_request(request, plans)
    second = await ledger.open_request(request, plans)
    assert [b.index for b in first] == [0, 1, 2]
    assert [b.restore_point_ids for b in second] == [p.restore_point_ids for p in plans]


async def test_a_reused_request_id_with_another_payload_is_a_conflict(ledger):
    request = _request(3)
    await ledger.open_request(request, plan_sessions(request.artifacts, 50))
    other = _request(4, request.request_id, payload_hash="h2")
    with pytest.raises(PayloadConflict):
        await ledger.open_request(other, plan_sessions(other.artifacts, 50))


async def test_a_stale_etag_cannot_overwrite_a_created_batch(ledger):
    request = _request(2)
    [batch] = await ledger.open_request(request, plan_sessions(request.artifacts, 50))
    now = datetime.now(UTC)
    lease_until = now + timedelta(minutes=3)
    marked = await ledger.batches.save(batch.with_intent(Intent(StepState.ACTING, now, "w1", lease_until)))
    assert marked.state == StepState.ACTING and marked.creating_since is not None and marked.owner == "w1"
    created = await ledger.batches.save(done(replace(marked, session_id="sess-1", session_status="draft")))
    assert created.state == StepState.DONE and created.owner is None and created.lease_until is None
    with pytest.raises(Contended):
        await ledger.batches.save(marked.with_intent(Intent(StepState.ACTING, now, "w2", now)))  # the loser's ETag
    [stored] = await ledger.load_batches(request.request_id)
    assert stored.session_id == "sess-1" and stored == created


async def test_the_table_store_keeps_the_step_contract_of_the_memory_store(ledger):
    """The unit tests crash steps against the in-memory store; this holds the Table store to the same rules."""
    request = _request(60)
    batches = await ledger.open_request(request, plan_sessions(request.artifacts, 50))
    store = ledger.batches
    reloaded = await store.reload(batches[1])
    assert reloaded == batches[1] and reloaded.etag == batches[1].etag
    saved = await store.save(replace(batches[1], excluded=({"restorePointId": "rp-55", "code": "x"},)))
    assert saved.etag != batches[1].etag and (await store.reload(saved)).excluded == saved.excluded
    with pytest.raises(Contended):
        await store.save(batches[1])


async def test_two_hundred_batches_are_written_in_transactions_and_read_back_in_order(ledger):
    request = _request(10_000)
    batches = await ledger.open_request(request, plan_sessions(request.artifacts, 50))
    assert len(batches) == 200
    assert [b.index for b in batches] == list(range(200))
    assert sum(len(b.restore_point_ids) for b in batches) == 10_000
