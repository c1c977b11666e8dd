"""The last line of defence at each entry point: a failure that retrying cannot cure ends in an event.

Service Bus redelivers a message whose function raised, until `MaxDeliveryCount` sends it to the dead-letter
queue, where nobody is told. That is right for an outage (storage, Graph or Service Bus unreachable: the same
message succeeds later) and wrong for a failure that comes from the message itself (or from a defect its content
reaches): every redelivery fails the same way. Such a failure is reported once, as the request's terminal event,
and the message is completed.
"""

from __future__ import annotations

from typing import Any

from orchestrators.contracts import CloudEvent, best_effort_request_id, decode_body, echo_body
from orchestrators.kernel.errors import Contended, FieldError, GraphRefused, Rejected, RetryLater, redact
from orchestrators.kernel.messages import InboundMessage

#: Libraries whose exceptions mean "the service on the other side failed", not "this message is bad".
_IO_MODULES = ("azure.", "aiohttp", "httpx", "httpcore", "h11", "h2", "kiota", "msgraph", "uamqp", "ssl",
               "socket", "asyncio")
#: Answers that refuse what was sent: the same write will be refused again.
_REFUSING_STATUSES = frozenset({400, 413, 414})
_REFUSING_NAMES = frozenset({"MessageSizeExceededError"})


def is_transient(exc: BaseException) -> bool:
    """Whether the same message may succeed on a later delivery."""
    if isinstance(exc, Rejected | GraphRefused):
        return False
    if isinstance(exc, RetryLater | Contended | OSError | TimeoutError):
        return True
    if type(exc).__name__ in _REFUSING_NAMES:
        return False
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status not in _REFUSING_STATUSES
    return type(exc).__module__.startswith(_IO_MODULES)


def _request_id(message: InboundMessage) -> str | None:
    try:
        return best_effort_request_id(decode_body(message.body))
    except Rejected:
        return None


def _reason(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}")[:1000]


def unprocessable_event(kind: str, message: InboundMessage, exc: BaseException) -> CloudEvent:
    """The terminal event for a message that fails for good: `restore.request.failed`, or the rejection of a
    browse or activation request (their contracts have no failed event)."""
    request_id = _request_id(message) or message.carried_request_id
    key = request_id or message.message_id or "unknown"
    if kind == "restore":
        data: dict[str, Any] = {
            "requestId": request_id,
            "attempts": message.attempt,
            "deliveryCount": message.delivery_count,
            "lastError": {"status": None, "code": "UnprocessableMessage", "message": _reason(exc),
                          "graphRequestId": None},
            "deadLettered": False,
            "hint": "this message cannot be processed as sent and is not retried; the ledger keeps what was done, "
                    "so a corrected request with the same requestId creates nothing twice",
        }
        return CloudEvent(id=f"{key}:failed:{message.attempt}", type="restore.request.failed", subject=key,
                          data=data, correlation_id=message.correlation_id or key, request_id=key)
    error = FieldError("(body)", f"the service could not process this message ({_reason(exc)}); it is not "
                                 "retried: correct the request and send it again")
    suffix = ":browse:rejected" if kind == "browse" else ":activation:rejected"
    data = {"requestId": request_id, "errors": [error.to_json()], **echo_body(message.body)}
    return CloudEvent(id=f"{key}{suffix}", type=f"{kind}.request.rejected", subject=key, data=data,
                      correlation_id=key, request_id=key)
