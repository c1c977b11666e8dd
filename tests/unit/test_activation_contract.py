from datetime import UTC, datetime, timedelta

import pytest

from orchestrators.activation.coordinator import parse_activation_request
from orchestrators.activation.records import Slots, order_key
from orchestrators.kernel.errors import Rejected, redact


def test_an_approval_by_request_id_is_keyed_by_it():
    command = parse_activation_request({"requestId": "inc-1-r1"}, "msg-1")
    assert (command.key, command.request_id, command.session_ids) == ("inc-1-r1", "inc-1-r1", ())


def test_an_approval_by_session_ids_is_keyed_by_the_message_and_drops_repeats():
    command = parse_activation_request({"sessionIds": ["a", "b", "a"]}, "msg-2")
    assert (command.key, command.request_id, command.session_ids) == ("msg-2", None, ("a", "b"))


#: Bad approvals and the field each names (also a corpus for tests/unit/test_schemas.py).
BAD_APPROVALS = [
    ({}, "(body)"),
    ({"requestId": "r", "sessionIds": ["a"]}, "(body)"),
    ({"sessionIds": []}, "sessionIds"),
    ({"sessionIds": ["ok", ""]}, "sessionIds[1]"),
    ({"requestId": "has space"}, "requestId"),
    ({"requestId": "r", "approve": True}, "approve"),
    (["r"], "(body)"),
]


@pytest.mark.parametrize(("document", "field"), BAD_APPROVALS)
def test_bad_approvals_are_rejected_naming_the_field(document, field):
    with pytest.raises(Rejected) as caught:
        parse_activation_request(document, "m")
    assert field in {e.field for e in caught.value.errors}


def test_the_queue_order_is_the_order_activation_was_asked_for():
    t0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    keys = [order_key(t0 + timedelta(seconds=5), "b", 0), order_key(t0, "z", 7), order_key(t0, "z", 10),
            order_key(t0 + timedelta(days=400), "a", 0)]
    assert sorted(keys) == [keys[1], keys[2], keys[0], keys[3]]


def test_free_slots_never_go_below_zero():
    assert Slots({"a": {}, "b": {}}).free(25) == 23
    assert Slots({str(i): {} for i in range(30)}).free(25) == 0


def test_secrets_are_redacted_from_error_text():
    text = redact("Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=abc+/=;EntityPath=q "
                  "AccountKey=Zm9vYmFy== sig=abc%3D&se=1 Authorization: Bearer eyJ0eXAi.x.y")
    for secret in ("abc+/=", "Zm9vYmFy==", "abc%3D", "eyJ0eXAi"):
        assert secret not in text
    assert "SharedAccessKeyName=k" in text and "se=1" in text
