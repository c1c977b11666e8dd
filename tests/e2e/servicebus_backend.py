"""Which Service Bus the end-to-end suite talks to: the stand-in (the default) or Microsoft's emulator in Docker.

``E2E_SERVICEBUS=standin`` (or unset): a fresh in-process stand-in per test, on a free port.
``E2E_SERVICEBUS=docker``: the official emulator that ``docker compose up -d`` starts from the repository root,
reached with its documented connection string (``E2E_SERVICEBUS_CONNECTION`` overrides it, for a remapped port).
In that mode the suite uses nothing but the SDK: every entity is emptied before each test, since the emulator
outlives the tests; Graph gets a fresh seed at every reset, so that no event id repeats within the topic's
duplicate-detection window; and the host runner takes one message at a time per function to stay within the
emulator's quota of 10 concurrent connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.servicebus import ServiceBusMessageState, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient

from emulators.functions_host import close_promptly
from emulators.graph import AdminClient
from emulators.servicebus import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "emulators" / "servicebus" / "Config.json"

BACKEND = os.environ.get("E2E_SERVICEBUS", "standin").strip().lower() or "standin"
DOCKER = BACKEND == "docker"
# The emulator's connection string for an application on the same machine (its installer's README).
EMULATOR_CONNECTION = (
    "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;"
    "UseDevelopmentEmulator=true;"
)
AMQP_PORT = 5672
# Health and management listen on 5300 by default (EMULATOR_HTTP_PORT in the container).
HEALTH_URL = "http://localhost:5300/health"
START_HINT = (
    "Start the emulator from the repository root with `docker compose up -d` (the emulator, its SQL database and "
    "Azurite; the entities come from emulators/servicebus/Config.json), wait until `docker compose logs "
    "servicebus-emulator` reports it ready, then run again. Without Docker, leave E2E_SERVICEBUS unset: the "
    "suite then uses the Python stand-in."
)
#: Receive loops per function in this mode (host.json asks for 8): each is a connection.
DOCKER_MAX_CONCURRENT_CALLS = 1


def connection_string() -> str:
    return os.environ.get("E2E_SERVICEBUS_CONNECTION") or EMULATOR_CONNECTION


def health_url() -> str:
    """``E2E_SERVICEBUS_HEALTH_URL`` overrides the health endpoint; set it empty to skip that check."""
    return os.environ.get("E2E_SERVICEBUS_HEALTH_URL", HEALTH_URL)


def amqp_endpoint(connection: str) -> tuple[str, int]:
    fields = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)
    endpoint = fields.get("Endpoint", "").split("://", 1)[-1].strip("/")
    host, _, port = endpoint.partition(":")
    return host or "localhost", int(port) if port else AMQP_PORT


def emulator_problem(connection: str, health: str | None, timeout: float = 3.0) -> str | None:
    """Why the run cannot use the emulator (a sentence with what to do), or None when it answers."""
    host, port = amqp_endpoint(connection)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return _why_unreachable(host, port, exc)
    if health:
        try:
            urllib.request.urlopen(health, timeout=timeout).close()  # raises on an error status too
        except (OSError, urllib.error.URLError) as exc:
            return (f"E2E_SERVICEBUS=docker: {host}:{port} accepts connections, but the Service Bus emulator's "
                    f"health endpoint {health} does not answer ({exc}): the emulator is still starting, or what "
                    f"listens on {port} is something else (the Python stand-in?). {START_HINT}")
    return None


def _why_unreachable(host: str, port: int, error: OSError) -> str:
    where = f"the Service Bus emulator is not reachable on {host}:{port} ({error})"
    docker = shutil.which("docker")
    if docker is None:
        return (f"E2E_SERVICEBUS=docker: Docker is not available (no `docker` command on PATH), and {where}. "
                f"This mode needs Microsoft's emulator, which runs only in Docker. {START_HINT}")
    try:
        info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=15, check=False)
        engine_error = info.stderr.strip().splitlines()[0] if info.returncode != 0 and info.stderr.strip() else (
            f"exit code {info.returncode}" if info.returncode != 0 else None)
    except subprocess.TimeoutExpired:
        engine_error = "`docker info` did not answer within 15 s"
    if engine_error is not None:
        return (f"E2E_SERVICEBUS=docker: the Docker client is installed but its engine is not available "
                f"({engine_error}), and {where}. Start the Docker engine. {START_HINT}")
    return f"E2E_SERVICEBUS=docker: {where}. {START_HINT}"


PROBE_MESSAGE_ID = "e2e-suite-duplicate-detection-probe"
STALE_HINT = (
    "E2E_SERVICEBUS=docker: the emulator still remembers the message ids of an earlier run (the events topic "
    "dropped this run's probe as a duplicate), so it would drop this run's events too: the scenarios use fixed "
    "request ids. Restart it first: `docker compose restart servicebus-emulator` (it keeps nothing across a "
    "restart), wait until it is ready, then run again."
)


async def remembers_an_earlier_run(connection: str, topic: str = "restore-events", subscription: str = "all") -> bool:
    """Send the same probe id every run to the events topic: a topic that drops it as a duplicate still holds the
    ids of a run within its duplicate-detection window. The probe, when it arrives, is removed again."""
    from azure.servicebus import ServiceBusMessage

    async with ServiceBusClient.from_connection_string(connection) as client:
        async with _opened(client.get_topic_sender(topic)) as sender:
            await sender.send_messages(ServiceBusMessage(b"probe", message_id=PROBE_MESSAGE_ID))
        async with _opened(client.get_subscription_receiver(topic, subscription)) as receiver:
            while batch := await receiver.receive_messages(max_message_count=100, max_wait_time=2):
                for message in batch:
                    await receiver.complete_message(message)
                    if message.message_id == PROBE_MESSAGE_ID:
                        return False
    return True


@dataclass(frozen=True)
class EmulatorServiceBus:
    """The emulator as the ``service_bus`` fixture hands it out: a connection string, nothing to look inside
    (no ``snapshot()``), so the harness counts and waits through the SDK alone."""

    connection_string: str


class FreshSeedAdmin(AdminClient):
    """The Graph emulator's admin client in Docker mode: every reset gets a seed not used before.

    The emulator draws its session ids from its seed, so every scenario (each resets Graph to seed 11) would
    create sessions with the same ids, and the events named after them (``<sessionId>:activated``,
    ``:completed``, ``:deleted``) would be dropped by the events topic's duplicate detection. The stand-in is new
    for every test; the emulator remembers message ids for the topic's whole window, from one run to the next
    too. The scenarios find their restore points and drives through ``samples()``, whatever the seed."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        super().__init__(base_url, timeout)
        self._salt = secrets.randbits(30)
        self._resets = 0

    def reset(self, **settings: Any) -> dict[str, Any]:
        self._resets += 1
        asked = int(settings.get("seed", 0))
        settings["seed"] = (asked * 1_000_003 + self._salt + self._resets) % 2**31
        return super().reset(**settings)


def host_json() -> str | dict[str, Any]:
    """What the harness gives the host runner as host.json: the repository's, with fewer receive loops in
    Docker mode (every SDK receiver has a connection of its own)."""
    path = ROOT / "host.json"
    if not DOCKER:
        return str(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.setdefault("extensions", {}).setdefault("serviceBus", {})["maxConcurrentCalls"] = DOCKER_MAX_CONCURRENT_CALLS
    return dict(doc)


@contextlib.asynccontextmanager
async def _opened(handler: Any) -> AsyncIterator[Any]:
    await handler.__aenter__()
    try:
        yield handler
    finally:
        await close_promptly(handler)


def entity_paths() -> tuple[list[str], list[tuple[str, str]]]:
    """The queues and the (topic, subscription) pairs declared in Config.json, the emulator's entity file."""
    queues: list[str] = []
    subscriptions: list[tuple[str, str]] = []
    for namespace in load_config(str(CONFIG)):
        queues.extend(q.name for q in namespace.queues)
        for topic in namespace.topics:
            subscriptions.extend((topic.entity.name, s.name) for s in topic.subscriptions)
    return queues, subscriptions


async def purge(connection: str, *, parallel: int = 5) -> int:
    """Empty every entity (active, deferred, scheduled and dead-lettered messages) through the SDK; return how
    many messages were removed. A few entities at a time, because each receiver is a connection."""
    queues, subscriptions = entity_paths()
    gate = asyncio.Semaphore(parallel)
    removed = 0
    async with ServiceBusClient.from_connection_string(connection) as client:

        async def empty(get: Any, sub_queue: Any = None, queue: str | None = None) -> None:
            nonlocal removed
            async with gate:
                rx = get(sub_queue=sub_queue, receive_mode=ServiceBusReceiveMode.PEEK_LOCK)
                async with _opened(rx):
                    scheduled, deferred, others = [], [], 0
                    sequence = 1
                    while True:  # peek sees every message, scheduled and deferred ones too
                        batch = await rx.peek_messages(max_message_count=250, sequence_number=sequence)
                        for m in batch:
                            if m.state == ServiceBusMessageState.SCHEDULED:
                                scheduled.append(int(m.sequence_number or 0))
                            elif m.state == ServiceBusMessageState.DEFERRED:
                                deferred.append(int(m.sequence_number or 0))
                            else:
                                others += 1
                        if len(batch) < 250:
                            break
                        sequence = int(batch[-1].sequence_number or 0) + 1
                    if deferred:
                        for m in await rx.receive_deferred_messages(deferred):
                            await rx.complete_message(m)
                            removed += 1
                    # Messages still locked by a receiver that went away come back only when the lock expires
                    # (a minute): they are not waited for.
                    while others and (batch := await rx.receive_messages(max_message_count=250, max_wait_time=1)):
                        for m in batch:
                            await rx.complete_message(m)
                        removed += len(batch)
                        others -= len(batch)
                if scheduled and queue is not None:  # the service schedules retry copies on its queues only
                    async with _opened(client.get_queue_sender(queue)) as sender:
                        await sender.cancel_scheduled_messages(scheduled)
                    removed += len(scheduled)

        jobs = []
        for queue in queues:
            def get_queue(queue: str = queue, **kw: Any) -> Any:
                return client.get_queue_receiver(queue, **kw)
            jobs += [empty(get_queue, queue=queue), empty(get_queue, ServiceBusSubQueue.DEAD_LETTER)]
        for topic, name in subscriptions:
            def get_sub(topic: str = topic, name: str = name, **kw: Any) -> Any:
                return client.get_subscription_receiver(topic, name, **kw)
            jobs += [empty(get_sub), empty(get_sub, ServiceBusSubQueue.DEAD_LETTER)]
        await asyncio.gather(*jobs)
    return removed
