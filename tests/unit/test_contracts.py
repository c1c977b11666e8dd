import base64
import json

import pytest

from orchestrators.contracts import (
    ValidationPolicy,
    decode_body,
    echo_body,
    parse_restore_request,
    rejected_event,
)
from orchestrators.kernel.errors import Rejected

POLICY = ValidationPolicy(max_artifacts_per_request=10_000, allowed_destination_types=("new", "inPlace"))


def _parse(doc, message_id="msg-1", policy=POLICY):
    return parse_restore_request(doc, message_id, policy)


def _problems(doc, policy=POLICY, message_id="msg-1"):
    with pytest.raises(Rejected) as caught:
        _parse(doc, message_id, policy)
    return {e.field: e.message for e in caught.value.errors}


def test_a_minimal_request_takes_its_id_from_the_message_and_defaults_to_new():
    request = _parse({"artifacts": [{"restorePointId": "rp-1"}]})
    assert request.request_id == "msg-1"
    assert [(a.restore_point_id, a.destination_type) for a in request.artifacts] == [("rp-1", "new")]
    assert request.activate is False and request.dry_run is False


def test_the_contract_example_is_accepted_with_per_artifact_destinations():
    doc = {
        "requestId": "inc-4711-r1", "incidentId": "INC-4711", "requestedBy": "sentinel",
        "reason": "mass encryption detected", "destinationType": "new",
        "artifacts": [{"restorePointId": "a"}, {"restorePointId": "b", "destinationType": "inPlace"}],
        "activate": False, "dryRun": False,
    }
    request = _parse(doc)
    assert request.correlation_id == "INC-4711"
    assert [a.destination_type for a in request.artifacts] == ["new", "inPlace"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b'{"artifacts": [', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_undecodable_bodies_are_rejected_with_the_reason(body, expected):
    with pytest.raises(Rejected) as caught:
        decode_body(body)
    assert expected in caught.value.errors[0].message


def test_every_problem_is_reported_with_its_field():
    problems = _problems({
        "requestId": "has spaces!",
        "artifacts": [{"restorePointId": ""}, {"restorePointId": "ok", "destinationType": "elsewhere"}, 7],
        "activate": "yes",
        "dryRn": True,
    })
    assert set(problems) == {"requestId", "artifacts[0].restorePointId", "artifacts[1].destinationType",
                             "artifacts[2]", "activate", "dryRn"}
    assert "spelling" in problems["dryRn"]


def test_wrong_types_are_named():
    problems = _problems({"artifacts": {"restorePointId": "x"}, "incidentId": 12})
    assert "must be an array" in problems["artifacts"]
    assert "must be a string" in problems["incidentId"]


def test_more_artifacts_than_the_limit_are_rejected():
    doc = {"artifacts": [{"restorePointId": f"rp-{i}"} for i in range(10_001)]}
    assert "at most 10000" in _problems(doc)["artifacts"]


def test_a_destination_forbidden_by_policy_is_rejected():
    policy = ValidationPolicy(10_000, ("new",))
    problems = _problems({"artifacts": [{"restorePointId": "a", "destinationType": "inPlace"}]}, policy)
    assert "not allowed" in problems["artifacts[0].destinationType"]


def test_the_same_point_twice_is_kept_once_but_with_two_destinations_is_rejected():
    request = _parse({"artifacts": [{"restorePointId": "a"}, {"restorePointId": "a"}]})
    assert len(request.artifacts) == 1
    problems = _problems({"artifacts": [{"restorePointId": "a"}, {"restorePointId": "a",
                                                                   "destinationType": "inPlace"}]})
    assert "artifacts[0]" in problems["artifacts[1].destinationType"]


def test_selection_is_accepted_and_activation_is_refused_until_supported():
    request = _parse({"selection": {"users": ["a@b.c"], "pointInTime": "2026-11-20T03:00:00Z"}})
    assert request.selection is not None and request.selection.users == ("a@b.c",)
    problems = _problems({"artifacts": [{"restorePointId": "a"}], "activate": True})
    assert "activate=false" in problems["activate"]


def test_no_message_id_and_no_request_id_is_rejected():
    assert "requestId" in _problems({"artifacts": [{"restorePointId": "a"}]}, message_id=None)


def test_the_payload_hash_tells_a_redelivery_from_a_changed_request():
    a = _parse({"requestId": "r", "artifacts": [{"restorePointId": "a"}]})
    b = _parse({"artifacts": [{"restorePointId": "a"}], "requestId": "r", "reason": "other words"})
    c = _parse({"requestId": "r", "artifacts": [{"restorePointId": "b"}]})
    assert a.payload_hash == b.payload_hash != c.payload_hash


def test_rejection_echoes_text_bodies_and_base64_for_binary_ones():
    event = rejected_event("restore", "m1", None, None, [], b"not json")
    assert event.data["body"] == "not json" and "bodyEncoding" not in event.data
    binary = b"\xff\x00\x01"
    data = echo_body(binary)
    assert data["bodyEncoding"] == "base64" and base64.b64decode(data["body"]) == binary


def test_huge_bodies_are_echoed_truncated_with_their_size_and_hash():
    body = json.dumps({"artifacts": [{"restorePointId": "x" * 30}] * 10_001}).encode()
    data = echo_body(body)
    assert data["bodyTruncated"] is True and data["bodySize"] == len(body)
    assert len(data["body"].encode()) <= 64_000


def test_cloud_event_shape_matches_the_contract():
    event = rejected_event("restore", "req-1", "req-1", "INC-1", [], b"{}")
    doc = event.to_document()
    assert doc["specversion"] == "1.0" and doc["source"] == "/restore-orchestrator"
    assert doc["id"] == "req-1:rejected" and doc["type"] == "restore.request.rejected"
    assert doc["subject"] == "req-1" and doc["datacontenttype"] == "application/json"
    assert event.correlation_id == "INC-1"
    assert event.application_properties() == {"type": "restore.request.rejected", "requestId": "req-1",
                                              "incidentId": "INC-1"}


def test_a_128_character_request_id_still_gives_event_ids_service_bus_accepts():
    from orchestrators.contracts import CloudEvent

    request_id = "r" * 128
    event = CloudEvent(id=f"{request_id}:session:199:failed", type="restore.session.failed", subject=request_id,
                       data={}, correlation_id=request_id, request_id=request_id)
    again = CloudEvent(id=f"{request_id}:session:199:failed", type="restore.session.failed", subject=request_id,
                       data={}, correlation_id=request_id, request_id=request_id)
    assert len(event.id) <= 128 and event.id == again.id  # still deterministic for duplicate detection
    assert event.to_document()["id"] == event.id


def test_an_event_too_large_for_service_bus_is_cut_down_keeping_its_scalars():
    from orchestrators.contracts import CloudEvent, event_size, shrink_to_fit

    remaining = [{"index": i, "restorePointIds": [f"{i:05d}-{j:02d}-" + "x" * 30 for j in range(50)]}
                 for i in range(200)]
    event = CloudEvent(id="r:failed:8", type="restore.request.failed", subject="r",
                       data={"requestId": "r", "attempts": 8, "remaining": remaining}, correlation_id="r",
                       request_id="r")
    assert event_size(event) > 240_000
    small = shrink_to_fit(event, 240_000)
    assert event_size(small) <= 240_000
    assert small.data["requestId"] == "r" and small.data["attempts"] == 8
    assert small.data["truncated"] is True and small.data["truncatedLists"] == {"remaining": 200}
    assert small.id == event.id
    assert shrink_to_fit(small, 240_000) is small  # what fits is left alone


def test_unknown_fields_come_first_by_name_then_the_fields_in_the_contracts_order():
    problems = _problems({"zeta": 1, "requestId": "bad id", "alpha": 2, "activate": "no",
                          "artifacts": [{"restorePointId": "a", "x": 1}, {"restorePointId": ""}]})
    assert list(problems) == ["alpha", "zeta", "requestId", "activate", "artifacts[0].x",
                              "artifacts[1].restorePointId"]


def test_more_than_fifty_problems_are_listed_as_fifty_and_a_count():
    with pytest.raises(Rejected) as caught:
        _parse({"artifacts": [{"restorePointId": ""}] * 80})
    errors = caught.value.errors
    assert len(errors) == 51 and errors[-1].field == "(more)" and "30 further problems" in errors[-1].message
    assert [e.field for e in errors[:2]] == ["artifacts[0].restorePointId", "artifacts[1].restorePointId"]


def test_a_destination_is_judged_only_for_a_usable_restore_point():
    problems = _problems({"artifacts": [{"restorePointId": "a/b", "destinationType": "elsewhere"}]})
    assert set(problems) == {"artifacts[0].restorePointId"}


def test_a_request_that_is_not_an_object_is_rejected_as_a_whole():
    assert _problems(["a"]) == {"(body)": "must be a JSON object, got an array"}
