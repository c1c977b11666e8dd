"""Receiving from Service Bus with the real ``azure.servicebus.aio`` SDK, with the host's concurrency.

Per Service Bus trigger, receive slots run one message (or batch) at a time each; a slot is added while all are
busy, up to ``maxConcurrentCalls`` (the host's processor has that many concurrent receive-and-handle calls).
PeekLock always; ``prefetchCount`` as host.json says. One client per connection setting, built from a
connection string or from ``<connection>__fullyQualifiedNamespace`` with an Azure identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from azure.servicebus import ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver

from .host_json import HostOptions
from .loading import Trigger

log = logging.getLogger("emulators.functions_host")

Handler = Callable[[Trigger, ServiceBusReceiver, list[Any]], Awaitable[None]]


async def close_promptly(handler: Any) -> None:
    """Close an ``azure.servicebus.aio`` sender or receiver without sitting out its keep-alive tick.

    Each aio handler runs a keep-alive task that sleeps in one-second steps and is awaited at the very end of
    ``close()``, after the links, the session and the connection are closed: up to a second of nothing per close.
    Cancelling that task first changes nothing else; the SDK still drains the link, releases buffered messages
    and closes the connection. (The attribute is the SDK's own; if it is absent, this is a plain ``close()``.)"""
    amqp = getattr(handler, "_handler", None)
    keep_alive = getattr(amqp, "_keep_alive_thread", None)
    if isinstance(keep_alive, asyncio.Future) and not keep_alive.done():
        keep_alive.cancel()
        amqp._keep_alive_thread = None  # type: ignore[union-attr]
    await handler.close()


@contextlib.asynccontextmanager
async def opened(handler: Any) -> AsyncIterator[Any]:
    """``async with handler`` that closes with :func:`close_promptly`."""
    await handler.__aenter__()
    try:
        yield handler
    finally:
        await close_promptly(handler)


class ServiceBusReceivers:
    """The receive loops of the Service Bus triggers started, their clients, and the peekers that tell idleness.

    ``handle(trigger, receiver, messages)`` runs the function for what a slot received and settles it."""

    def __init__(
        self,
        setting: Callable[[str], str | None],
        options: HostOptions,
        handle: Handler,
        stopping: asyncio.Event,
        *,
        poll_interval: float = 0.5,
    ) -> None:
        self._setting = setting
        self._options = options
        self._handle = handle
        self._stopping = stopping
        self._poll_interval = poll_interval
        self.tasks: list[asyncio.Task[None]] = []
        self.triggers: dict[str, Trigger] = {}
        self._clients: dict[str, ServiceBusClient] = {}
        self._slots: dict[str, int] = {}
        self._busy: dict[str, int] = {}
        self._peekers: dict[str, ServiceBusReceiver] = {}

    # ------------------------------------------------------------------ clients

    def client(self, connection: str) -> ServiceBusClient:
        client = self._clients.get(connection)
        if client is not None:
            return client
        conn = self._setting(connection)
        if conn is None and not connection.startswith("AzureWebJobs"):
            conn = self._setting("AzureWebJobs" + connection)
        if conn is not None:
            client = ServiceBusClient.from_connection_string(conn)
        else:
            fqns = self._setting(f"{connection}__fullyQualifiedNamespace")
            if not fqns:
                raise KeyError(f"app setting {connection!r} (Service Bus connection) is not set")
            from azure.identity.aio import DefaultAzureCredential

            client_id = self._setting(f"{connection}__clientId")
            credential = DefaultAzureCredential(managed_identity_client_id=client_id)
            client = ServiceBusClient(fqns, credential)
        self._clients[connection] = client
        return client

    def receiver(self, trig: Trigger, *, prefetch: int) -> ServiceBusReceiver:
        client = self.client(trig.connection)
        if trig.queue:
            return client.get_queue_receiver(
                trig.queue, receive_mode=ServiceBusReceiveMode.PEEK_LOCK, prefetch_count=prefetch
            )
        return client.get_subscription_receiver(
            str(trig.topic),
            str(trig.subscription),
            receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
            prefetch_count=prefetch,
        )

    # ------------------------------------------------------------------ receive loops

    def start(self, trig: Trigger) -> None:
        self.triggers[trig.name] = trig
        self._slots[trig.name] = 0
        self._busy[trig.name] = 0
        self._spawn_slot(trig)

    def _spawn_slot(self, trig: Trigger) -> None:
        index = self._slots[trig.name]
        self._slots[trig.name] = index + 1
        task = asyncio.create_task(self._slot(trig, index), name=f"servicebus:{trig.name}:{index}")
        self.tasks.append(task)

    async def _slot(self, trig: Trigger, index: int) -> None:
        """One receiver handling one message (or batch) at a time; reconnects after a failure."""
        batch = self._options.max_message_batch_size if trig.many else 1
        while not self._stopping.is_set():
            try:
                async with opened(self.receiver(trig, prefetch=self._options.prefetch_count)) as receiver:
                    while not self._stopping.is_set():
                        messages = await receiver.receive_messages(
                            max_message_count=batch, max_wait_time=self._poll_interval
                        )
                        if not messages:
                            continue
                        self._busy[trig.name] += 1
                        if (
                            self._busy[trig.name] >= self._slots[trig.name]
                            and self._slots[trig.name] < self._options.max_concurrent_calls
                            and not self._stopping.is_set()
                        ):
                            self._spawn_slot(trig)
                        try:
                            await self._handle(trig, receiver, messages)
                        finally:
                            self._busy[trig.name] -= 1
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self._stopping.is_set():
                    return
                log.warning("%s[%d]: receiver failed (%r); reconnecting", trig.name, index, err)
                await asyncio.sleep(0.5)

    # ------------------------------------------------------------------ idleness

    async def entity_busy(self, trig: Trigger, grace: float, include_scheduled: bool) -> bool:
        """Whether ``trig``'s entity holds a message that a receiver will get: active or locked, or scheduled
        within ``grace`` seconds (any scheduled one with ``include_scheduled``). Deferred ones do not count."""
        peeker = self._peekers.get(trig.name)
        if peeker is None:
            peeker = self.receiver(trig, prefetch=0)
            await peeker.__aenter__()
            self._peekers[trig.name] = peeker
        horizon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
        seq = 1  # explicit: with 0 the SDK continues after the last peeked message
        while True:
            batch = await peeker.peek_messages(max_message_count=100, sequence_number=seq)
            for m in batch:
                state = int(getattr(m, "state", 0) or 0)
                if state == 1:  # deferred: nobody receives it without its sequence number
                    continue
                if state == 2 and not include_scheduled:
                    when = m.scheduled_enqueue_time_utc
                    if when is not None and when > horizon:
                        continue
                return True
            if len(batch) < 100:
                return False
            seq = int(batch[-1].sequence_number or 0) + 1

    async def any_busy(self, grace: float, include_scheduled: bool) -> bool:
        for trig in self.triggers.values():
            if await self.entity_busy(trig, grace, include_scheduled):
                return True
        return False

    # ------------------------------------------------------------------ shutdown

    async def close_peekers(self) -> None:
        """The peekers (``wait_idle``'s) are not in use once the host stops: closed while the loops wind down."""
        peekers, self._peekers = list(self._peekers.values()), {}
        await asyncio.gather(*(close_promptly(peeker) for peeker in peekers), return_exceptions=True)

    async def close_clients(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
