"""The CloudEvents we publish: the envelope, the ids Service Bus accepts, rejection events, and cutting an event
down to the size Service Bus takes. Plain dataclasses (building events is on every request's path); the pydantic
models that describe the published documents for integrators are in `event_models`."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from orchestrators.contracts.domain import RestoreRequest
from orchestrators.kernel.errors import FieldError

EVENT_SOURCE = "/restore-orchestrator"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
MAX_ECHOED_BODY_BYTES = 64_000

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
    #: W3C trace context of the request (CloudEvents distributed-tracing extension); set by the publisher.
    traceparent: str | None = None

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
            # Stamped by the publisher as it sends (building an event reads no clock); an unstamped event is sized
            # with a stand-in of the same length.
            "time": self.time or UNSTAMPED_TIME,
            "datacontenttype": "application/json",
            **({"traceparent": self.traceparent} if self.traceparent else {}),
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


UNSTAMPED_TIME = "0000-00-00T00:00:00.000Z"


def stamped(event: CloudEvent, at: datetime) -> CloudEvent:
    """The event with its `time` (kept if it has one already: a re-publish keeps the first)."""
    return event if event.time else replace(event, time=iso_instant(at))


def iso_instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
