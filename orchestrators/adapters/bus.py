"""Service Bus adapters: publish CloudEvents to the events topic, schedule retries on a queue.

Message ids are the CloudEvent ids, which are deterministic: a re-publish after a redelivery is
dropped by the topic's duplicate detection, so subscribers see each event once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender

from orchestrators.contracts import CLOUDEVENTS_CONTENT_TYPE, CloudEvent, encode_event, shrink_to_fit
from orchestrators.contracts.events import stamped
from orchestrators.kernel import tracing
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

    def __init__(self, sender: ServiceBusSender, max_bytes: int = 240_000, clock: Clock = SYSTEM_CLOCK,
                 trace_lookup: Callable[[str], Awaitable[str | None]] | None = None) -> None:
        self._sender = sender
        self._trace_lookup = trace_lookup  # a request's recorded traceparent (the ledger's request row)
        self._topic = str(getattr(sender, "_entity_name", None) or "restore-events")
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
        events = await self._traced(events)
        with tracing.span(f"send {self._topic}", "producer", {
                "messaging.system": "servicebus", "messaging.operation.type": "send",
                "messaging.operation.name": "send", "messaging.destination.name": self._topic,
                "messaging.batch.message_count": len(events)}) if tracing.enabled() else tracing.NULL:
            async with self._turn:
                await self._send([replace(e, traceparent=tracing.event_traceparent(e.traceparent))
                                  if e.traceparent else e for e in events])
        for event in events:
            if event.type == "restore.session.created":
                tracing.count("restore.sessions.created", 1, {"restore.workload": "oneDrive"})
            elif event.type == "restore.session.failed":
                tracing.count("restore.sessions.failed", 1, {"restore.workload": "oneDrive"})

    async def _traced(self, events: Sequence[CloudEvent]) -> list[CloudEvent]:
        """Each event with its request's trace context: the one its request recorded, else (a request that
        never got a row, such as a rejected one) the invocation's."""
        current = tracing.current_invocation()
        fallback = (current.trace if current is not None else tracing.new_trace_context()).traceparent
        if current is not None and events:
            current.note_request(events[0].request_id, events[0].incident_id)
        traced: list[CloudEvent] = []
        for event in events:
            if event.traceparent:
                traced.append(event)
                continue
            recorded = current.requests.get(event.request_id) if current is not None else None
            if recorded is None and self._trace_lookup is not None:
                recorded = await self._trace_lookup(event.request_id)
            traced.append(replace(event, traceparent=recorded or fallback))
        return traced

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
