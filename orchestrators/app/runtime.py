"""Per-worker wiring: settings, clients and orchestrators, created on first use and reused.

The Functions worker runs every invocation on one event loop, so one Graph adapter, one Service Bus
client and one table client serve them all. `install` lets an embedding (the CLI, tests) provide
its own parts; `aclose` releases them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
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
    _warming: asyncio.Future[None] | None = None
    made_ahead: bool = False  # by `prewarm`, before any invocation

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
        publisher = EventPublisher(events_sender, settings.event_max_bytes, trace_lookup=ledger.request_traceparent)
        runtime = cls(settings, graph, ledger, publisher, RetryScheduler(requests_sender))
        runtime._closers = [events_sender, requests_sender, bus, graph, ledger, credential]
        browse_sender = bus.get_queue_sender(settings.browse_requests_queue)
        runtime.browse_scheduler = RetryScheduler(browse_sender)
        runtime._closers.insert(0, browse_sender)  # closed before the client it belongs to
        # The first message need not wait for these one after the other: start them now, alongside its work.
        ledger.check_table_soon()
        runtime._warming = asyncio.ensure_future(runtime.publisher.open())
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
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)
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
    """Record the validated settings at start-up (and set up telemetry, if asked for); clients are made on first
    use."""
    global _settings
    _settings = settings
    from orchestrators.app import telemetry

    telemetry.configure()


#: What the first invocation imports: the SDKs and the capabilities (about 0.6 s of a cold worker's CPU).
_FIRST_USE_MODULES = (
    "orchestrators.adapters.bus", "orchestrators.adapters.graph", "orchestrators.adapters.tables.ledger",
    "orchestrators.adapters.credentials", "orchestrators.adapters.tables.activation_store",
    "orchestrators.restore.orchestrator", "orchestrators.activation.coordinator", "orchestrators.browse.orchestrator",
    "orchestrators.tracking.tracker", "orchestrators.contracts.requests",
    # Imported by the SDKs only when their clients are made.
    "aiohttp", "azure.core.pipeline.transport._aiohttp", "httpx",
)


def prewarm() -> threading.Thread:
    """Get the first invocation's work out of its way while the host finishes starting (loading the functions,
    opening its Service Bus listeners): import the SDKs on a background thread, then, when the app was loaded on
    a running event loop (the worker indexes it on its own), create the clients there, check the ledger table and
    open the events link. Indexing waits for none of it; an invocation that comes first waits only for the rest.
    """
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None

    def run() -> None:
        import importlib

        try:
            for name in _FIRST_USE_MODULES:
                importlib.import_module(name)
        except Exception:  # the invocation imports it again and reports the failure where it matters
            return
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_start_creating, loop)

    thread = threading.Thread(target=run, name="prewarm", daemon=True)
    thread.start()
    return thread


def _start_creating(loop: asyncio.AbstractEventLoop) -> None:
    async def create() -> None:
        global _runtime
        if _runtime is not None or _settings is None:
            return  # parts installed (the CLI, tests), or nothing configured
        try:
            runtime = await Runtime.create(_settings)
        except Exception as exc:  # the first invocation tries again and fails where it can be seen
            import logging

            logging.getLogger(__name__).warning("could not create the clients ahead of the first message: %s", exc)
            return
        if _runtime is None:
            runtime.made_ahead = True
            _runtime = runtime
        else:  # an invocation or `install` got there first
            await runtime.aclose()

    global _prewarming
    _prewarming = loop.create_task(create())


_prewarming: asyncio.Task[None] | None = None


def install(runtime: Runtime | None) -> None:
    """Use these parts for the following invocations (the CLI and tests build their own); clients made ahead of
    time by `prewarm` are closed."""
    global _runtime, _lock, _prewarming
    if _prewarming is not None:
        _prewarming.cancel()
        _prewarming = None
    if _runtime is not None and _runtime is not runtime and _runtime.made_ahead:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing was opened on one
            asyncio.get_running_loop().create_task(_runtime.aclose())
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
