"""The public contract in code: restore requests, their validation, and the CloudEvents we publish.

Validation collects every problem it finds (up to a limit) and names the field, so the automation
that sent a bad request can be fixed in one round trip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from orchestrators.kernel.errors import FieldError, Rejected

EVENT_SOURCE = "/restore-orchestrator"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
MAX_REPORTED_ERRORS = 50
MAX_ECHOED_BODY_BYTES = 64_000
#: Larger bodies are refused before parsing (a 10,000-artifact request is under 1 MB).
MAX_BODY_BYTES = 4_000_000
#: No field of the contract needs a number this long; longer ones are refused before Python converts them.
MAX_NUMBER_DIGITS = 30

# Patterns are used with fullmatch: `$` would also match before a trailing line break.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Table storage refuses / \ # ? and control characters in keys; Graph ids never contain them or spaces.
_ID_TEXT = re.compile(r"[^\x00-\x20\x7f-\x9f/\\#?\ud800-\udfff]+")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")
_REQUEST_FIELDS = frozenset(
    {"requestId", "incidentId", "requestedBy", "reason", "destinationType", "artifacts", "activate",
     "dryRun", "selection"}
)
_ARTIFACT_FIELDS = frozenset({"restorePointId", "destinationType"})


@dataclass(frozen=True)
class Artifact:
    restore_point_id: str
    destination_type: str


@dataclass(frozen=True)
class RestoreRequest:
    request_id: str
    incident_id: str | None
    requested_by: str | None
    reason: str | None
    artifacts: tuple[Artifact, ...]
    activate: bool
    dry_run: bool
    payload_hash: str
    destination_type: str = "new"
    selection: Selection | None = None

    @property
    def correlation_id(self) -> str:
        return self.incident_id or self.request_id


STRATEGIES = ("auto", "standard", "bulk")
#: Graph's limit on the drives of one bulk addition request.
BULK_MAX_DRIVES = 10_000
_SELECTION_FIELDS = frozenset({"users", "directoryObjectIds", "protectionUnitIds", "pointInTime", "notBefore",
                               "strategy"})
_EMAIL = re.compile(r"[^@\s/\\#?\x00-\x1f\x7f-\x9f]+@[^@\s/\\#?\x00-\x1f\x7f-\x9f]+\.[^@\s/\\#?\x00-\x1f\x7f-\x9f]+")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# RFC 3339: date, time to at least the minute, a zone. Python's fromisoformat alone accepts more.
_INSTANT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
#: Instants outside these years are refused: no restore point lies there, and date arithmetic stays in range.
EARLIEST_YEAR, LATEST_YEAR = 1970, 9998
RETENTION = timedelta(days=365)


@dataclass(frozen=True)
class Selection:
    """Restore by point in time: whose OneDrives, and the window their restore point must lie in."""

    users: tuple[str, ...]
    directory_object_ids: tuple[str, ...]
    protection_unit_ids: tuple[str, ...]
    point_in_time: datetime
    not_before: datetime
    strategy: str = "auto"

    @property
    def size(self) -> int:
        return len(self.users) + len(self.directory_object_ids) + len(self.protection_unit_ids)

    def canonical(self) -> dict[str, Any]:
        return {"users": list(self.users), "directoryObjectIds": list(self.directory_object_ids),
                "protectionUnitIds": list(self.protection_unit_ids),
                "pointInTime": self.point_in_time.isoformat(), "notBefore": self.not_before.isoformat(),
                "strategy": self.strategy}


@dataclass(frozen=True)
class ValidationPolicy:
    max_artifacts_per_request: int
    allowed_destination_types: tuple[str, ...]
    activation_supported: bool = False


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []
        self.dropped = 0

    def add(self, field: str, message: str) -> None:
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append(FieldError(field, message))
        else:
            self.dropped += 1

    def raise_if_any(self) -> None:
        if not self.items:
            return
        items = list(self.items)
        if self.dropped:
            items.append(FieldError("(more)", f"{self.dropped} further problems were not listed"))
        raise Rejected(items)


class _BadNumber(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _BadNumber(f"a number with {len(text.lstrip('-'))} digits (at most {MAX_NUMBER_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS + 10:
        raise _BadNumber(f"a number written with {len(text)} characters (at most {MAX_NUMBER_DIGITS + 10})")
    return float(text)


def _refuse_constant(name: str) -> Any:
    raise _BadNumber(f"{name}, which is not a JSON number")


def decode_body(body: bytes) -> Any:
    """Bytes to JSON, or `Rejected` saying why not, whatever the bytes: nothing here raises anything else.

    Python's parser would also take NaN and Infinity, numbers of any length (converted at great cost, or
    refused past 4,300 digits with a ValueError), nesting up to its recursion limit, and lone UTF-16
    surrogates that no later step can encode; each is refused here with the field it is in."""
    if not body or not body.strip():
        raise Rejected([FieldError("(body)", "the message body is empty; send a JSON object")])
    if len(body) > MAX_BODY_BYTES:
        raise Rejected([FieldError("(body)", f"the message body is {len(body)} bytes; at most {MAX_BODY_BYTES} "
                                             "are accepted (split the request)")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            [FieldError("(body)", f"the message body is not UTF-8 text (invalid byte at offset {exc.start})")]
        ) from None
    try:
        document = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                              parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise Rejected(
            [FieldError("(body)", f"the message body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                  f"column {exc.colno}")]
        ) from None
    except _BadNumber as exc:
        raise Rejected([FieldError("(body)", f"the message body holds {exc}")]) from None
    except RecursionError:
        raise Rejected([FieldError("(body)", "the message body is nested too deeply (no field of a request "
                                             "needs more than a few levels)")]) from None
    if _SURROGATE_ESCAPE.search(text):
        problems = [FieldError(path or "(body)", "must be valid Unicode text: it holds a lone UTF-16 surrogate "
                                                 f"({_preview(value)})")
                    for path, value in _lone_surrogates(document)]
        if problems:
            raise Rejected(problems[:MAX_REPORTED_ERRORS])
    return document


def _lone_surrogates(document: Any) -> list[tuple[str, str]]:
    """(field path, text) of every key or string value holding a lone surrogate; iterative, any depth."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", document)]
    while stack and len(found) < MAX_REPORTED_ERRORS:
        path, value = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                found.append((path, value))
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if _LONE_SURROGATE.search(key):
                    found.append((path or "(body)", key))
                    continue
                stack.append((where, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return sorted(found)


def _preview(value: Any, limit: int = 60) -> str:
    """A short, ASCII-safe rendering of a value for an error message, whatever its size or depth."""
    if isinstance(value, dict | list):
        return f"{_json_type(value)} of {len(value)} items"
    if isinstance(value, str):
        text = json.dumps(value[:limit])
        return text if len(value) <= limit else text[:-1] + '..."'
    return json.dumps(value)[:limit] if isinstance(value, bool | int | float) or value is None else "?"


def is_request_id(value: Any) -> bool:
    return isinstance(value, str) and _REQUEST_ID.fullmatch(value) is not None


def is_id_text(value: Any, limit: int = 256) -> bool:
    """An identifier Graph could have issued and Table storage can hold: printable, no spaces, no / \\ # ?."""
    return (isinstance(value, str) and len(value) <= limit and _ID_TEXT.fullmatch(value) is not None
            and value.isprintable())


def best_effort_incident_id(document: Any) -> str | None:
    """The incidentId of a document we are about to reject, if it is one the contract allows."""
    candidate = document.get("incidentId") if isinstance(document, dict) else None
    return candidate if isinstance(candidate, str) and text_field_problem(candidate, 128, True) is None else None


def best_effort_request_id(document: Any) -> str | None:
    """The requestId of a document we are about to reject, if it has a usable one."""
    if isinstance(document, dict):
        candidate = document.get("requestId")
        if is_request_id(candidate):
            return candidate
    return None


def text_field_problem(value: Any, limit: int, printable: bool = False) -> str | None:
    """What is wrong with an optional free-text field (None and absent are fine), in the contract's words."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be a string, got {_json_type(value)}"
    if not 1 <= len(value) <= limit:
        return f"must be 1 to {limit} characters long, got {len(value)}"
    if printable and not value.isprintable():
        return "must contain printable characters only"
    return None


def _check_text(errors: _Errors, doc: dict[str, Any], name: str, limit: int, printable: bool = False) -> None:
    problem = text_field_problem(doc.get(name), limit, printable)
    if problem:
        errors.add(name, problem)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _envelope(errors: _Errors, document: Any, fields: frozenset[str], kind: str,
              message_id: str | None) -> str | None:
    """What every request shares: a JSON object of known fields, its requestId (or the MessageId), incidentId."""
    if not isinstance(document, dict):
        raise Rejected([FieldError("(body)", f"must be a JSON object, got {_json_type(document)}")])
    for name in sorted(set(document) - fields):
        errors.add(name, f"is not a field of a {kind} request (check the spelling)")
    request_id = document.get("requestId")
    if request_id is not None and not is_request_id(request_id):
        errors.add("requestId", "must be 1 to 128 characters of letters, digits and . _ : -")
    if request_id is None:
        if not is_request_id(message_id):
            errors.add("requestId", "is required when the message has no usable MessageId")
        request_id = message_id
    _check_text(errors, document, "incidentId", 128, printable=True)
    return request_id if isinstance(request_id, str) else None


def parse_restore_request(document: Any, message_id: str | None, policy: ValidationPolicy) -> RestoreRequest:
    """Validate a decoded restore request against the contract and the operator's policy."""
    errors = _Errors()
    request_id = _envelope(errors, document, _REQUEST_FIELDS, "restore", message_id)
    _check_text(errors, document, "requestedBy", 256)
    _check_text(errors, document, "reason", 1024)

    for flag in ("activate", "dryRun"):
        if flag in document and not isinstance(document[flag], bool):
            errors.add(flag, f"must be true or false, got {_json_type(document[flag])}")

    default_destination = document.get("destinationType", "new")
    _check_destination(errors, "destinationType", default_destination, policy)

    selection: Selection | None = None
    if "selection" in document:
        selection = parse_selection(errors, document["selection"], policy)
        if "artifacts" in document:
            errors.add("artifacts", "give either 'artifacts' or 'selection', not both")
    elif "artifacts" not in document:
        errors.add("artifacts", "is required: a list of {\"restorePointId\": ...} objects")

    artifacts = _parse_artifacts(errors, document.get("artifacts"), default_destination, policy) \
        if "artifacts" in document and "selection" not in document else ()

    if document.get("activate") is True and not policy.activation_supported:
        errors.add(
            "activate",
            "activation by this service is not available yet; send the request with activate=false "
            "and activate the created sessions from the events",
        )
    errors.raise_if_any()

    assert isinstance(request_id, str)
    incident_id = document.get("incidentId")
    return RestoreRequest(
        request_id=request_id,
        incident_id=incident_id,
        requested_by=document.get("requestedBy"),
        reason=document.get("reason"),
        artifacts=artifacts,
        activate=bool(document.get("activate", False)),
        dry_run=bool(document.get("dryRun", False)),
        payload_hash=payload_hash(document, artifacts, selection),
        destination_type=str(default_destination),
        selection=selection,
    )


def _parse_instant(errors: _Errors, field: str, value: Any) -> datetime | None:
    if not isinstance(value, str):
        errors.add(field, f"must be an ISO 8601 date-time string with a zone, got {_json_type(value)}")
        return None
    parsed = parse_instant(value)
    if isinstance(parsed, str):
        errors.add(field, parsed)
        return None
    return parsed


def parse_instant(value: str) -> datetime | str:
    """An RFC 3339 instant as an aware UTC datetime, or the contract's message for why it is not one."""
    m = _INSTANT.fullmatch(value)
    if m is None:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return f"is not an ISO 8601 date-time: {_preview(value, 40)}"
        if "T" in value.upper() and not re.search(r"([Zz]|[+-]\d{2}:?\d{2})$", value):
            return "must carry a zone (for example 2026-11-20T03:00:00Z)"
        return f"is not an ISO 8601 date-time: {_preview(value, 40)} (use 2026-11-20T03:00:00Z)"
    year = int(m[1])
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        return f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}, got {year}"
    fraction = (m[7] or "")[:6].ljust(6, "0")
    try:
        zone = UTC if m[8] else timezone(int(m[9] + "1") * timedelta(hours=int(m[10]), minutes=int(m[11])))
        parsed = datetime(year, int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0), int(fraction),
                          tzinfo=zone)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        return f"is not a valid date-time: {_preview(value, 40)} ({exc})"


def _selector_list(errors: _Errors, selection: dict[str, Any], name: str, pattern: re.Pattern[str],
                   expected: str) -> tuple[str, ...]:
    """The valid, distinct (case-insensitively) values of one selector list, in request order."""
    items = selection.get(name)
    if items is None:
        return ()
    if not isinstance(items, list):
        errors.add(f"selection.{name}", f"must be an array of strings, got {_json_type(items)}")
        return ()
    seen: set[str] = set()
    result: list[str] = []
    for position, item in enumerate(items):
        if (not isinstance(item, str) or len(item) > 256 or not pattern.fullmatch(item.strip())
                or not item.isprintable()):
            errors.add(f"selection.{name}[{position}]", f"must be {expected}, got {_preview(item)}")
            continue
        key = item.strip().lower()
        if key not in seen:
            seen.add(key)
            result.append(item.strip())
    return tuple(result)


def parse_selection(errors: _Errors, value: Any, policy: ValidationPolicy) -> Selection | None:
    """Validate `selection`; None (with errors added) when it cannot be used."""
    if not isinstance(value, dict):
        errors.add("selection", f"must be an object with users and pointInTime, got {_json_type(value)}")
        return None
    count = len(errors.items)
    for name in sorted(set(value) - _SELECTION_FIELDS):
        errors.add(f"selection.{name}", "is not a field of a selection (check the spelling)")
    users = _selector_list(errors, value, "users", _EMAIL, "an email address (UPN)")
    directory_ids = _selector_list(errors, value, "directoryObjectIds", _GUID, "a directory object id (a GUID)")
    unit_ids = _selector_list(errors, value, "protectionUnitIds", _ID_TEXT, "a protection unit id")
    total = sum(len(value.get(n) or []) if isinstance(value.get(n), list) else 0
                for n in ("users", "directoryObjectIds", "protectionUnitIds"))
    if total == 0:
        errors.add("selection", "must name at least one OneDrive in users, directoryObjectIds or protectionUnitIds")
    elif total > policy.max_artifacts_per_request:
        errors.add("selection", f"names {total} OneDrives; at most {policy.max_artifacts_per_request} are "
                                "accepted in one request (split it into several requests)")
    point_in_time = None
    if "pointInTime" not in value:
        errors.add("selection.pointInTime", "is required: the instant to restore to, ISO 8601 with a zone")
    else:
        point_in_time = _parse_instant(errors, "selection.pointInTime", value["pointInTime"])
    not_before = None
    if value.get("notBefore") is not None:
        not_before = _parse_instant(errors, "selection.notBefore", value["notBefore"])
        if not_before is not None and point_in_time is not None and not_before >= point_in_time:
            errors.add("selection.notBefore", "must be before pointInTime")
    strategy = value.get("strategy", "auto")
    if strategy not in STRATEGIES:
        errors.add("selection.strategy", f"must be one of {', '.join(STRATEGIES)}, got {_preview(strategy, 40)}")
    elif strategy == "bulk" and total > BULK_MAX_DRIVES:
        errors.add("selection.strategy", f"a bulk restore takes at most {BULK_MAX_DRIVES} OneDrives "
                                         "(Graph's limit); use standard or split the request")
    if len(errors.items) > count or point_in_time is None:
        return None
    return Selection(users, directory_ids, unit_ids, point_in_time, not_before or point_in_time - RETENTION,
                     str(strategy))


def _check_destination(errors: _Errors, field: str, value: Any, policy: ValidationPolicy) -> bool:
    if value not in ("new", "inPlace"):
        errors.add(field, f"must be \"new\" or \"inPlace\", got {_preview(value, 40)}")
        return False
    if value not in policy.allowed_destination_types:
        errors.add(field, f"destination type {value!r} is not allowed by this service's policy "
                          f"(allowed: {', '.join(policy.allowed_destination_types)})")
        return False
    return True


def _parse_artifacts(errors: _Errors, items: Any, default_destination: Any,
                     policy: ValidationPolicy) -> tuple[Artifact, ...]:
    if not isinstance(items, list):
        errors.add("artifacts", f"must be an array, got {_json_type(items)}")
        return ()
    if not items:
        errors.add("artifacts", "must name at least one restore point")
        return ()
    if len(items) > policy.max_artifacts_per_request:
        errors.add("artifacts", f"has {len(items)} items; at most {policy.max_artifacts_per_request} "
                                "are accepted in one request (split it into several requests)")
        return ()
    seen: dict[str, tuple[int, str]] = {}
    result: list[Artifact] = []
    for position, item in enumerate(items):
        where = f"artifacts[{position}]"
        if not isinstance(item, dict):
            errors.add(where, f"must be an object with a restorePointId, got {_json_type(item)}")
            continue
        for name in sorted(set(item) - _ARTIFACT_FIELDS):
            errors.add(f"{where}.{name}", "is not a field of an artifact (check the spelling)")
        point = item.get("restorePointId")
        if not isinstance(point, str) or not point.strip():
            errors.add(f"{where}.restorePointId", "is required and must be a non-empty string")
            continue
        if len(point) > 256:
            errors.add(f"{where}.restorePointId", "must be at most 256 characters long")
            continue
        if not is_id_text(point):
            errors.add(f"{where}.restorePointId", "must be a restore point id: printable characters without "
                                                  "spaces or / \\ # ?")
            continue
        destination = item.get("destinationType", default_destination)
        if "destinationType" in item and not _check_destination(
            errors, f"{where}.destinationType", destination, policy
        ):
            continue
        if not isinstance(destination, str):
            continue
        earlier = seen.get(point)
        if earlier is not None:
            if earlier[1] != destination:
                errors.add(f"{where}.destinationType",
                           f"restore point {point} is listed at artifacts[{earlier[0]}] with destination "
                           f"{earlier[1]!r} and here with {destination!r}; a restore point can be "
                           "restored to one destination per request")
            continue
        seen[point] = (position, destination)
        result.append(Artifact(point, destination))
    return tuple(result)


def payload_hash(document: dict[str, Any], artifacts: tuple[Artifact, ...],
                 selection: Selection | None = None) -> str:
    """A fingerprint of what the request asks for, to tell a redelivery from a reused requestId."""
    canonical: dict[str, Any] = {
        "artifacts": [[a.restore_point_id, a.destination_type] for a in artifacts],
        "activate": bool(document.get("activate", False)),
        "incidentId": document.get("incidentId"),
    }
    if selection is not None:
        canonical["selection"] = selection.canonical()
        canonical["destinationType"] = document.get("destinationType", "new")
    raw = json.dumps(canonical, separators=(",", ":"), sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()


# Browse requests ------------------------------------------------------------------------------

MAX_BROWSE_RESTORE_POINTS = 100
_BROWSE_FIELDS = frozenset({"requestId", "incidentId", "restorePointIds"})


@dataclass(frozen=True)
class BrowseRequest:
    request_id: str
    incident_id: str | None
    restore_point_ids: tuple[str, ...]

    @property
    def correlation_id(self) -> str:
        return self.incident_id or self.request_id


def parse_browse_request(document: Any, message_id: str | None) -> BrowseRequest:
    """Validate a decoded browse request; a restore point listed twice gets one browse session."""
    errors = _Errors()
    request_id = _envelope(errors, document, _BROWSE_FIELDS, "browse", message_id)

    points: list[str] = []
    items = document.get("restorePointIds")
    if "restorePointIds" not in document:
        errors.add("restorePointIds", "is required: a list of 1 to 100 restore point ids")
    elif not isinstance(items, list):
        errors.add("restorePointIds", f"must be an array of strings, got {_json_type(items)}")
    elif not items:
        errors.add("restorePointIds", "must name at least one restore point")
    elif len(items) > MAX_BROWSE_RESTORE_POINTS:
        errors.add("restorePointIds", f"has {len(items)} items; at most {MAX_BROWSE_RESTORE_POINTS} are "
                                      "accepted in one request (split it into several requests)")
    else:
        for position, point in enumerate(items):
            where = f"restorePointIds[{position}]"
            if not isinstance(point, str) or not point.strip():
                errors.add(where, "must be a non-empty string")
            elif len(point) > 256:
                errors.add(where, "must be at most 256 characters long")
            elif not is_id_text(point):
                errors.add(where, "must be a restore point id: printable characters without spaces or / \\ # ?")
            elif point not in points:
                points.append(point)
    errors.raise_if_any()

    assert isinstance(request_id, str)
    return BrowseRequest(request_id, document.get("incidentId"), tuple(points))


# ---------------------------------------------------------------------------------------------
# CloudEvents


MAX_EVENT_ID_LENGTH = 128  # Service Bus refuses longer message ids, and the event id is the message id


def fit_event_id(event_id: str) -> str:
    """The contract's id, unless Service Bus would refuse it as a message id: then a stable shortened form."""
    if len(event_id) <= MAX_EVENT_ID_LENGTH:
        return event_id
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:40]
    return f"{event_id[:MAX_EVENT_ID_LENGTH - 42]}~{digest}"


@dataclass(frozen=True)
class CloudEvent:
    id: str
    type: str
    subject: str
    data: dict[str, Any]
    correlation_id: str
    request_id: str
    incident_id: str | None = None
    session_id: str | None = None
    time: str = ""

    def __post_init__(self) -> None:
        # A 128-character requestId plus a suffix would not fit a Service Bus message id.
        object.__setattr__(self, "id", fit_event_id(self.id))
        object.__setattr__(self, "correlation_id", self.correlation_id[:MAX_EVENT_ID_LENGTH])

    def to_document(self) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": EVENT_SOURCE,
            "type": self.type,
            "subject": self.subject,
            "time": self.time or utc_now_iso(),
            "datacontenttype": "application/json",
            "data": self.data,
        }

    def application_properties(self) -> dict[str, str]:
        props = {"type": self.type, "requestId": self.request_id}
        if self.incident_id:
            props["incidentId"] = self.incident_id
        if self.session_id:
            props["sessionId"] = self.session_id
        # AMQP strings are UTF-8: a value that cannot be encoded would fail the whole send.
        return {k: v if v.isascii() else v.encode("utf-8", "replace").decode("utf-8")
                for k, v in props.items()}


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def echo_body(body: bytes) -> dict[str, Any]:
    """The original message body for a rejection event: text if it is UTF-8, else base64; capped."""
    data: dict[str, Any] = {}
    clipped = body[:MAX_ECHOED_BODY_BYTES]
    try:
        data["body"] = clipped.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(body) > MAX_ECHOED_BODY_BYTES and exc.start >= len(clipped) - 4:
            data["body"] = clipped[: exc.start].decode("utf-8")
        else:
            data["body"] = base64.b64encode(clipped).decode("ascii")
            data["bodyEncoding"] = "base64"
    if len(body) > MAX_ECHOED_BODY_BYTES:
        data["bodyTruncated"] = True
        data["bodySize"] = len(body)
        data["bodySha256"] = hashlib.sha256(body).hexdigest()
    return data


def rejected_event(kind: str, key: str, request_id: str | None, incident_id: str | None,
                   errors: list[FieldError], body: bytes) -> CloudEvent:
    """`restore.request.rejected` or `browse.request.rejected` (kind = "restore" or "browse")."""
    suffix = ":rejected" if kind == "restore" else ":browse:rejected"
    data: dict[str, Any] = {"requestId": request_id, "errors": [e.to_json() for e in errors]}
    data.update(echo_body(body))
    return CloudEvent(
        id=f"{key}{suffix}", type=f"{kind}.request.rejected", subject=request_id or key, data=data,
        correlation_id=incident_id or request_id or key, request_id=request_id or key,
        incident_id=incident_id,
    )


def request_event(request: RestoreRequest, event_type: str, event_id: str, data: dict[str, Any],
                  session_id: str | None = None) -> CloudEvent:
    base = {"requestId": request.request_id, "incidentId": request.incident_id}
    base.update(data)
    return CloudEvent(
        id=event_id, type=event_type, subject=request.request_id, data=base,
        correlation_id=request.correlation_id, request_id=request.request_id,
        incident_id=request.incident_id, session_id=session_id,
    )


def encode_event(event: CloudEvent) -> bytes:
    """The exact bytes we send (structured mode). A lone surrogate that reached an event this far (from Graph's
    text, say) becomes "?" rather than failing the publish."""
    text = json.dumps(event.to_document(), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", errors="replace")


def event_size(event: CloudEvent) -> int:
    return len(encode_event(event))


def _encoded_length(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", errors="replace"))


def _prefix_within(text: str, budget: int) -> str:
    """The longest prefix of `text` whose JSON encoding takes at most `budget` bytes (escapes counted)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _encoded_length(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


#: Room kept for the fields that say a value was cut (name, size, digest).
_CUT_MARK_BYTES = 160
#: A top-level string field longer than this, encoded, may be cut when an event does not fit.
_LONG_TEXT_BYTES = 2048


def _cut_text(event: CloudEvent, name: str, max_bytes: int) -> CloudEvent:
    """Cut `data[name]` so that the event fits, saying so: `<name>Truncated`, `<name>Size`, `<name>Sha256`
    (of the original value; for `body`, of the original message body, as the contract documents)."""
    data = dict(event.data)
    value = data[name]
    without = event_size(replace(event, data={**data, name: ""}))
    budget = max(0, max_bytes - without - _CUT_MARK_BYTES)
    if name == "body":
        if "bodySize" not in data:
            raw = base64.b64decode(value) if data.get("bodyEncoding") == "base64" else value.encode("utf-8")
            data["bodySize"] = len(raw)
            data["bodySha256"] = hashlib.sha256(raw).hexdigest()
        data["bodyTruncated"] = True
        data["body"] = _prefix_within(value, budget)
        if data.get("bodyEncoding") == "base64":
            data["body"] = data["body"][: len(data["body"]) // 4 * 4]  # whole base64 quanta only
    else:
        raw = value.encode("utf-8", errors="replace")
        data[f"{name}Truncated"] = True
        data[f"{name}Size"] = len(raw)
        data[f"{name}Sha256"] = hashlib.sha256(raw).hexdigest()
        data[name] = _prefix_within(value, budget)
    return replace(event, data=data)


def _trim_lists(value: Any, keep: int) -> Any:
    if isinstance(value, list):
        return [_trim_lists(v, keep) for v in value[:keep]]
    if isinstance(value, dict):
        return {k: _trim_lists(v, keep) for k, v in value.items()}
    return value


def shrink_to_fit(event: CloudEvent, max_bytes: int) -> CloudEvent:
    """The last line of defence against a message Service Bus would refuse (256 KB on Standard).

    Events that can grow with a request (thousands of restore points or unresolved users) are cut down by
    shortening their lists, keeping every scalar field; `truncatedLists` gives the original lengths of the
    top-level lists that were cut, so a reader knows to look in the ledger for the rest.
    """
    if event_size(event) <= max_bytes:
        return event
    # Long text first (a rejected body, a long error): the lists and scalars are what a reader acts on.
    if isinstance(event.data.get("body"), str):
        event = _cut_text(event, "body", max_bytes)
        if event_size(event) <= max_bytes:
            return event
    long_texts = sorted((k for k, v in event.data.items() if isinstance(v, str) and _encoded_length(v) >
                         _LONG_TEXT_BYTES and k != "body"), key=lambda k: -len(event.data[k]))
    for name in long_texts:
        event = _cut_text(event, name, max_bytes)
        if event_size(event) <= max_bytes:
            return event
    keep = 1000
    while keep >= 1:
        data = _trim_lists(event.data, keep)
        cut = {k: len(v) for k, v in event.data.items() if isinstance(v, list) and len(v) > keep}
        data["truncated"] = True
        data["truncatedLists"] = cut
        candidate = replace(event, data=data)
        if event_size(candidate) <= max_bytes:
            return candidate
        keep //= 4
    minimal = {k: v for k, v in event.data.items() if not isinstance(v, list | dict)
               and not (isinstance(v, str) and _encoded_length(v) > _LONG_TEXT_BYTES)}
    return replace(event, data={**minimal, "truncated": True})
