import pytest

from orchestrators.adapters.tables.ledger import browse_row_key
from orchestrators.contracts import fit_event_id, parse_browse_request, rejected_event
from orchestrators.kernel.errors import FieldError, Rejected


def _problems(doc, message_id="msg-1"):
    with pytest.raises(Rejected) as caught:
        parse_browse_request(doc, message_id)
    return {e.field: e.message for e in caught.value.errors}


def test_the_contract_example_is_accepted():
    request = parse_browse_request(
        {"requestId": "inc-4711-b1", "incidentId": "INC-4711", "restorePointIds": ["1f1fccc3-a"]}, "msg-1")
    assert request.request_id == "inc-4711-b1"
    assert request.incident_id == "INC-4711" and request.correlation_id == "INC-4711"
    assert request.restore_point_ids == ("1f1fccc3-a",)


def test_a_request_without_an_id_takes_the_message_id():
    request = parse_browse_request({"restorePointIds": ["rp-1"]}, "msg-7")
    assert request.request_id == "msg-7" and request.correlation_id == "msg-7"


def test_a_restore_point_listed_twice_is_browsed_once_in_the_order_first_given():
    request = parse_browse_request({"restorePointIds": ["b", "a", "b", "c", "a"]}, "msg-1")
    assert request.restore_point_ids == ("b", "a", "c")


def test_a_hundred_restore_points_are_accepted_and_a_hundred_and_one_are_not():
    assert len(parse_browse_request({"restorePointIds": [f"p{i}" for i in range(100)]}, "m").restore_point_ids) == 100
    problems = _problems({"restorePointIds": [f"p{i}" for i in range(101)]})
    assert "at most 100" in problems["restorePointIds"]


#: Bad browse requests, the field named and words of its message (also a corpus for tests/unit/test_schemas.py).
BAD_BROWSE_REQUESTS = [
    ({"restorePointIds": ["a"], "restorePointId": "a"}, "restorePointId", "not a field"),
    ({"requestId": "r"}, "restorePointIds", "is required"),
    ({"restorePointIds": []}, "restorePointIds", "at least one"),
    ({"restorePointIds": "a"}, "restorePointIds", "must be an array"),
    ({"restorePointIds": ["a", ""]}, "restorePointIds[1]", "non-empty string"),
    ({"restorePointIds": ["  "]}, "restorePointIds[0]", "non-empty string"),
    ({"restorePointIds": [7]}, "restorePointIds[0]", "non-empty string"),
    ({"restorePointIds": ["x" * 257]}, "restorePointIds[0]", "at most 256"),
    ({"requestId": "has space", "restorePointIds": ["a"]}, "requestId", "1 to 128 characters"),
    ({"incidentId": "tab\there", "restorePointIds": ["a"]}, "incidentId", "printable"),
    ({"incidentId": 4711, "restorePointIds": ["a"]}, "incidentId", "must be a string"),
]


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    BAD_BROWSE_REQUESTS,
    ids=["unknown-field", "missing-list", "empty-list", "not-a-list", "empty-id", "blank-id", "number-id",
         "257-chars", "bad-request-id", "unprintable-incident", "numeric-incident"],
)
def test_bad_input_is_rejected_naming_the_field(doc, field, words):
    problems = _problems(doc)
    assert field in problems and words in problems[field]


def test_every_problem_is_reported_in_one_round_trip():
    problems = _problems({"restorePointIds": ["", 5, "ok"], "extra": 1, "requestId": ""})
    assert set(problems) == {"restorePointIds[0]", "restorePointIds[1]", "extra", "requestId"}


def test_a_request_without_an_id_on_a_message_without_a_usable_id_is_rejected():
    assert "requestId" in _problems({"restorePointIds": ["a"]}, message_id=None)


def test_a_body_that_is_not_an_object_is_rejected():
    assert "(body)" in _problems(["a"])


def test_the_rejection_event_has_the_browse_id_and_echoes_the_body():
    event = rejected_event("browse", "msg-9", None, None, [FieldError("restorePointIds", "x")], b'{"a": 1}')
    assert event.id == "msg-9:browse:rejected" and event.type == "browse.request.rejected"
    assert event.data["body"] == '{"a": 1}' and event.data["errors"] == [{"field": "restorePointIds",
                                                                          "message": "x"}]


def test_event_ids_keep_the_contract_form_unless_service_bus_would_refuse_them():
    short = "r-1:browse:1f1fccc3-a642-4f61-bf49-f37b9a888279"
    assert fit_event_id(short) == short
    long_id = "r" * 128 + ":browse:" + "p" * 256
    fitted = fit_event_id(long_id)
    assert len(fitted) <= 128 and fitted == fit_event_id(long_id)
    assert fitted != fit_event_id(long_id + "x")


def test_ledger_row_keys_escape_what_table_storage_refuses_and_stay_distinct():
    assert browse_row_key("1f1fccc3-a642") == "browse:1f1fccc3-a642"
    odd = browse_row_key("a/b\\c#d?e%f")
    assert not any(ch in odd for ch in "/\\#?")
    assert odd != browse_row_key("a%2Fb\\c#d?e%f")
    assert len(browse_row_key("\u00e9" * 256)) < 1024
