"""A message's life around its invocation, by the Service Bus extension's rules.

The lock is renewed while the function runs (up to ``maxAutoLockRenewalDuration``); with
``autoCompleteMessages`` the message is completed when the function returns and abandoned when it raises.
Dead-lettering is Service Bus's own: an abandoned message comes back with ``DeliveryCount`` + 1 until it reaches
the entity's ``MaxDeliveryCount``. The host reports ``DeliveryCount`` 1-based.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus.aio import ServiceBusReceiver

from .host_json import HostOptions
from .invoking import Invocation
from .loading import Trigger

log = logging.getLogger("emulators.functions_host")


def host_delivery_count(msg: ServiceBusReceivedMessage) -> int:
    """The ``DeliveryCount`` the host's Service Bus extension reports: 1 on the first delivery.

    Service Bus sends the number of earlier deliveries and the Python SDK passes it through (0 first); the
    extension, like the .NET SDK it is built on, adds 1."""
    return int(msg.delivery_count or 0) + 1


async def renew_lock_while_running(
    trig: Trigger, receiver: ServiceBusReceiver, msg: Any, max_duration: float
) -> None:
    """Renew the message lock until cancelled or ``max_duration`` seconds have passed.

    Guess: the host's processor renews shortly before expiry; this renews at half the remaining lock time,
    which also works for the short LockDurations used in tests (the SDK's AutoLockRenewer polls once a
    second and lets locks of 2 s or less lapse)."""
    deadline = time.monotonic() + max_duration
    while True:
        until = msg.locked_until_utc
        if until is None:
            return
        remaining = (until - dt.datetime.now(dt.UTC)).total_seconds()
        await asyncio.sleep(max(0.05, remaining / 2))
        if time.monotonic() >= deadline:
            return
        try:
            await receiver.renew_message_lock(msg)
        except Exception as err:
            log.warning("%s: renewing the lock of %s failed: %r", trig.name, msg.message_id, err)
            return


async def settle(
    trig: Trigger, receiver: ServiceBusReceiver, messages: list[Any], *, failed: bool, auto_complete: bool
) -> tuple[str, str | None]:
    """Complete (or, after a failure, abandon) each message; return the outcome and a settlement error."""
    if not auto_complete:
        return "not-settled", None
    outcome, settle_error = ("abandoned" if failed else "completed"), None
    for m in messages:
        try:
            if failed:
                await receiver.abandon_message(m)
            else:
                await receiver.complete_message(m)
        except Exception as err:
            settle_error, outcome = repr(err), "lock-lost"
            log.warning("%s: settling message %s failed: %r", trig.name, m.message_id, err)
    return outcome, settle_error


async def invoke_and_settle(
    trig: Trigger,
    receiver: ServiceBusReceiver,
    messages: list[Any],
    call: Callable[[], Awaitable[Any]],
    options: HostOptions,
) -> Invocation:
    """Run ``call`` (the function, for ``messages``) under lock renewal, then settle; return the record."""
    started, t0 = time.time(), time.monotonic()
    first = messages[0]
    renewal: asyncio.Task[None] | None = None
    if options.max_auto_lock_renewal_duration > 0 and not trig.many:
        # Batches are not renewed (the extension documents renewal for single messages only).
        renewal = asyncio.create_task(
            renew_lock_while_running(trig, receiver, first, options.max_auto_lock_renewal_duration)
        )
    try:
        error: BaseException | None = None
        try:
            await call()
        except Exception as err:
            error = err
            log.warning(
                "%s: function failed for message %s (delivery %s): %r",
                trig.name,
                first.message_id,
                host_delivery_count(first),
                err,
                exc_info=err,
            )
        auto_complete = options.auto_complete_messages if trig.auto_complete is None else trig.auto_complete
        outcome, settle_error = await settle(
            trig, receiver, messages, failed=error is not None, auto_complete=bool(auto_complete)
        )
        return Invocation(
            function=trig.name,
            message_id=str(first.message_id) if first.message_id is not None else None,
            delivery_count=host_delivery_count(first),
            outcome=outcome,
            exception=repr(error) if error is not None else None,
            duration=time.monotonic() - t0,
            started_at=started,
            sequence_number=first.sequence_number,
            message_ids=[str(m.message_id) for m in messages],
            settle_error=settle_error,
        )
    finally:
        if renewal is not None:
            renewal.cancel()
            with contextlib.suppress(BaseException):
                await renewal
