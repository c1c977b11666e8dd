"""What the orchestrators need of an incoming Service Bus message, independent of the Functions SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrators.contracts import is_request_id
from orchestrators.kernel.tracing import TraceContext, message_trace_context

#: Application properties we set on scheduled retry copies of a request.
ATTEMPT_PROPERTY = "restoreAttempt"
REQUEST_ID_PROPERTY = "restoreRequestId"
ORIGINAL_MESSAGE_ID_PROPERTY = "restoreOriginalMessageId"


@dataclass(frozen=True)
class InboundMessage:
    """``delivery_count`` as the Functions host reports it: 1 on the first delivery (not the SDK's 0-based count);
    ``enqueued_time`` always time-zone aware, in UTC."""

    body: bytes
    message_id: str | None
    delivery_count: int = 1
    correlation_id: str | None = None
    content_type: str | None = None
    enqueued_time: datetime | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        raw = self.application_properties.get(ATTEMPT_PROPERTY, 1)
        try:
            return max(1, int(raw))
        except (TypeError, ValueError):
            return 1

    @property
    def original_message_id(self) -> str | None:
        return _text(self.application_properties.get(ORIGINAL_MESSAGE_ID_PROPERTY)) or self.message_id

    @property
    def trace_context(self) -> TraceContext | None:
        """The sender's W3C trace context (`traceparent`, else `Diagnostic-Id`); None when absent or invalid.
        Used for tracing only."""
        return message_trace_context(self.application_properties)

    @property
    def carried_request_id(self) -> str | None:
        """The requestId our own retry copies carry; anything else a sender put there is ignored."""
        value = _text(self.application_properties.get(REQUEST_ID_PROPERTY))
        return value if is_request_id(value) else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def utc_instant(value: Any) -> datetime | None:
    """An instant the host reports, as an aware UTC datetime.

    The host sends ``EnqueuedTimeUtc`` as ISO text without a zone and the library turns it into a naive
    datetime; naive values are UTC by name, never local time (``timestamp()`` on a naive value would read it in
    the worker's own zone)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _delivery_count(value: Any) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError, OverflowError):
        return 1


def from_functions_message(message: Any) -> InboundMessage:
    """Adapt `azure.functions.ServiceBusMessage` (what the host passes) to `InboundMessage`."""
    props = dict(getattr(message, "application_properties", None) or {})
    props = {(k.decode() if isinstance(k, bytes) else k): v for k, v in props.items()}
    return InboundMessage(
        body=message.get_body() or b"",
        message_id=getattr(message, "message_id", None) or None,
        delivery_count=_delivery_count(getattr(message, "delivery_count", None)),
        correlation_id=getattr(message, "correlation_id", None) or None,
        content_type=getattr(message, "content_type", None) or None,
        enqueued_time=utc_instant(getattr(message, "enqueued_time_utc", None)),
        application_properties=props,
    )
