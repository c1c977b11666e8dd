"""`selection` validation (the contract) and the pure steps of resolving it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrators.contracts import ValidationPolicy, parse_restore_request
from orchestrators.kernel.errors import Rejected
from orchestrators.selection.resolver import (
    NO_RESTORE_POINT,
    NOT_PROTECTED,
    AutoStrategy,
    Drive,
    SessionDurationModel,
    apply_points,
    bulk_outcomes,
    choose_strategy,
    identify,
    read_search,
    search_chunks,
    unit_filter,
    window,
)

POLICY = ValidationPolicy(max_artifacts_per_request=100, allowed_destination_types=("new", "inPlace"))
PIT = "2026-11-20T03:00:00Z"
GUID = "3f2b1c4d-0000-4000-8000-00000000000a"


def _parse(selection, **top):
    return parse_restore_request({"requestId": "r1", "selection": selection, **top}, "m", POLICY)


def _problems(selection, **top):
    with pytest.raises(Rejected) as caught:
        _parse(selection, **top)
    return {e.field: e.message for e in caught.value.errors}


def test_a_selection_of_users_defaults_to_auto_and_a_year_of_history():
    request = _parse({"users": ["Alice@contoso.com", "alice@contoso.com", "bob@contoso.com"], "pointInTime": PIT})
    selection = request.selection
    assert selection is not None and request.artifacts == ()
    assert selection.users == ("Alice@contoso.com", "bob@contoso.com")  # the repeat (any case) counts once
    assert selection.point_in_time == datetime(2026, 11, 20, 3, tzinfo=UTC)
    assert selection.not_before == selection.point_in_time - timedelta(days=365)
    assert selection.strategy == "auto"


def test_short_times_and_other_zones_are_read_as_utc():
    selection = _parse({"directoryObjectIds": [GUID], "pointInTime": "2026-11-20T04:00+01:00",
                        "notBefore": "2026-11-19T03:00Z", "strategy": "bulk"}).selection
    assert selection is not None
    assert selection.point_in_time == datetime(2026, 11, 20, 3, tzinfo=UTC)
    assert selection.not_before == datetime(2026, 11, 19, 3, tzinfo=UTC)


#: Bad selections, the field named and words of its message (also a corpus for tests/unit/test_schemas.py).
BAD_SELECTIONS = [
    ({"users": ["a@b.c"]}, "selection.pointInTime", "required"),
    ({"users": ["a@b.c"], "pointInTime": "2026-11-20T03:00:00"}, "selection.pointInTime", "zone"),
    ({"users": ["a@b.c"], "pointInTime": "yesterday"}, "selection.pointInTime", "ISO 8601"),
    ({"users": ["a@b.c"], "pointInTime": PIT, "notBefore": PIT}, "selection.notBefore", "before pointInTime"),
    ({"users": ["not-an-email"], "pointInTime": PIT}, "selection.users[0]", "email"),
    ({"directoryObjectIds": ["x"], "pointInTime": PIT}, "selection.directoryObjectIds[0]", "GUID"),
    ({"users": [], "pointInTime": PIT}, "selection", "at least one"),
    ({"pointInTime": PIT}, "selection", "at least one"),
    ({"users": ["a@b.c"], "pointInTime": PIT, "strategy": "fast"}, "selection.strategy", "auto, standard, bulk"),
    ({"users": ["a@b.c"], "pointInTime": PIT, "user": ["x@y.z"]}, "selection.user", "spelling"),
    ({"users": [f"u{i}@b.c" for i in range(60)], "protectionUnitIds": [f"pu{i}" for i in range(41)],
      "pointInTime": PIT}, "selection", "at most 100"),
    ("alice@contoso.com", "selection", "object"),
]


@pytest.mark.parametrize("selection, field, words", BAD_SELECTIONS)
def test_a_bad_selection_is_rejected_naming_the_field(selection, field, words):
    problems = _problems(selection)
    assert words in problems[field], problems


@pytest.mark.parametrize("when", ["\u0662\u0660\u0662\u0666-11-20T03:00:00Z", "2026-11-20T03:00:00+05:60"])
def test_instants_are_written_in_ascii_digits_with_zone_minutes_below_sixty(when):
    assert "selection.pointInTime" in _problems({"users": ["a@b.c"], "pointInTime": when})


def test_artifacts_and_selection_together_are_rejected():
    problems = _problems({"users": ["a@b.c"], "pointInTime": PIT}, artifacts=[{"restorePointId": "rp"}])
    assert "not both" in problems["artifacts"]


def test_the_payload_hash_covers_the_selection():
    a = _parse({"users": ["a@b.c"], "pointInTime": PIT})
    b = _parse({"users": ["a@b.c"], "pointInTime": "2026-11-20T04:00:00+01:00"})
    c = _parse({"users": ["a@b.c"], "pointInTime": PIT, "strategy": "bulk"})
    d = _parse({"users": ["a@b.c"], "pointInTime": PIT}, destinationType="inPlace")
    assert a.payload_hash == b.payload_hash
    assert len({a.payload_hash, c.payload_hash, d.payload_hash}) == 3


# -- pure resolution steps ------------------------------------------------------------------------------

UNITS = [
    {"id": "PU-1", "email": "alice@contoso.com", "directoryObjectId": GUID, "status": "protected"},
    {"id": "PU-2", "email": "bob@contoso.com", "directoryObjectId": "d2", "status": "unprotected"},
]


def test_selectors_are_matched_case_insensitively_and_misses_say_why():
    drives = identify([("users", "ALICE@contoso.com"), ("users", "bob@contoso.com"), ("users", "eve@contoso.com"),
                       ("directoryObjectIds", GUID.upper()), ("protectionUnitIds", "pu-9")], UNITS)
    assert [d.protection_unit_id for d in drives] == ["PU-1", "PU-2", None, "PU-1", None]
    assert [d.reason for d in drives] == [None, NOT_PROTECTED, "unknownUser", None, "unknownProtectionUnit"]


def test_each_protected_unit_is_searched_once_in_chunks_of_twenty():
    drives = [Drive(f"u{i}@c.d", "users", f"PU-{i}", unit_status="protected") for i in range(45)]
    drives.append(Drive("d-0", "directoryObjectIds", "PU-0", unit_status="protected"))  # the same drive again
    chunks = search_chunks(drives)
    assert [len(c) for c in chunks] == [20, 20, 5]
    assert sum(c.count("PU-0") for c in chunks) == 1


def test_search_answers_become_restore_points_or_the_reason_none_was_found():
    answer = {"searchResults": [{"restorePoint": {"id": "rp-1", "protectionDateTime": "2026-11-20T02:50:00Z",
                                                  "protectionUnit": {"id": "PU-1"}}}],
              "noResultProtectionUnitIds": ["PU-3"]}
    drives = [Drive("a", "users", "PU-1", None, None, "protected"),
              Drive("c", "users", "PU-3", None, None, "protected"),
              Drive("e", "users", reason="unknownUser")]
    resolved = apply_points(drives, read_search(answer))
    assert resolved[0].restore_point_id == "rp-1" and resolved[0].protection_date_time == "2026-11-20T02:50:00Z"
    assert resolved[1].reason == NO_RESTORE_POINT
    assert resolved[2].reason == "unknownUser"


def test_auto_chooses_bulk_only_above_the_threshold_and_within_graphs_bulk_limit():
    # Sessions that take 4 minutes whatever their size: one bulk session beats two waves of standard ones.
    auto = AutoStrategy(threshold=1250, per_session=50, max_active=25, model=SessionDurationModel(240, 0, 50))
    assert choose_strategy("auto", [1250], auto) == "standard"
    assert choose_strategy("auto", [1251], auto) == "bulk"
    assert choose_strategy("auto", [10_001], auto) == "standard"
    assert choose_strategy("standard", [5000], auto) == "standard"
    assert choose_strategy("bulk", [1], auto) == "bulk"


def test_the_window_never_reaches_past_the_moment_of_resolution():
    selection = _parse({"users": ["a@b.c"], "pointInTime": "2099-01-01T00:00:00Z"}).selection
    assert selection is not None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert window(selection, now) == (selection.not_before, now)


def test_filters_quote_their_values():
    assert unit_filter("users", "o'neil@c.d") == "email eq 'o''neil@c.d'"
    assert unit_filter("directoryObjectIds", GUID) == f"directoryObjectId eq '{GUID}'"


def test_bulk_outcomes_name_the_restore_point_graph_added_for_each_drive():
    drives = [Drive("alice@contoso.com", "users", "PU-1", "alice@contoso.com", None, "protected"),
              Drive("carol@contoso.com", "users", "PU-3", "carol@contoso.com", None, "protected"),
              Drive("eve@contoso.com", "users", reason="unknownUser")]
    artifacts = [{"status": "added", "restorePoint": {"id": "rp-1", "protectionDateTime": "t",
                                                      "protectionUnit": {"id": "pu-1"}}}]
    outcomes = bulk_outcomes(drives, artifacts)
    assert outcomes[0] == {"selector": "alice@contoso.com", "protectionUnitId": "PU-1", "restorePointId": "rp-1",
                           "protectionDateTime": "t", "status": "added"}
    assert outcomes[1]["reason"] == NO_RESTORE_POINT and outcomes[2]["reason"] == "unknownUser"
