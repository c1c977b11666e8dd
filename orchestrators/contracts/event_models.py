"""The published events as pydantic v2 models: the CloudEvent envelope and the `data` of every event type.

The service builds its events as plain dataclasses (`events`); these models describe the documents a subscriber
receives, for the JSON Schema in `schemas/event.schema.json` and for the end-to-end tests, which validate every
event they read off the topic. The contract says what `data` holds *at least*: every data model allows more
fields (counts, hints, the `truncated` marks of an event cut to fit a Service Bus message). A list or object
field required below may be missing only from an event marked `truncated: true` (cut to fit, see the README).
Version 1.1 fields (`workload`, `awaitingApproval`, `restoreJobType`, `items`, `workloadTotals`) are optional.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from orchestrators.contracts.events import EVENT_SOURCE, MAX_EVENT_ID_LENGTH

Workload = Literal["oneDrive", "sharePoint", "exchange"]
DestinationType = Literal["new", "inPlace"]
NonEmpty = Annotated[str, Field(min_length=1)]
Counts = dict[str, int]
#: The W3C trace context (version 00 and later), as the CloudEvents distributed-tracing extension carries it.
TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
#: RFC 3339 with seconds, as the CloudEvents `time` attribute requires.
RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"


class _Open(BaseModel):
    """A part of an event that may hold more fields than the contract names."""

    model_config = ConfigDict(extra="allow", strict=True)


_CUT = {"required": ["truncated"], "properties": {"truncated": {"const": True}}}


def _conditional_fields(schema: dict[str, Any], cls: type) -> None:
    """The `needs` of a data model in its JSON Schema: each field is required unless one of its stand-ins is
    given, or the event was cut to fit."""
    needs: dict[str, tuple[str, ...]] = getattr(cls, "needs", {})
    rules = [{"anyOf": [{"required": [name]}, *({"required": [other]} for other in stand_ins), _CUT]}
             for name, stand_ins in needs.items()]
    if rules:
        schema["allOf"] = rules


class EventData(_Open):
    """What every event's `data` may carry besides its own fields."""

    model_config = ConfigDict(json_schema_extra=_conditional_fields)

    #: Fields (lists and objects a reader acts on) that only an event cut to fit may lack, each with the fields
    #: that may stand in for it (a granular session lists `items` instead of `restorePointIds`).
    needs: ClassVar[dict[str, tuple[str, ...]]] = {}

    truncated: bool | None = Field(None, description="true when the event was cut to fit one Service Bus "
                                                     "message; the ledger keeps the whole record")
    truncatedLists: Counts | None = Field(None, description="The original lengths of the lists that were cut")

    @model_validator(mode="after")
    def _needed_fields(self) -> EventData:
        given = self.model_fields_set | set(self.model_extra or ())
        if self.truncated is not True:
            for name, stand_ins in self.needs.items():
                if name not in given and not given.intersection(stand_ins):
                    raise PydanticCustomError("missing", "{name} is required here", {"name": name})
        return self


class GraphErrorInfo(_Open):
    """Graph's account of a failed call (or the service's, with status null)."""

    status: int | None = Field(description="The HTTP status, null when the call got no answer")
    code: str | None
    message: str | None
    graphRequestId: str | None = None


class FieldErrorItem(BaseModel):
    """One problem with a request, addressed to the field to fix."""

    model_config = ConfigDict(extra="forbid", strict=True)

    field: NonEmpty = Field(description="The field's path (artifacts[3].restorePointId), or (body)")
    message: NonEmpty


class RequestRejected(EventData):
    """`restore.request.rejected`, `browse.request.rejected`, `activation.request.rejected`: the request cannot
    be accepted (bad JSON, schema, limits, policy, a requestId reused with another payload)."""

    needs = {"errors": (), "body": ()}

    requestId: str | None = Field(description="The requestId, if the body holds a usable one")
    errors: list[FieldErrorItem] | None = Field(None, description="Every problem found (at most 50, then one "
                                                                  "'(more)' entry)")
    body: str | None = Field(None, description="The original message body: text, or base64 when it is not UTF-8")
    bodyEncoding: Literal["base64"] | None = None
    bodyTruncated: bool | None = Field(None, description="The body was cut (over 64 KB): see bodySize, bodySha256")
    bodySize: int | None = None
    bodySha256: str | None = None


class PlannedSession(_Open):
    index: int
    destinationType: DestinationType
    restorePointIds: list[str] | None = Field(None, description="Absent when the data has "
                                                                "restorePointIdsOmitted: true (counts instead)")


class RequestPlanned(EventData):
    """`restore.request.planned`: a dry run's plan; nothing was written to Graph."""

    needs = {"sessions": ()}

    requestId: NonEmpty
    incidentId: str | None = None
    sessions: list[PlannedSession] | None = None


class GranularItem(_Open):
    browseSessionId: NonEmpty
    itemKey: NonEmpty


class SessionCreated(EventData):
    """`restore.session.created`: a restore session was created in Graph (a draft until activated)."""

    needs = {"restorePointIds": ("items",)}

    requestId: NonEmpty
    incidentId: str | None
    sessionId: NonEmpty
    index: int
    sessionCount: int
    destinationType: DestinationType
    restorePointIds: list[str] | None = Field(None, description="The restore points of the session (for a "
                                                                "granular session: items instead)")
    status: NonEmpty
    createdDateTime: str | None
    awaitingApproval: bool | None = Field(None, description="true: this in-place session waits for an "
                                                            "activation request (IN_PLACE_REQUIRES_APPROVAL)")
    workload: Workload | None = None
    restoreJobType: str | None = Field(None, description="Graph's restoreJobType: standard, bulk, granular")
    items: list[GranularItem] | None = None

class FailedPoint(_Open):
    restorePointId: str
    code: str | None = None


class SessionFailed(EventData):
    """`restore.session.failed`: restore points of a batch could not be put in a session (their session index
    and Graph's error), or, with `stage: "activation"`, Graph refused to activate a session for good."""

    needs = {"restorePointIds": ("stage", "items")}

    requestId: NonEmpty
    index: int
    error: GraphErrorInfo | None
    restorePointIds: list[str] | None = Field(None, description="The restore points that failed (absent for "
                                                                "stage activation)")
    sessionId: str | None = None
    stage: Literal["activation"] | None = None
    destinationType: DestinationType | None = None
    failures: list[FailedPoint] | None = None
    workload: Workload | None = None
    items: list[GranularItem] | None = None

class AcceptedSession(_Open):
    index: int
    sessionId: str | None = None
    error: GraphErrorInfo | None = None
    failedRestorePointIds: list[str] | None = None


class RequestAccepted(EventData):
    """`restore.request.accepted`: every batch of the request is settled (created or failed)."""

    needs = {"sessions": ()}

    requestId: NonEmpty
    incidentId: str | None
    sessions: list[AcceptedSession] | None = None
    sessionCount: int
    createdSessionCount: int
    failedSessionCount: int
    artifactCount: int
    awaitingApproval: list[str] | None = Field(None, description="The in-place sessions waiting for an approval")


class RequestFailed(EventData):
    """`restore.request.failed`: transient failures outlasted the retry budget, or the message cannot be
    processed; what was done and what remains."""

    requestId: NonEmpty
    attempts: int
    lastError: GraphErrorInfo
    done: list[dict[str, Any]] | None = None
    failed: list[dict[str, Any]] | None = None
    remaining: list[dict[str, Any]] | None = None


class SessionActivated(EventData):
    """`restore.session.activated`: Graph accepted the activation of a session."""

    requestId: NonEmpty
    sessionId: NonEmpty
    status: NonEmpty
    index: int | None = None
    workload: Workload | None = None


class CompletedArtifact(_Open):
    restorePointId: str
    status: str
    restoredSiteWebUrl: str | None = None
    error: dict[str, Any] | None = None


class CompletedItem(_Open):
    itemKey: str
    status: str
    restoredItemPath: str | None = None
    restoredItemWebUrl: str | None = None
    error: dict[str, Any] | None = None


class SessionCompleted(EventData):
    """`restore.session.completed`: the session reached `completed`, `completedWithError` or `failed`."""

    needs = {"artifacts": ("items",)}

    requestId: NonEmpty
    sessionId: NonEmpty
    status: NonEmpty
    artifacts: list[CompletedArtifact] | None = Field(None, description="The outcome per restore point "
                                                                        "(granular sessions: items)")
    items: list[CompletedItem] | None = None
    workload: Workload | None = None

class CompletedSession(_Open):
    sessionId: str | None
    status: str


class WorkloadTotals(_Open):
    sessions: Counts
    artifacts: Counts


class RequestCompleted(EventData):
    """`restore.request.completed`: every session of the request reached a terminal state."""

    needs = {"sessionTotals": (), "artifactTotals": (), "sessions": ()}

    requestId: NonEmpty
    incidentId: str | None
    sessionTotals: Counts | None = Field(None, description="Sessions by final status (notCreated: refused)")
    artifactTotals: Counts | None = Field(None, description="Artifacts by final status")
    sessions: list[CompletedSession] | None = None
    workloadTotals: dict[Workload, WorkloadTotals] | None = None


class BrowseSessionCreated(EventData):
    """`browse.session.created`: a browse session reached `created`."""

    requestId: NonEmpty
    browseSessionId: NonEmpty
    restorePointId: NonEmpty
    status: NonEmpty
    expirationDateTime: str | None
    restorePointDateTime: str | None
    incidentId: str | None = None
    workload: Workload | None = None


class BrowseSessionFailed(EventData):
    """`browse.session.failed`: a browse session could not be created for this restore point."""

    requestId: NonEmpty
    restorePointId: NonEmpty
    error: GraphErrorInfo | None
    browseSessionId: str | None = None
    workload: Workload | None = None


class ActivationAccepted(EventData):
    """`activation.request.accepted`: what an activation request did to each session."""

    needs = {"queued": (), "alreadyQueued": (), "alreadyActivated": (), "notDraft": ()}

    requestId: str | None
    sessionIds: list[str] | None
    queued: list[str] | None = None
    alreadyQueued: list[str] | None = None
    alreadyActivated: list[str] | None = None
    notDraft: list[str] | None = None


class BulkDrive(_Open):
    selector: str
    status: str
    restorePointId: str | None = None
    protectionDateTime: str | None = None
    reason: str | None = None


class BulkCompleted(EventData):
    """`restore.bulk.completed`: Graph resolved a bulk session's addition request; the outcome per drive."""

    needs = {"driveCounts": (), "drives": ()}

    requestId: NonEmpty
    sessionId: NonEmpty
    index: int
    bulkAdditionRequestId: NonEmpty
    status: NonEmpty
    error: dict[str, Any] | None
    driveCounts: Counts | None = None
    drives: list[BulkDrive] | None = None


class SessionDeleted(EventData):
    """`restore.session.deleted`: a draft nobody activated within DRAFT_SESSION_MAX_AGE_HOURS was deleted."""

    requestId: NonEmpty
    sessionId: NonEmpty
    index: int
    reason: NonEmpty
    createdDateTime: str | None


#: Every event type of the contract and the model of its `data`.
DATA_MODELS: dict[str, type[EventData]] = {
    "restore.request.rejected": RequestRejected,
    "restore.request.planned": RequestPlanned,
    "restore.session.created": SessionCreated,
    "restore.session.failed": SessionFailed,
    "restore.request.accepted": RequestAccepted,
    "restore.request.failed": RequestFailed,
    "restore.session.activated": SessionActivated,
    "restore.session.completed": SessionCompleted,
    "restore.request.completed": RequestCompleted,
    "restore.bulk.completed": BulkCompleted,
    "restore.session.deleted": SessionDeleted,
    "browse.request.rejected": RequestRejected,
    "browse.session.created": BrowseSessionCreated,
    "browse.session.failed": BrowseSessionFailed,
    "activation.request.accepted": ActivationAccepted,
    "activation.request.rejected": RequestRejected,
}
EventType = Literal[
    "restore.request.rejected", "restore.request.planned", "restore.session.created", "restore.session.failed",
    "restore.request.accepted", "restore.request.failed", "restore.session.activated",
    "restore.session.completed", "restore.request.completed", "restore.bulk.completed", "restore.session.deleted",
    "browse.request.rejected", "browse.session.created", "browse.session.failed", "activation.request.accepted",
    "activation.request.rejected",
]


def _absent_not_null(schema: dict[str, Any]) -> None:
    [kept] = [option for option in schema.pop("anyOf") if option.get("type") != "null"]
    schema.update(kept)


class CloudEventEnvelope(BaseModel):
    """A CloudEvents 1.0 document in structured mode, as published on the topic restore-events. Its Service Bus
    message has message_id = id, subject = type, correlation_id = incidentId (else requestId), and the
    application properties type, requestId, incidentId and sessionId for subscription filters."""

    model_config = ConfigDict(extra="allow", strict=True, title="Restore orchestrator event")

    specversion: Literal["1.0"]
    id: Annotated[str, Field(min_length=1, max_length=MAX_EVENT_ID_LENGTH, description=(
        "Deterministic (for example <requestId>:session:<index>), so a re-publish is dropped by duplicate "
        "detection; a contract id longer than 128 characters ends in ~ and a digest"))]
    source: Literal["/restore-orchestrator"]
    type: EventType
    subject: Annotated[str, Field(min_length=1, description="The requestId (or the MessageId when the request "
                                                            "had none)")]
    time: Annotated[str, Field(pattern=RFC3339, description="When the event was built (RFC 3339, UTC)")]
    datacontenttype: Literal["application/json"]
    data: dict[str, Any] = Field(description="The event's payload: see the schema of its type")
    traceparent: str | None = Field(None, pattern=TRACEPARENT, json_schema_extra=_absent_not_null, description=(
        "W3C trace context of the request (CloudEvents distributed tracing); the same trace id for every event "
        "of a request"))

    @field_validator("traceparent", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("string_type", "a CloudEvents attribute is absent or a string, never null")
        return value

    @field_validator("data", mode="after")
    @classmethod
    def _data_of_its_type(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        event_type = info.data.get("type")
        if event_type in DATA_MODELS:
            DATA_MODELS[event_type].model_validate(data)  # its errors are reported under `data`
        return data


assert EVENT_SOURCE == "/restore-orchestrator"
assert set(DATA_MODELS) == set(EventType.__args__)  # type: ignore[attr-defined]


def validate_event(document: Any) -> CloudEventEnvelope:
    """A published event document, checked against the envelope and the model of its type's data; raises
    pydantic's ValidationError (locations under `data` for the data's problems)."""
    return CloudEventEnvelope.model_validate(document)
