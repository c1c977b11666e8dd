"""Service Bus adapters: publish CloudEvents to the events topic, schedule retries on a queue.

Message ids are the CloudEvent ids, which are deterministic: a re-publish after a redelivery is
dropped by the topic's duplicate detection, so subscribers see each event once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender

from orchestrators.contracts import CLOUDEVENTS_CONTENT_TYPE, CloudEvent, encode_event, shrink_to_fit
from orchestrators.contracts.events import stamped
from orchestrators.kernel.clock import SYSTEM_CLOCK, Clock
from orchestrators.kernel.settings import ServiceBusConnectionSettings

log = logging.getLogger(__name__)


def service_bus_client(connection: ServiceBusConnectionSettings) -> ServiceBusClient:
    """A connection-string client (emulator, SAS) or an identity-based one (Azure)."""
    if connection.connection_string:
        return ServiceBusClient.from_connection_string(connection.connection_string)
    from azure.identity.aio import DefaultAzureCredential

    credential = DefaultAzureCredential(managed_identity_client_id=connection.client_id)
    assert connection.fully_qualified_namespace
    return ServiceBusClient(connection.fully_qualified_namespace, credential)


def to_service_bus_message(event: CloudEvent) -> ServiceBusMessage:
    return ServiceBusMessage(
        encode_event(event),
        message_id=event.id,
        correlation_id=event.correlation_id,
        subject=event.type,
        content_type=CLOUDEVENTS_CONTENT_TYPE,
        application_properties=dict(event.application_properties()),  # type: ignore[arg-type]
    )


class EventPublisher:
    """Publishes to the events topic through one long-lived sender.

    An SDK sender is not safe for concurrent use (two sends racing to open its link break it), and every
    invocation on the worker shares this one, so sends take turns.
    """

    def __init__(self, sender: ServiceBusSender, max_bytes: int = 240_000, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sender = sender
        self._clock = clock
        self._turn = asyncio.Lock()
        self._max_bytes = max_bytes
        self.published = 0

    async def open(self) -> None:
        """Open the sender's link ahead of the first publish (its AMQP handshake then overlaps other work)."""
        async with self._turn:
            try:
                await self._sender.__aenter__()
            except Exception as exc:  # the first publish opens it again, and says what is wrong
                log.warning("could not open the events sender ahead of time: %s", exc)

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        if not events:
            return
        async with self._turn:
            await self._send(events)

    async def _send(self, events: Sequence[CloudEvent]) -> None:
        now = self._clock.now()
        events = [shrink_to_fit(stamped(e, now), self._max_bytes) for e in events]
        batch = await self._sender.create_message_batch()
        for event in events:
            message = to_service_bus_message(event)
            try:
                batch.add_message(message)
            except ValueError:  # batch full: send it and start another
                await self._sender.send_messages(batch)
                batch = await self._sender.create_message_batch()
                batch.add_message(message)
        await self._sender.send_messages(batch)
        self.published += len(events)
        for event in events:
            log.info("published %s %s", event.type, event.id)


class RetryScheduler:
    """Puts a copy of a request back on its queue for later, with an attempt counter."""

    def __init__(self, sender: ServiceBusSender) -> None:
        self._sender = sender
        self._turn = asyncio.Lock()

    async def schedule(self, body: bytes, *, message_id: str, when: datetime,
                       application_properties: Mapping[str, Any], correlation_id: str | None,
                       content_type: str | None) -> None:
        message = ServiceBusMessage(
            body, message_id=message_id, correlation_id=correlation_id, content_type=content_type,
            application_properties=dict(application_properties),  # type: ignore[arg-type]
        )
        async with self._turn:
            await self._sender.schedule_messages(message, when)
