"""The three requests as pydantic v2 models: they validate a decoded message, their JSON Schemas are published in
`schemas/`, and the parsers at the end turn a valid one into the service's domain object.

Every rule names its field and says what is wrong in the contract's words (`PydanticCustomError`); rules that
involve several fields or the operator's policy are checked by the model that holds those fields, and their
errors are reported together with the fields' own, so a sender learns of every problem in one round trip.
Each field's JSON Schema is written next to its rule (`WithJsonSchema`), so the published schema says what the
code checks; what JSON Schema cannot say is listed in the README ("Schemas") and in tests/unit/test_schemas.py.

Adding a field of the contract (a `workload`, say) is one annotated type and one line in a model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from orchestrators.contracts.domain import (
    MAX_BROWSE_RESTORE_POINTS,
    MAX_SESSION_IDS,
    ActivationRequest,
    Artifact,
    BrowseRequest,
    RestoreRequest,
    Selection,
    ValidationPolicy,
    payload_hash,
)
from orchestrators.contracts.field_errors import (
    CONTRACT_ERROR,
    combined,
    field_errors,
    reported,
    rule_error,
)
from orchestrators.contracts.rules import (
    BULK_MAX_DRIVES,
    DESTINATION_TYPES,
    EMAIL,
    GUID,
    ID_TEXT,
    RETENTION,
    STRATEGIES,
    is_id_text,
    is_request_id,
    json_type,
    parse_instant,
    preview,
    text_field_problem,
)
from orchestrators.kernel.errors import Rejected

#: The service's defaults (`MAX_ARTIFACTS_PER_REQUEST`, `ALLOWED_DESTINATION_TYPES`): what the schemas state.
DEFAULT_POLICY = ValidationPolicy(10_000, DESTINATION_TYPES, activation_supported=True)


@dataclass(frozen=True)
class Context:
    """What validation needs besides the document: the operator's policy and the Service Bus MessageId."""

    policy: ValidationPolicy = DEFAULT_POLICY
    message_id: str | None = None


def _context(info: ValidationInfo) -> Context:
    return info.context if isinstance(info.context, Context) else Context()


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError(CONTRACT_ERROR, message)


# -- JSON Schema fragments -------------------------------------------------------------------------------------
# Patterns are ECMA-262 and Python alike. `$` also matches before a final line break in Python and .NET, so
# every anchored pattern goes with `not` control characters, and character rules are written as "no character
# of this class" rather than anchored.

_CONTROLS = r"[\u0000-\u001f\u007f-\u009f]"
_NOT_ID_CHARS = r"[\u0000-\u0020\u007f-\u009f/\\#?]"
_ID_CORE = r"[^\u0000-\u0020\u007f-\u009f/\\#?]+"
_EMAIL_PART = r"[^@ /\\#?\u0000-\u001f\u007f-\u009f]+"
_YEAR = r"(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_INSTANT_PATTERN = (
    rf"^{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]"
    r"(?::[0-5][0-9](?:\.[0-9]{1,9})?)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_ID_TEXT_RULE = "printable characters without spaces or / \\ # ?"


def _string(description: str, min_length: int = 1, max_length: int | None = None, pattern: str | None = None,
            forbidden: str | None = _CONTROLS, **more: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "description": description, "minLength": min_length}
    if max_length is not None:
        schema["maxLength"] = max_length
    if pattern is not None:
        schema["pattern"] = pattern
    if forbidden is not None:
        schema["not"] = {"pattern": forbidden}
    return {**schema, **more}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field that may also be given as null, which counts as absent."""
    description = schema.pop("description")
    return {"description": f"{description}. Null counts as absent.", "anyOf": [schema, {"type": "null"}]}


def _null_refused(schema: dict[str, Any]) -> None:
    """A field that may be absent, but not null: the schema shows no null branch and no default."""
    options = schema.pop("anyOf", None)
    if options:
        [kept] = [option for option in options if option.get("type") != "null"]
        schema.update(kept)
    schema.pop("default", None)


# -- rules for single values -----------------------------------------------------------------------------------

def _request_id_or_message_id(value: Any, info: ValidationInfo) -> str:
    """Restore and browse requests: when absent (or null), the message's MessageId is the requestId."""
    if value is None:
        message_id = _context(info).message_id
        if not is_request_id(message_id):
            raise _problem("is required when the message has no usable MessageId")
        return str(message_id)
    if not is_request_id(value):
        raise _problem("must be 1 to 128 characters of letters, digits and . _ : -")
    return str(value)


def _optional_request_id(value: Any) -> str | None:
    if value is not None and not is_request_id(value):
        raise _problem("must be 1 to 128 characters of letters, digits and . _ : -")
    return value


_REQUEST_ID_SCHEMA = _string("The idempotency key: 1 to 128 letters, digits and . _ : -", max_length=128,
                             forbidden=r"[^A-Za-z0-9._:-]")


def _text(limit: int, printable: bool = False) -> BeforeValidator:
    def check(value: Any) -> Any:
        problem = text_field_problem(value, limit, printable)
        if problem:
            raise _problem(problem)
        return value

    return BeforeValidator(check)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _problem(f"must be true or false, got {json_type(value)}")
    return value


def _destination(value: Any, info: ValidationInfo) -> str:
    if value not in DESTINATION_TYPES:
        raise _problem(f"must be \"new\" or \"inPlace\", got {preview(value, 40)}")
    allowed = _context(info).policy.allowed_destination_types
    if value not in allowed:
        raise _problem(f"destination type {value!r} is not allowed by this service's policy "
                       f"(allowed: {', '.join(allowed)})")
    return str(value)


def _artifact_destination(value: Any, info: ValidationInfo) -> Any:
    # An artifact's destination is looked at only once its restore point is usable (one problem per artifact).
    if "restorePointId" not in info.data:
        return value
    return _destination(value, info)


def _restore_point_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem("is required and must be a non-empty string")
    if len(value) > 256:
        raise _problem("must be at most 256 characters long")
    if not is_id_text(value):
        raise _problem(f"must be a restore point id: {_ID_TEXT_RULE}")
    return value


def _browse_point_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem("must be a non-empty string")
    if len(value) > 256:
        raise _problem("must be at most 256 characters long")
    if not is_id_text(value):
        raise _problem(f"must be a restore point id: {_ID_TEXT_RULE}")
    return value


def _session_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise _problem("must be a non-empty session id")
    if not is_id_text(value, 128):
        raise _problem(f"must be a session id: {_ID_TEXT_RULE}")
    return value


def _session_list(value: Any) -> Any:
    if value is not None and (not isinstance(value, list) or not 1 <= len(value) <= MAX_SESSION_IDS):
        raise _problem(f"must be an array of 1 to {MAX_SESSION_IDS} session ids")
    return value


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _problem(f"must be an ISO 8601 date-time string with a zone, got {json_type(value)}")
    parsed = parse_instant(value)
    if isinstance(parsed, str):
        raise _problem(parsed)
    return parsed


def _optional_instant(value: Any) -> datetime | None:
    return None if value is None else _instant(value)


def _strategy(value: Any) -> str:
    if value not in STRATEGIES:
        raise _problem(f"must be one of {', '.join(STRATEGIES)}, got {preview(value, 40)}")
    return str(value)


def _selector(pattern: re.Pattern[str], expected: str) -> BeforeValidator:
    """One selector: 1..256 printable characters matching `pattern` once surrounding spaces are dropped."""
    def check(value: Any) -> str:
        if (not isinstance(value, str) or len(value) > 256 or not pattern.fullmatch(value.strip())
                or not value.isprintable()):
            raise _problem(f"must be {expected}, got {preview(value)}")
        return value.strip()

    return BeforeValidator(check)


def _array(message: str, *, min_items: int = 0, max_items: Callable[[ValidationInfo], int] | None = None,
           nullable: bool = False) -> BeforeValidator:
    """An array field: the contract's words when it is not one, or has too few or too many items."""
    def check(value: Any, info: ValidationInfo) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, list):
            raise _problem(f"{message}, got {json_type(value)}")
        if len(value) < min_items:
            raise _problem("must name at least one restore point")
        limit = max_items(info) if max_items else None
        if limit is not None and len(value) > limit:
            raise _problem(f"has {len(value)} items; at most {limit} are accepted in one request "
                           "(split it into several requests)")
        return value

    return BeforeValidator(check)


def _max_artifacts(info: ValidationInfo) -> int:
    return _context(info).policy.max_artifacts_per_request


def _refuse_null(message: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is None:
            raise _problem(message)
        return value

    return BeforeValidator(check)


# -- field types -------------------------------------------------------------------------------------------------

RequestIdOrMessageId = Annotated[str, BeforeValidator(_request_id_or_message_id), WithJsonSchema(_nullable(
    {**_REQUEST_ID_SCHEMA, "description": _REQUEST_ID_SCHEMA["description"] + ". When absent, the Service Bus "
     "MessageId is used (and must then be one)"}))]
OptionalRequestId = Annotated[str | None, BeforeValidator(_optional_request_id), WithJsonSchema(_nullable(
    dict(_REQUEST_ID_SCHEMA)))]
IncidentId = Annotated[str | None, _text(128, printable=True), WithJsonSchema(_nullable(_string(
    "The incident: 1 to 128 printable characters; the correlation id of every event of the request",
    max_length=128)))]
RequestedBy = Annotated[str | None, _text(256), WithJsonSchema(_nullable(_string(
    "Who or what sent the request (recorded in the ledger for the audit), 1 to 256 characters",
    max_length=256, forbidden=None)))]
Reason = Annotated[str | None, _text(1024), WithJsonSchema(_nullable(_string(
    "Why (recorded in the ledger for the audit), 1 to 1024 characters", max_length=1024, forbidden=None)))]
Flag = Annotated[bool, BeforeValidator(_flag)]
DestinationType = Annotated[Literal["new", "inPlace"], PlainValidator(
    _destination, json_schema_input_type=Literal["new", "inPlace"])]
ArtifactDestinationType = Annotated[Literal["new", "inPlace"], PlainValidator(
    _artifact_destination, json_schema_input_type=Literal["new", "inPlace"])]
RestorePointId = Annotated[str, BeforeValidator(_restore_point_id), WithJsonSchema(_string(
    f"A restore point id (Graph's restorePoint id): at most 256 {_ID_TEXT_RULE}", max_length=256,
    forbidden=_NOT_ID_CHARS))]
BrowsePointId = Annotated[str, BeforeValidator(_browse_point_id), WithJsonSchema(_string(
    f"A restore point id: at most 256 {_ID_TEXT_RULE}", max_length=256, forbidden=_NOT_ID_CHARS))]
_SESSION_ID = _string(f"A restore session id (from restore.session.created): at most 128 {_ID_TEXT_RULE}",
                      max_length=128, forbidden=_NOT_ID_CHARS)
SessionId = Annotated[str, BeforeValidator(_session_id), WithJsonSchema(_SESSION_ID)]
SessionIds = Annotated[list[SessionId] | None, BeforeValidator(_session_list), WithJsonSchema(_nullable({
    "type": "array", "description": "Or activate these sessions (a repeat counts once)", "items": _SESSION_ID,
    "minItems": 1, "maxItems": MAX_SESSION_IDS}))]
Instant = Annotated[datetime, BeforeValidator(_instant), WithJsonSchema(_string(
    "An RFC 3339 instant with a zone, to the minute at least (2026-11-20T03:00:00Z, 2026-11-20T04:00+01:00), "
    "years 1970 to 9998", pattern=_INSTANT_PATTERN))]
OptionalInstant = Annotated[datetime | None, BeforeValidator(_optional_instant), WithJsonSchema(_nullable(_string(
    "An RFC 3339 instant with a zone (as pointInTime); default: a year before pointInTime",
    pattern=_INSTANT_PATTERN)))]
Strategy = Annotated[Literal["auto", "standard", "bulk"], PlainValidator(
    _strategy, json_schema_input_type=Literal["auto", "standard", "bulk"])]


def _selector_list(item: dict[str, Any], description: str) -> WithJsonSchema:
    return WithJsonSchema(_nullable({"type": "array", "description": description, "items": item,
                                     "maxItems": DEFAULT_POLICY.max_artifacts_per_request}))


_USER = _string("An email address (UPN), spaces around it ignored", max_length=256,
                pattern=rf"^ *{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART} *$")
_DIRECTORY_OBJECT = _string(
    "A directory object id (a GUID), spaces around it ignored", max_length=256,
    pattern=r"^ *[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12} *$")
_PROTECTION_UNIT = _string(f"A drive protection unit id: {_ID_TEXT_RULE}, spaces around it ignored",
                           max_length=256, pattern=rf"^ *{_ID_CORE} *$")
User = Annotated[str, _selector(EMAIL, "an email address (UPN)"), WithJsonSchema(_USER)]
DirectoryObjectId = Annotated[str, _selector(GUID, "a directory object id (a GUID)"),
                              WithJsonSchema(_DIRECTORY_OBJECT)]
ProtectionUnitId = Annotated[str, _selector(ID_TEXT, "a protection unit id"), WithJsonSchema(_PROTECTION_UNIT)]
_SELECTOR_ARRAY = _array("must be an array of strings", nullable=True)
Users = Annotated[list[User] | None, _SELECTOR_ARRAY, _selector_list(
    _USER, "OneDrive owners by email (UPN); a repeat (in any case) counts once")]
DirectoryObjectIds = Annotated[list[DirectoryObjectId] | None, _SELECTOR_ARRAY, _selector_list(
    _DIRECTORY_OBJECT, "OneDrive owners by Entra ID object id")]
ProtectionUnitIds = Annotated[list[ProtectionUnitId] | None, _SELECTOR_ARRAY, _selector_list(
    _PROTECTION_UNIT, "Drive protection units by id")]


# -- restore request ---------------------------------------------------------------------------------------------

class ArtifactItem(TypedDict):
    """One restore point to restore, optionally with its own destination."""

    __pydantic_config__ = ConfigDict(extra="forbid", title="Artifact")  # type: ignore[misc]

    restorePointId: RestorePointId
    destinationType: NotRequired[Annotated[ArtifactDestinationType, Field(
        description="Where this restore point is restored: a new location or in place; default: the request's "
                    "destinationType")]]


_SELECTORS = ("users", "directoryObjectIds", "protectionUnitIds")
_AFTER_SELECTORS = ("pointInTime", "notBefore", "strategy")


class SelectionModel(BaseModel):
    """Restore by point in time: each OneDrive named is restored to its latest restore point in
    [notBefore, pointInTime]. At least one OneDrive in users, directoryObjectIds or protectionUnitIds, and at most
    MAX_ARTIFACTS_PER_REQUEST (10,000 by default) in all."""

    model_config = ConfigDict(extra="forbid", title="Selection", json_schema_extra={"anyOf": [
        {"required": [name], "properties": {name: {"type": "array", "minItems": 1}}} for name in _SELECTORS]})

    users: Users = None
    directoryObjectIds: DirectoryObjectIds = None
    protectionUnitIds: ProtectionUnitIds = None
    pointInTime: Instant = Field(description=(
        "The instant to restore to: RFC 3339 with a zone, to the minute at least (2026-11-20T03:00:00Z, "
        "2026-11-20T04:00+01:00), years 1970 to 9998"))
    notBefore: OptionalInstant = None
    strategy: Annotated[Strategy, Field(description=(
        "auto (default): the strategy estimated to restore every drive first; standard: sessions of at most 50 "
        "restore points; bulk: Graph's bulk addition, one session of up to 10,000 drives"))] = "auto"

    @field_validator("notBefore", mode="after")
    @classmethod
    def _before_point_in_time(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        point_in_time = info.data.get("pointInTime")
        if value is not None and point_in_time is not None and value >= point_in_time:
            raise _problem("must be before pointInTime")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _size(cls, data: Any, handler: ModelWrapValidatorHandler[SelectionModel],
              info: ValidationInfo) -> SelectionModel:
        if not isinstance(data, dict):
            raise _problem(f"must be an object with users and pointInTime, got {json_type(data)}")
        # Every item given counts, valid or not: the size is what the sender asked for.
        total = sum(len(value) for name in _SELECTORS if isinstance(value := data.get(name), list))
        limit = _context(info).policy.max_artifacts_per_request
        size = None
        if total == 0:
            size = "must name at least one OneDrive in users, directoryObjectIds or protectionUnitIds"
        elif total > limit:
            size = (f"names {total} OneDrives; at most {limit} are accepted in one request "
                    "(split it into several requests)")
        try:
            selection, caught = handler(data), None
        except ValidationError as exc:
            caught = exc
        errors = reported(caught)
        if size is not None:
            at = next((i for i, e in enumerate(errors) if e["loc"][:1] and e["loc"][0] in _AFTER_SELECTORS),
                      len(errors))
            errors.insert(at, rule_error((), size))
        if data.get("strategy") == "bulk" and total > BULK_MAX_DRIVES:
            errors.append(rule_error(("strategy",), f"a bulk restore takes at most {BULK_MAX_DRIVES} OneDrives "
                                                    "(Graph's limit); use standard or split the request"))
        if errors:
            raise combined(cls.__name__, errors)
        return selection

    def to_domain(self) -> Selection:
        def distinct(values: list[str] | None) -> tuple[str, ...]:
            seen: dict[str, str] = {}
            for value in values or ():
                seen.setdefault(value.lower(), value)
            return tuple(seen.values())

        return Selection(distinct(self.users), distinct(self.directoryObjectIds), distinct(self.protectionUnitIds),
                         self.pointInTime, self.notBefore or self.pointInTime - RETENTION, self.strategy)


def _artifacts_schema(schema: dict[str, Any]) -> None:
    _null_refused(schema)
    schema.update(description="The restore points to restore, 1 to MAX_ARTIFACTS_PER_REQUEST (10,000 by default). "
                              "The same restore point twice with the same destination is restored once; with two "
                              "destinations the request is rejected",
                  minItems=1, maxItems=DEFAULT_POLICY.max_artifacts_per_request)


class RestoreRequestModel(BaseModel):
    """A restore request (queue restore-requests): restore points to restore (`artifacts`), or OneDrives and an
    instant (`selection`), not both. Unknown fields are rejected (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", title="Restore request", json_schema_extra={
        "oneOf": [{"required": ["artifacts"]}, {"required": ["selection"]}]})

    requestId: RequestIdOrMessageId = Field(None, validate_default=True)
    incidentId: IncidentId = None
    requestedBy: RequestedBy = None
    reason: Reason = None
    activate: Annotated[Flag, Field(description=(
        "When true, every created session is activated, at most MAX_ACTIVE_SESSIONS at a time (in-place sessions "
        "wait for an approval when IN_PLACE_REQUIRES_APPROVAL is set)"))] = False
    dryRun: Annotated[Flag, Field(description="Plan and report only (restore.request.planned); nothing is "
                                              "written to Graph")] = False
    destinationType: Annotated[DestinationType, Field(description=(
        "new (default): restore to a new location; inPlace: overwrite. The default for artifacts that name "
        "none; ALLOWED_DESTINATION_TYPES may forbid inPlace"))] = Field("new", validate_default=True)
    selection: Annotated[SelectionModel | None, _refuse_null(
        "must be an object with users and pointInTime, got null")] = Field(None, json_schema_extra=_null_refused)
    artifacts: Annotated[list[ArtifactItem] | None, _array(
        "must be an array", min_items=1, max_items=_max_artifacts)] = Field(None, json_schema_extra=_artifacts_schema)

    @model_validator(mode="wrap")
    @classmethod
    def _request_rules(cls, data: Any, handler: ModelWrapValidatorHandler[RestoreRequestModel],
                       info: ValidationInfo) -> RestoreRequestModel:
        if not isinstance(data, dict):
            raise _problem(f"must be a JSON object, got {json_type(data)}")
        added: list[InitErrorDetails] = []
        if "selection" in data:
            if "artifacts" in data:
                data = {k: v for k, v in data.items() if k != "artifacts"}
                added.append(rule_error(("artifacts",), "give either 'artifacts' or 'selection', not both"))
        elif "artifacts" not in data:
            added.append(rule_error(("artifacts",), "is required: a list of {\"restorePointId\": ...} objects"))
        try:
            request, caught = handler(data), None
        except ValidationError as exc:
            caught = exc
        errors = reported(caught)
        if "artifacts" in data:
            added.extend(_conflicting_destinations(data, errors))
        if data.get("activate") is True and not _context(info).policy.activation_supported:
            added.append(rule_error(("activate",), "activation by this service is not available yet; send the "
                                                   "request with activate=false and activate the created "
                                                   "sessions from the events"))
        if errors or added:
            raise combined(cls.__name__, errors + added)
        return request


def _conflicting_destinations(data: dict[str, Any], errors: list[InitErrorDetails]) -> list[InitErrorDetails]:
    """A restore point listed twice with two destinations (counting the request's default for an artifact that
    names none), among the artifacts whose restore point and destination are usable."""
    items = data["artifacts"]
    unusable: set[int] = set()
    for error in errors:
        loc = error["loc"]
        if loc[:1] == ("artifacts",):
            if len(loc) == 1:
                return []  # the list itself is unusable: its items were not looked at
            if isinstance(loc[1], int) and (len(loc) == 2 or loc[2] in ("restorePointId", "destinationType")):
                unusable.add(loc[1])
    default = data.get("destinationType", "new")
    first: dict[str, int] = {}  # restore point -> the position it is first listed at
    conflicts: list[InitErrorDetails] = []
    for position, item in enumerate(items):
        if position in unusable:
            continue
        point, destination = item["restorePointId"], item.get("destinationType", default)
        if not isinstance(destination, str):
            continue
        earlier = first.setdefault(point, position)
        if earlier != position and (before := items[earlier].get("destinationType", default)) != destination:
            conflicts.append(rule_error(
                ("artifacts", position, "destinationType"),
                f"restore point {point} is listed at artifacts[{earlier}] with destination {before!r} and "
                f"here with {destination!r}; a restore point can be restored to one destination per request"))
    return conflicts


# -- browse and activation requests ------------------------------------------------------------------------------

class BrowseRequestModel(BaseModel):
    """A browse request (queue browse-requests): one browse session per restore point (1 to 100; a repeat is
    browsed once)."""

    model_config = ConfigDict(extra="forbid", title="Browse request")

    requestId: RequestIdOrMessageId = Field(None, validate_default=True)
    incidentId: IncidentId = None
    restorePointIds: Annotated[list[BrowsePointId], _array(
        "must be an array of strings", min_items=1, max_items=lambda info: MAX_BROWSE_RESTORE_POINTS), Field(
        description="The restore points to browse", min_length=1, max_length=MAX_BROWSE_RESTORE_POINTS)]

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise _problem(f"must be a JSON object, got {json_type(data)}")
        return data


class ActivationRequestModel(BaseModel):
    """An activation request (queue activation-requests): approve the draft sessions of a restore request
    (`requestId`) or the sessions named (`sessionIds`), one or the other."""

    model_config = ConfigDict(extra="forbid", title="Activation request", json_schema_extra={"oneOf": [
        {"required": ["requestId"], "properties": {"requestId": {"type": "string"}}},
        {"required": ["sessionIds"], "properties": {"sessionIds": {"type": "array"}}}]})

    requestId: Annotated[OptionalRequestId, Field(description=(
        "Activate every draft session of this restore request (sessions still being created are activated as "
        "they are created)"))] = None
    incidentId: IncidentId = None
    requestedBy: RequestedBy = None
    reason: Reason = None
    sessionIds: SessionIds = None

    @model_validator(mode="wrap")
    @classmethod
    def _one_or_the_other(cls, data: Any, handler: ModelWrapValidatorHandler[ActivationRequestModel],
                          info: ValidationInfo) -> ActivationRequestModel:
        if not isinstance(data, dict):
            raise _problem("must be a JSON object with requestId or sessionIds")
        try:
            request, caught = handler(data), None
        except ValidationError as exc:
            caught = exc
        errors = reported(caught)
        if (data.get("requestId") is None) == (data.get("sessionIds") is None):
            at = next((i for i, e in enumerate(errors) if e["loc"][:1] == ("sessionIds",)), len(errors))
            errors.insert(at, rule_error((), "give either requestId (every draft session of that restore request) "
                                             "or sessionIds, not both and not neither"))
        if errors:
            raise combined(cls.__name__, errors)
        return request


# -- the parsers -------------------------------------------------------------------------------------------------

def restore_request(document: Any, message_id: str | None, policy: ValidationPolicy) -> RestoreRequest:
    try:
        model = RestoreRequestModel.model_validate(document, context=Context(policy, message_id))
    except ValidationError as exc:
        raise Rejected(field_errors(exc, "restore")) from None
    selection = model.selection.to_domain() if model.selection is not None else None
    artifacts: dict[str, Artifact] = {}
    for item in model.artifacts or ():
        point = item["restorePointId"]
        if point not in artifacts:
            artifacts[point] = Artifact(point, item.get("destinationType", model.destinationType))
    kept = tuple(artifacts.values())
    return RestoreRequest(
        request_id=model.requestId,
        incident_id=model.incidentId,
        requested_by=model.requestedBy,
        reason=model.reason,
        artifacts=kept,
        activate=model.activate,
        dry_run=model.dryRun,
        payload_hash=payload_hash(document, kept, selection),
        destination_type=model.destinationType,
        selection=selection,
    )


def browse_request(document: Any, message_id: str | None) -> BrowseRequest:
    try:
        model = BrowseRequestModel.model_validate(document, context=Context(message_id=message_id))
    except ValidationError as exc:
        raise Rejected(field_errors(exc, "browse")) from None
    return BrowseRequest(model.requestId, model.incidentId, tuple(dict.fromkeys(model.restorePointIds)))


def activation_request(document: Any, message_id: str | None) -> ActivationRequest:
    try:
        model = ActivationRequestModel.model_validate(document, context=Context(message_id=message_id))
    except ValidationError as exc:
        raise Rejected(field_errors(exc, "activation", limit=None)) from None
    key = model.requestId or message_id or "unknown"
    return ActivationRequest(key, model.requestId, tuple(dict.fromkeys(model.sessionIds or ())))
