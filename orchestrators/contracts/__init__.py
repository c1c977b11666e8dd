"""The public contract in code: requests, their validation, the CloudEvents we publish, and their JSON Schemas.

- `rules`: the rules for single values (identifiers, texts, instants), plain Python.
- `body`: bytes to a JSON document, refusing what no later step could handle (size, numbers, surrogates).
- `domain`: the validated requests as the service uses them (frozen dataclasses).
- `requests`: pydantic models of the three requests, which validate and build the domain objects.
- `field_errors`: pydantic's errors as the contract's `errors` [{field, message}].
- `events`: the CloudEvents we build and publish; `event_models`: pydantic models of the published documents.
- `schemas`: the JSON Schemas in `schemas/`, generated from the models (`python -m orchestrators.contracts.schemas`).

Importing this package does not import pydantic: the models load on the first request parsed.
"""

from orchestrators.contracts.body import MAX_BODY_BYTES, MAX_NUMBER_DIGITS, decode_body
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
from orchestrators.contracts.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    EVENT_SOURCE,
    MAX_ECHOED_BODY_BYTES,
    MAX_EVENT_ID_LENGTH,
    CloudEvent,
    echo_body,
    encode_event,
    event_size,
    fit_event_id,
    rejected_event,
    request_event,
    shrink_to_fit,
    utc_now_iso,
)
from orchestrators.contracts.parsing import parse_activation_request, parse_browse_request, parse_restore_request
from orchestrators.contracts.rules import (
    BULK_MAX_DRIVES,
    EARLIEST_YEAR,
    LATEST_YEAR,
    MAX_REPORTED_ERRORS,
    RETENTION,
    STRATEGIES,
    best_effort_incident_id,
    best_effort_request_id,
    is_id_text,
    is_request_id,
    parse_instant,
    text_field_problem,
)

__all__ = [
    "BULK_MAX_DRIVES",
    "CLOUDEVENTS_CONTENT_TYPE",
    "EARLIEST_YEAR",
    "EVENT_SOURCE",
    "LATEST_YEAR",
    "MAX_BODY_BYTES",
    "MAX_BROWSE_RESTORE_POINTS",
    "MAX_ECHOED_BODY_BYTES",
    "MAX_EVENT_ID_LENGTH",
    "MAX_NUMBER_DIGITS",
    "MAX_REPORTED_ERRORS",
    "MAX_SESSION_IDS",
    "RETENTION",
    "STRATEGIES",
    "ActivationRequest",
    "Artifact",
    "BrowseRequest",
    "CloudEvent",
    "RestoreRequest",
    "Selection",
    "ValidationPolicy",
    "best_effort_incident_id",
    "best_effort_request_id",
    "decode_body",
    "echo_body",
    "encode_event",
    "event_size",
    "fit_event_id",
    "is_id_text",
    "is_request_id",
    "parse_activation_request",
    "parse_browse_request",
    "parse_instant",
    "parse_restore_request",
    "payload_hash",
    "rejected_event",
    "request_event",
    "shrink_to_fit",
    "text_field_problem",
    "utc_now_iso",
]
