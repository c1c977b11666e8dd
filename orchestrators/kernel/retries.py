"""Transient failures come back as a scheduled copy of the message, never as a tight loop.

The copy carries an attempt counter and the request's id (a request without a requestId is keyed by the
first message's id, which the copy no longer has), and its message id is derived from the original's, so a
copy scheduled twice by a redelivered attempt is dropped by the queue's duplicate detection when it is on.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from orchestrators.kernel.messages import (
    ATTEMPT_PROPERTY,
    ORIGINAL_MESSAGE_ID_PROPERTY,
    REQUEST_ID_PROPERTY,
    InboundMessage,
)
from orchestrators.kernel.settings import Settings


class Scheduler(Protocol):
    async def schedule(self, body: bytes, *, message_id: str, when: datetime,
                       application_properties: dict[str, Any], correlation_id: str | None,
                       content_type: str | None) -> None: ...


def backoff_seconds(settings: Settings, attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Doubling from RETRY_BASE_DELAY_SECONDS, capped, with ±20% jitter; never sooner than Graph asked."""
    base = settings.retry_base_delay_seconds * (2 ** (attempt - 1))
    delay = min(settings.retry_max_delay_seconds, base) * (0.8 + 0.4 * rng.random())
    return max(delay, retry_after or 0.0)


async def schedule_next_attempt(scheduler: Scheduler, message: InboundMessage, request_id: str,
                                delay_seconds: float) -> datetime:
    """Schedule attempt n+1 of `message`; returns when it becomes visible."""
    attempt = message.attempt
    when = datetime.now(UTC) + timedelta(seconds=delay_seconds)
    original = message.original_message_id or request_id
    await scheduler.schedule(
        message.body,
        message_id=f"{original}:retry:{attempt + 1}",
        when=when,
        application_properties={
            **{k: v for k, v in message.application_properties.items() if isinstance(v, str | int)},
            ATTEMPT_PROPERTY: attempt + 1,
            REQUEST_ID_PROPERTY: request_id,
            ORIGINAL_MESSAGE_ID_PROPERTY: original,
        },
        correlation_id=message.correlation_id,
        content_type=message.content_type,
    )
    return when
