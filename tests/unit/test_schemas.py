"""The published JSON Schemas: committed and current, and they agree with the service.

A body the schema rejects, the service rejects, and the other way round, on a corpus: the contract's examples,
the bad requests of the unit tests, and a few hundred hostile bodies (tests/support/hostile.py). The rules JSON
Schema cannot say are the known exceptions below (also listed in the README, "Schemas"): a corpus body one of them
applies to is skipped with its reason, and each exception is shown to be real by one body on which schema and
service disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from orchestrators.contracts import (
    BULK_MAX_DRIVES,
    ValidationPolicy,
    decode_body,
    parse_activation_request,
    parse_browse_request,
    parse_instant,
    parse_restore_request,
    rejected_event,
)
from orchestrators.contracts.event_models import validate_event
from orchestrators.contracts.schemas import SCHEMA_DIR, SCHEMAS, stale
from orchestrators.kernel.errors import FieldError, Rejected
from tests.support import hostile
from tests.unit.test_activation_contract import BAD_APPROVALS
from tests.unit.test_browse_contract import BAD_BROWSE_REQUESTS
from tests.unit.test_selection_contract import BAD_SELECTIONS

#: The service's defaults, which the schemas state (MAX_ARTIFACTS_PER_REQUEST, ALLOWED_DESTINATION_TYPES).
POLICY = ValidationPolicy(10_000, ("new", "inPlace"), activation_supported=True)
MAX = POLICY.max_artifacts_per_request
MESSAGE_ID = "msg-1"
FILES = {"restore": "restore-request.schema.json", "browse": "browse-request.schema.json",
         "activation": "activation-request.schema.json"}
PARSERS: dict[str, Callable[[Any], object]] = {
    "restore": lambda doc: parse_restore_request(doc, MESSAGE_ID, POLICY),
    "browse": lambda doc: parse_browse_request(doc, MESSAGE_ID),
    "activation": lambda doc: parse_activation_request(doc, MESSAGE_ID),
}


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8")))


VALIDATORS = {kind: _validator(name) for kind, name in FILES.items()}


def test_the_committed_schemas_are_what_the_models_generate():
    assert stale() == [], "run python -m orchestrators.contracts.schemas and commit schemas/"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_schema_is_a_valid_draft_2020_12_schema_with_an_id(name):
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("urn:restore-orchestrator:schemas:") and schema["title"] and schema["description"]


# -- the rules JSON Schema cannot say --------------------------------------------------------------------------

_CONTROLS = {*range(0x00, 0x20), *range(0x7F, 0xA0)}


def _unprintable_beyond_controls(text: Any) -> bool:
    """Python refuses as unprintable more than the control characters the schemas refuse (format characters,
    separators other than the space, private use, unassigned code points)."""
    return isinstance(text, str) and any(not c.isprintable() and ord(c) not in _CONTROLS for c in text)


def _strings_with_printable_rule(kind: str, doc: dict[str, Any]) -> Iterator[Any]:
    yield doc.get("incidentId")
    lists = {"restore": [], "browse": ["restorePointIds"], "activation": ["sessionIds"]}[kind]
    for name in lists:
        yield from doc.get(name) if isinstance(doc.get(name), list) else ()
    artifacts = doc.get("artifacts")
    for item in artifacts if kind == "restore" and isinstance(artifacts, list) else ():
        yield item.get("restorePointId") if isinstance(item, dict) else None
    selection = doc.get("selection")
    if kind == "restore" and isinstance(selection, dict):
        for name in ("users", "directoryObjectIds", "protectionUnitIds"):
            yield from selection.get(name) if isinstance(selection.get(name), list) else ()


def _printable(kind: str, doc: dict[str, Any]) -> bool:
    return any(_unprintable_beyond_controls(text) for text in _strings_with_printable_rule(kind, doc))


def _duplicate_with_two_destinations(kind: str, doc: dict[str, Any]) -> bool:
    artifacts = doc.get("artifacts")
    if kind != "restore" or not isinstance(artifacts, list):
        return False
    default = doc.get("destinationType", "new")
    seen: dict[Any, Any] = {}
    for item in artifacts:
        if isinstance(item, dict) and isinstance(item.get("restorePointId"), str):
            destination = item.get("destinationType", default)
            if seen.setdefault(item["restorePointId"], destination) != destination:
                return True
    return False


def _selection(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    selection = doc.get("selection") if kind == "restore" else None
    return selection if isinstance(selection, dict) else {}


def _selection_total_over_the_limit(kind: str, doc: dict[str, Any]) -> bool:
    lists = [v for n in ("users", "directoryObjectIds", "protectionUnitIds")
             if isinstance(v := _selection(kind, doc).get(n), list)]
    return sum(map(len, lists)) > min(MAX, BULK_MAX_DRIVES) and all(len(v) <= MAX for v in lists)


def _instants(kind: str, doc: dict[str, Any]) -> list[Any]:
    selection = _selection(kind, doc)
    return [selection.get("pointInTime"), selection.get("notBefore")]


def _not_before_not_earlier(kind: str, doc: dict[str, Any]) -> bool:
    parsed = [parse_instant(v) if isinstance(v, str) else None for v in _instants(kind, doc)]
    return all(p is not None and not isinstance(p, str) for p in parsed) and parsed[1] >= parsed[0]  # type: ignore


def _day_beyond_its_month(kind: str, doc: dict[str, Any]) -> bool:
    return any(isinstance(v, str) and "not a valid date-time" in str(parse_instant(v)) for v in _instants(kind, doc))


@dataclass(frozen=True)
class Exception_:
    name: str
    reason: str
    applies: Callable[[str, dict[str, Any]], bool]
    #: A body (kind, document, policy, message id) on which schema and service disagree because of this rule.
    example: tuple[str, Any, ValidationPolicy, str | None]


def _never(kind: str, doc: dict[str, Any]) -> bool:
    return False


#: The service's rules that the schemas cannot express. The corpus is sent with a usable MessageId and the default
#: policy, so the rules that depend on those never apply to it.
KNOWN_EXCEPTIONS = [
    Exception_("duplicate with two destinations", "a restore point listed twice with two destinations",
               _duplicate_with_two_destinations,
               ("restore", {"artifacts": [{"restorePointId": "a"}, {"restorePointId": "a",
                                                                    "destinationType": "inPlace"}]},
                POLICY, MESSAGE_ID)),
    Exception_("selection size", "more than MAX_ARTIFACTS_PER_REQUEST OneDrives over the three selector lists",
               _selection_total_over_the_limit,
               ("restore", {"selection": {"users": [f"u{i}@c.d" for i in range(MAX)],
                                          "protectionUnitIds": ["pu-1"], "pointInTime": "2026-11-20T03:00:00Z"}},
                POLICY, MESSAGE_ID)),
    Exception_("notBefore before pointInTime", "selection.notBefore not before selection.pointInTime",
               _not_before_not_earlier,
               ("restore", {"selection": {"users": ["a@b.c"], "pointInTime": "2026-11-20T03:00:00Z",
                                          "notBefore": "2026-11-21T03:00:00Z"}}, POLICY, MESSAGE_ID)),
    Exception_("day of month", "a day beyond the length of its month (2026-02-30)", _day_beyond_its_month,
               ("restore", {"selection": {"users": ["a@b.c"], "pointInTime": "2026-02-30T03:00:00Z"}},
                POLICY, MESSAGE_ID)),
    Exception_("printable", "characters Unicode does not class as printable beyond the control characters "
                            "(format characters, separators other than the space, private use, unassigned)",
               _printable, ("restore", {"incidentId": "INC\u200e1", "artifacts": [{"restorePointId": "a"}]},
                            POLICY, MESSAGE_ID)),
    Exception_("MessageId", "no requestId, and a MessageId that is no usable requestId", _never,
               ("browse", {"restorePointIds": ["a"]}, POLICY, "not a request id!")),
    Exception_("policy", "ALLOWED_DESTINATION_TYPES, MAX_ARTIFACTS_PER_REQUEST other than the defaults the schemas "
                         "state", _never,
               ("restore", {"artifacts": [{"restorePointId": "a", "destinationType": "inPlace"}]},
                ValidationPolicy(10_000, ("new",), True), MESSAGE_ID)),
    Exception_("requestId reused", "a requestId reused with another payload (the ledger knows)", _never,
               ("restore", {"requestId": "r-1", "artifacts": [{"restorePointId": "a"}]}, POLICY, MESSAGE_ID)),
]
#: Refused before the document exists (decode_body): size, UTF-8, NaN and Infinity, number digits, nesting depth,
#: lone surrogates. The schemas describe the decoded document.
BEFORE_THE_DOCUMENT = "refused before decoding (size, UTF-8, JSON, NaN/Infinity, number digits, depth, surrogates)"


def _service_accepts(kind: str, doc: Any, policy: ValidationPolicy = POLICY, message_id: str | None = MESSAGE_ID
                     ) -> bool:
    parsers = {"restore": lambda: parse_restore_request(doc, message_id, policy),
               "browse": lambda: parse_browse_request(doc, message_id),
               "activation": lambda: parse_activation_request(doc, message_id)}
    try:
        parsers[kind]()
    except Rejected:
        return False
    return True


def _verdict(kind: str, body: bytes) -> str | None:
    """None when schema and service agree on the body; the reason it is skipped, when a known exception applies;
    raises AssertionError when they disagree for no known reason."""
    try:
        doc = decode_body(body)
    except Rejected:
        return BEFORE_THE_DOCUMENT
    if isinstance(doc, dict):
        for known in KNOWN_EXCEPTIONS:
            if known.applies(kind, doc):
                return known.reason
    schema_accepts = VALIDATORS[kind].is_valid(doc)
    service_accepts = _service_accepts(kind, doc)
    why = [e.message[:200] for e in VALIDATORS[kind].iter_errors(doc)][:3]
    assert schema_accepts == service_accepts, (kind, body[:300], f"schema: {schema_accepts} {why}",
                                               f"service: {service_accepts}")
    return None


@pytest.mark.parametrize("known", KNOWN_EXCEPTIONS, ids=lambda k: k.name)
def test_each_known_exception_is_a_rule_the_schema_cannot_say(known):
    kind, doc, policy, message_id = known.example
    assert VALIDATORS[kind].is_valid(doc), "the schema accepts the example"
    if known.name == "requestId reused":
        return  # a single body is fine; the ledger rejects the second one with other content
    assert not _service_accepts(kind, doc, policy, message_id), "the service rejects it"


# -- the corpus -----------------------------------------------------------------------------------------------

PIT = "2026-11-20T03:00:00Z"
CONTRACT_EXAMPLES = [
    ("restore", {"requestId": "inc-4711-r1", "incidentId": "INC-4711", "requestedBy": "sentinel-playbook-ransomware",
                 "reason": "mass encryption detected", "destinationType": "new",
                 "artifacts": [{"restorePointId": "1f1fccc3-a642-4f61-bf49-f37b9a888279"},
                               {"restorePointId": "1f1fccc3-a642-4f61-bf49-f37b9a888280",
                                "destinationType": "inPlace"}],
                 "activate": False, "dryRun": False}),
    ("restore", {"requestId": "inc-4711-r2", "incidentId": "INC-4711", "destinationType": "inPlace",
                 "selection": {"users": ["alice@contoso.com", "bob@contoso.com"], "pointInTime": PIT}}),
    ("restore", {"requestId": "inc-4711-r2", "incidentId": "INC-4711", "destinationType": "inPlace",
                 "selection": {"users": ["alice@contoso.com", "bob@contoso.com"], "pointInTime": PIT,
                               "notBefore": "2026-11-13T00:00:00Z", "strategy": "auto"}}),
    ("browse", {"requestId": "inc-4711-b1", "incidentId": "INC-4711", "restorePointIds": ["1f1fccc3-..."]}),
    ("activation", {"requestId": "inc-4711-r1"}),
    ("activation", {"sessionIds": ["959ba739-..."]}),
]
UNIT_TEST_CASES = [
    *(("browse", doc) for doc, _, _ in BAD_BROWSE_REQUESTS),
    *(("activation", doc) for doc, _ in BAD_APPROVALS),
    *(("restore", {"requestId": "r1", "selection": selection}) for selection, _, _ in BAD_SELECTIONS),
    ("restore", {"requestId": "has spaces!", "activate": "yes", "dryRn": True,
                 "artifacts": [{"restorePointId": ""}, {"restorePointId": "ok", "destinationType": "elsewhere"}, 7]}),
    ("restore", {"artifacts": {"restorePointId": "x"}, "incidentId": 12}),
    ("restore", {"artifacts": [{"restorePointId": f"rp-{i}"} for i in range(MAX + 1)]}),
    ("restore", {"artifacts": [{"restorePointId": f"rp-{i}"} for i in range(MAX)]}),
    ("restore", {"artifacts": [{"restorePointId": "a"}, {"restorePointId": "a"}]}),
    ("restore", {"users": ["a@b.c"], "pointInTime": PIT, "artifacts": [{"restorePointId": "rp"}]}),
    ("restore", {"selection": {"users": ["a@b.c"], "pointInTime": PIT}, "artifacts": [{"restorePointId": "rp"}]}),
    ("restore", {"selection": {"directoryObjectIds": ["3f2b1c4d-0000-4000-8000-00000000000a"],
                               "pointInTime": "2026-11-20T04:00+01:00", "notBefore": "2026-11-19T03:00Z",
                               "strategy": "bulk"}}),
    ("restore", {"selection": {"users": [" a@b.c ", "A@B.C"], "protectionUnitIds": None, "pointInTime": PIT}}),
    ("restore", {"selection": {"users": [], "directoryObjectIds": None, "pointInTime": PIT}}),
    ("restore", {"selection": None}),
    ("restore", {"artifacts": None}),
    ("restore", {"requestId": None, "incidentId": None, "reason": None, "artifacts": [{"restorePointId": "a"}]}),
    ("restore", {"destinationType": None, "artifacts": [{"restorePointId": "a"}]}),
    ("restore", {"artifacts": [{"restorePointId": "a", "destinationType": None}]}),
    ("restore", {"selection": {"users": ["a@b.c"], "pointInTime": "2026-11-20T03:00:00Z\n"}}),
    ("restore", {"selection": {"users": ["a@b.c"], "pointInTime": "2026-11-20T03:00:00+05:60"}}),
    ("restore", {"selection": {"users": ["a@b.c"], "pointInTime": "\u0662\u0660\u0662\u0666-11-20T03:00:00Z"}}),
    ("restore", {"selection": {"users": ["a@b.c"], "pointInTime": "9999-01-01T00:00:00Z"}}),
    ("restore", {"selection": {"users": ["a@b.c\n"], "pointInTime": PIT}}),
    ("restore", {"requestId": "id-1\n", "artifacts": [{"restorePointId": "a"}]}),
    ("restore", {"artifacts": [{"restorePointId": "a\n"}]}),
    ("browse", {"restorePointIds": ["a"], "requestId": None, "incidentId": None}),
    ("activation", {"requestId": None, "sessionIds": ["a"]}),
    ("activation", {"requestId": "r", "sessionIds": None}),
    ("activation", {"requestId": None, "sessionIds": None}),
    ("activation", {"sessionIds": [f"s-{i}" for i in range(1001)]}),
]


def _body(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(("kind", "doc"), CONTRACT_EXAMPLES + UNIT_TEST_CASES)
def test_schema_and_service_agree_on_the_examples_and_the_unit_test_cases(kind, doc):
    reason = _verdict(kind, _body(doc))
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize(("kind", "doc"), CONTRACT_EXAMPLES)
def test_the_contract_examples_are_valid(kind, doc):
    assert VALIDATORS[kind].is_valid(doc) and _service_accepts(kind, doc)


CORPUS = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kind", hostile.KINDS)
@CORPUS
@given(data=hostile.cases("restore") | hostile.cases("browse") | hostile.cases("activation"))
def test_schema_and_service_agree_on_hostile_bodies(kind, data):
    body = data.body.replace(hostile.UNIQUE.encode(), b"u1")
    reason = _verdict(kind, body)
    event(f"skipped: {reason}" if reason else "compared")


texts = hostile.nasty_text | hostile.point_ids | hostile.instants_bad | hostile.instants_ok
values = texts | hostile.any_json
text_fields = st.one_of(
    st.builds(lambda t, v: ("restore", {"incidentId": t, "requestedBy": v, "artifacts": [{"restorePointId": "a"}]}),
              texts, values),
    st.builds(lambda t, d: ("restore", {"artifacts": [{"restorePointId": t, "destinationType": d}]}),
              texts, st.sampled_from(["new", "inPlace", "elsewhere"]) | hostile.any_json),
    st.builds(lambda t, name, when: ("restore", {"selection": {name: [t], "pointInTime": when}}),
              texts, st.sampled_from(["users", "directoryObjectIds", "protectionUnitIds"]),
              hostile.instants_ok | hostile.instants_bad),
    st.builds(lambda t, n: ("restore", {"selection": {"users": ["a@b.c"], "pointInTime": t, "notBefore": n}}),
              hostile.instants_ok | hostile.instants_bad, st.none() | hostile.instants_ok),
    st.builds(lambda t, r: ("browse", {"requestId": r, "restorePointIds": [t]}), texts, texts),
    st.builds(lambda t, r: ("activation", {"requestId": r} if r else {"sessionIds": [t]}), texts,
              st.none() | texts),
)


@CORPUS
@given(case=text_fields)
def test_schema_and_service_agree_on_hostile_text_in_every_field(case):
    kind, doc = case
    reason = _verdict(kind, _body(doc))
    event(f"skipped: {reason}" if reason else "compared")


# -- events -----------------------------------------------------------------------------------------------------

EVENTS = _validator("event.schema.json")


def _event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "r-1:x", "source": "/restore-orchestrator", "type": event_type,
            "subject": "r-1", "time": "2026-11-20T03:00:00.123Z", "datacontenttype": "application/json",
            "data": data}


def test_a_rejection_event_the_service_builds_matches_the_event_schema():
    document = rejected_event("restore", "r-1", "r-1", None, [FieldError("artifacts", "is required")],
                              b"{}").to_document()
    EVENTS.validate(document)
    validate_event(document)


@pytest.mark.parametrize(("event_type", "data", "valid"), [
    ("restore.session.created", {"requestId": "r", "incidentId": None, "sessionId": "s", "index": 0,
                                 "sessionCount": 1, "destinationType": "new", "restorePointIds": ["a"],
                                 "status": "draft", "createdDateTime": None, "workload": "oneDrive"}, True),
    ("restore.session.created", {"requestId": "r", "incidentId": None, "sessionId": "s", "index": 0,
                                 "sessionCount": 1, "destinationType": "new", "status": "draft",
                                 "createdDateTime": None, "restoreJobType": "granular",
                                 "items": [{"browseSessionId": "b", "itemKey": "k"}]}, True),
    ("restore.session.created", {"requestId": "r", "incidentId": None, "sessionId": "s", "index": 0,
                                 "sessionCount": 1, "destinationType": "new", "status": "draft",
                                 "createdDateTime": None}, False),
    ("restore.session.created", {"requestId": "r", "incidentId": None, "sessionId": "s", "index": 0,
                                 "sessionCount": 1, "destinationType": "new", "status": "draft",
                                 "createdDateTime": None, "truncated": True}, True),
    ("restore.session.failed", {"requestId": "r", "sessionId": "s", "index": 0, "stage": "activation",
                                "error": {"status": 400, "code": "x", "message": "y", "graphRequestId": None}}, True),
    ("restore.session.failed", {"requestId": "r", "index": 0, "error": None}, False),
    ("restore.request.completed", {"requestId": "r", "incidentId": "I", "sessionTotals": {"completed": 1},
                                   "artifactTotals": {"succeeded": 2}, "sessions": [{"sessionId": "s",
                                                                                      "status": "completed"}],
                                   "workloadTotals": {"oneDrive": {"sessions": {"completed": 1},
                                                                   "artifacts": {"succeeded": 2}}}}, True),
    ("restore.request.completed", {"requestId": "r", "incidentId": "I", "sessionTotals": {"completed": 1},
                                   "artifactTotals": {}, "sessions": [],
                                   "workloadTotals": {"teams": {"sessions": {}, "artifacts": {}}}}, False),
    ("restore.unknown.type", {}, False),
])
def test_the_event_schema_and_the_models_agree_on_what_an_event_must_hold(event_type, data, valid):
    document = _event(event_type, data)
    assert EVENTS.is_valid(document) is valid
    try:
        validate_event(document)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted is valid


def test_a_trace_context_is_a_w3c_traceparent():
    document = _event("restore.session.activated", {"requestId": "r", "sessionId": "s", "status": "activating"})
    document["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert EVENTS.is_valid(document)
    document["traceparent"] = "not a trace"
    assert not EVENTS.is_valid(document)
