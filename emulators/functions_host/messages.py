"""What a Service Bus-triggered function receives in-process: the ``azure.functions.ServiceBusMessage`` the host
would pass for a message received with the SDK."""

from __future__ import annotations

import inspect
import json
from typing import Any

from azure.functions.servicebus import ServiceBusMessage as FuncServiceBusMessage
from azure.servicebus import ServiceBusReceivedMessage

from .settlement import host_delivery_count


def _text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def _body_bytes(msg: ServiceBusReceivedMessage) -> bytes:
    body: Any = msg.body
    kind = str(getattr(msg, "body_type", "data")).lower()
    if "data" in kind or inspect.isgenerator(body):
        return b"".join(bytes(chunk) for chunk in body)
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    # Guess: the host serialises value/sequence bodies as JSON text.
    return json.dumps(body, default=str).encode("utf-8")


def to_function_message(msg: ServiceBusReceivedMessage) -> FuncServiceBusMessage:
    """The ``azure.functions.ServiceBusMessage`` the host would pass for an SDK message."""
    props = {str(_text(k)): _text(v) for k, v in (msg.application_properties or {}).items()}
    state = getattr(msg, "state", None)
    return FuncServiceBusMessage(
        body=_body_bytes(msg),
        trigger_metadata=None,
        application_properties=dict(props),
        content_type=msg.content_type,
        correlation_id=msg.correlation_id,
        dead_letter_error_description=msg.dead_letter_error_description,
        dead_letter_reason=msg.dead_letter_reason,
        dead_letter_source=msg.dead_letter_source,
        delivery_count=host_delivery_count(msg),
        enqueued_sequence_number=msg.enqueued_sequence_number,
        enqueued_time_utc=msg.enqueued_time_utc,
        expires_at_utc=msg.expires_at_utc,
        label=msg.subject,
        locked_until=msg.locked_until_utc,
        lock_token=str(msg.lock_token) if msg.lock_token is not None else None,
        message_id=str(msg.message_id) if msg.message_id is not None else "",
        partition_key=msg.partition_key,
        reply_to=msg.reply_to,
        reply_to_session_id=msg.reply_to_session_id,
        scheduled_enqueue_time_utc=msg.scheduled_enqueue_time_utc,
        sequence_number=msg.sequence_number,
        session_id=msg.session_id,
        state=int(state) if state is not None else None,
        subject=msg.subject,
        time_to_live=msg.time_to_live,
        to=msg.to,
        transaction_partition_key=None,
        user_properties=dict(props),
    )
