"""Per-worker wiring: settings, clients and orchestrators, created on first use and reused.

The Functions worker runs every invocation on one event loop, so one Graph adapter, one Service Bus
client and one table client serve them all. `install` lets an embedding (the CLI, tests) provide
its own parts; `aclose` releases them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrators.kernel.settings import Settings

if TYPE_CHECKING:
    from orchestrators.activation.coordinator import ActivationCoordinator, ActivationRequestOrchestrator
    from orchestrators.adapters.bus import EventPublisher, RetryScheduler
    from orchestrators.adapters.graph import GraphGateway
    from orchestrators.adapters.tables.ledger import Ledger
    from orchestrators.browse.orchestrator import BrowseOrchestrator
    from orchestrators.restore.orchestrator import RestoreOrchestrator
    from orchestrators.tracking.tracker import SessionTracker


@dataclass
class Runtime:
    settings: Settings
    graph: GraphGateway
    ledger: Ledger
    publisher: EventPublisher
    restore_scheduler: RetryScheduler
    _closers: list[Any] = field(default_factory=list)
    browse_scheduler: RetryScheduler | None = None

    @classmethod
    async def create(cls, settings: Settings) -> Runtime:
        from orchestrators.adapters.bus import EventPublisher, RetryScheduler, service_bus_client
        from orchestrators.adapters.credentials import graph_credential
        from orchestrators.adapters.graph import GraphGateway
        from orchestrators.adapters.tables.ledger import Ledger

        credential = graph_credential(settings)
        graph = GraphGateway.create(
            credential, settings.graph_base_url, timeout=settings.graph_timeout_seconds,
            throttle_wait_limit=settings.graph_throttle_wait_limit_seconds,
            application_id=settings.graph_client_id,
        )
        ledger = Ledger.from_settings(settings)
        bus = service_bus_client(settings.service_bus)
        events_sender = bus.get_topic_sender(settings.restore_events_topic)
        requests_sender = bus.get_queue_sender(settings.restore_requests_queue)
        runtime = cls(settings, graph, ledger, EventPublisher(events_sender, settings.event_max_bytes),
                      RetryScheduler(requests_sender))
        runtime._closers = [events_sender, requests_sender, bus, graph, ledger, credential]
        browse_sender = bus.get_queue_sender(settings.browse_requests_queue)
        runtime.browse_scheduler = RetryScheduler(browse_sender)
        runtime._closers.insert(0, browse_sender)  # closed before the client it belongs to
        return runtime

    def restore_orchestrator(self) -> RestoreOrchestrator:
        from orchestrators.restore.orchestrator import RestoreOrchestrator

        return RestoreOrchestrator(self.settings, self.graph, self.ledger, self.publisher,
                                   self.restore_scheduler, activation=self.activation_coordinator())

    def activation_coordinator(self) -> ActivationCoordinator:
        from orchestrators.activation.coordinator import ActivationCoordinator
        from orchestrators.adapters.tables.activation_store import ActivationLedger

        return ActivationCoordinator(self.settings, self.graph, self.ledger, ActivationLedger(self.ledger.table),
                                     self.publisher)

    def activation_requests(self) -> ActivationRequestOrchestrator:
        from orchestrators.activation.coordinator import ActivationRequestOrchestrator

        return ActivationRequestOrchestrator(self.activation_coordinator())

    def session_tracker(self) -> SessionTracker:
        from orchestrators.tracking.tracker import SessionTracker

        coordinator = self.activation_coordinator()
        return SessionTracker(self.settings, self.graph, self.ledger, coordinator.store, coordinator,
                              self.publisher)

    def browse_orchestrator(self) -> BrowseOrchestrator:
        from orchestrators.browse.orchestrator import BrowseOrchestrator

        if self.browse_scheduler is None:
            raise RuntimeError("this runtime has no scheduler for the browse-requests queue")
        return BrowseOrchestrator(self.settings, self.graph, self.ledger, self.publisher, self.browse_scheduler)

    async def aclose(self) -> None:
        """Close the senders side by side (each waits for its link to detach), then what they belong to."""
        from azure.servicebus.aio import ServiceBusSender

        senders = [c for c in self._closers if isinstance(c, ServiceBusSender)]
        await asyncio.gather(*(sender.close() for sender in senders), return_exceptions=True)
        for closer in self._closers:
            if closer in senders:
                continue
            close = getattr(closer, "aclose", None) or getattr(closer, "close", None)
            if close is None:
                continue
            result = close()
            if asyncio.iscoroutine(result):
                await result


_settings: Settings | None = None
_runtime: Runtime | None = None
_lock: asyncio.Lock | None = None


def configure(settings: Settings) -> None:
    """Record the validated settings at start-up; clients are made on first use."""
    global _settings
    _settings = settings


def install(runtime: Runtime | None) -> None:
    """Use these parts for the following invocations (the CLI and tests build their own)."""
    global _runtime, _lock
    _runtime = runtime
    _lock = None


async def get_runtime() -> Runtime:
    global _runtime, _lock, _settings
    if _runtime is not None:
        return _runtime
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _runtime is None:
            if _settings is None:
                _settings = Settings.from_env()
            _runtime = await Runtime.create(_settings)
    return _runtime


async def shutdown() -> None:
    global _runtime
    if _runtime is not None:
        runtime, _runtime = _runtime, None
        await runtime.aclose()
