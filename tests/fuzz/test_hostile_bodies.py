"""Whatever a sender puts in a message, each queue function returns and says what happened in one event.

A bounded, seeded slice runs here (the same generators as `bench/fuzz.py`, which runs tens of thousands).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.hostile import Case, LoopThread, Rig, cases

pytestmark = pytest.mark.timeout(600)

SLICE = settings(max_examples=600, derandomize=True, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))


def _deliver(rig: tuple[LoopThread, Rig], case: Case) -> None:
    loop, fuzz = rig
    verdict = loop.run(fuzz.deliver(case))
    assert not verdict.problems, (case.why, case.body[:300], verdict.problems)


@SLICE
@given(case=cases("restore"))
def test_every_restore_body_ends_in_one_terminal_event(rig, case):
    _deliver(rig, case)


@SLICE
@given(case=cases("browse"))
def test_every_browse_body_ends_in_one_terminal_event(rig, case):
    _deliver(rig, case)


@SLICE
@given(case=cases("activation"))
def test_every_activation_body_ends_in_one_terminal_event(rig, case):
    _deliver(rig, case)


KNOWN_HOSTILE = {
    "nested thousands deep": b'{"requestId": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    "thousands of digits": b'{"requestId": "n-1", "artifacts": [{"restorePointId": ' + b"7" * 5_000 + b"}]}",
    "year 1 with an offset": json.dumps({"requestId": "t-1", "selection": {
        "users": ["user00001@contoso.com"], "pointInTime": "0001-01-01T00:00:00+05:00"}}).encode(),
    "year 9999 with an offset": json.dumps({"requestId": "t-2", "selection": {
        "users": ["user00001@contoso.com"], "pointInTime": "9999-12-31T23:00:00-05:00"}}).encode(),
    "a lone surrogate": b'{"requestId": "s-1", "incidentId": "\\udfff", "artifacts": [{"restorePointId": "a"}]}',
    "an identifier ending in a line break": b'{"requestId": "id-1\\n", "artifacts": [{"restorePointId": "a"}]}',
    "a key Table storage refuses": b'{"requestId": "k-1", "artifacts": [{"restorePointId": "a/b#c?"}]}',
    "control characters that grow six-fold": b'{"requestId": "c-1", "reason": "' + b"\\u0001" * 40_000 + b'"}',
    "not ISO 8601": json.dumps({"requestId": "i-1", "selection": {
        "users": ["user00001@contoso.com"], "pointInTime": "2026-11-20T03:00:00.Z"}}).encode(),
}


@pytest.mark.parametrize("kind", ["restore", "browse", "activation"])
@pytest.mark.parametrize("name", sorted(KNOWN_HOSTILE))
def test_each_known_hostile_class_is_rejected_with_its_field(rig, kind, name):
    loop, fuzz = rig
    verdict = loop.run(fuzz.deliver(Case(kind, KNOWN_HOSTILE[name], True, name)))
    assert not verdict.problems, verdict.problems
    [rejected] = [e for e in verdict.events if e["type"] == f"{kind}.request.rejected"]
    assert all(error["field"] and error["message"] for error in rejected["data"]["errors"])
