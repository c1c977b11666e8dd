"""What the orchestrators need of an incoming Service Bus message, independent of the Functions SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Application properties we set on scheduled retry copies of a request.
ATTEMPT_PROPERTY = "restoreAttempt"
REQUEST_ID_PROPERTY = "restoreRequestId"
ORIGINAL_MESSAGE_ID_PROPERTY = "restoreOriginalMessageId"


@dataclass(frozen=True)
class InboundMessage:
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
    def carried_request_id(self) -> str | None:
        return _text(self.application_properties.get(REQUEST_ID_PROPERTY))


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def from_functions_message(message: Any) -> InboundMessage:
    """Adapt `azure.functions.ServiceBusMessage` (what the host passes) to `InboundMessage`."""
    props = dict(getattr(message, "application_properties", None) or {})
    props = {(k.decode() if isinstance(k, bytes) else k): v for k, v in props.items()}
    return InboundMessage(
        body=message.get_body() or b"",
        message_id=getattr(message, "message_id", None) or None,
        delivery_count=int(getattr(message, "delivery_count", None) or 1),
        correlation_id=getattr(message, "correlation_id", None) or None,
        content_type=getattr(message, "content_type", None) or None,
        enqueued_time=getattr(message, "enqueued_time_utc", None),
        application_properties=props,
    )
