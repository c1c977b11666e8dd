"""The end-to-end harness: the function app under the host runner, on real local services.

Graph is the emulator (reached by msgraph-sdk over HTTP), Service Bus is the AMQP stand-in (reached
by azure-servicebus), the ledger is Azurite (reached by azure-data-tables). Tests inject faults only
through those services' own controls, or by handing the runtime an adapter subclass that fails at
a chosen step (a simulated crash of the worker).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

from emulators.functions_host import FunctionsHost, close_promptly
from emulators.graph import AdminClient, make_token
from orchestrators.app import runtime
from orchestrators.app.runtime import Runtime
from orchestrators.kernel.settings import Settings
from tests.e2e import servicebus_backend
from tests.support.event_contract import check_event

ROOT = Path(__file__).resolve().parents[2]
#: E2E_WORKER=real runs the app inside the Python worker library (azure-functions-runtime, Python 3.13+)
#: instead of calling its functions directly; see emulators/functions_worker.
WORKER = os.environ.get("E2E_WORKER", "inproc")
REAL_WORKER = WORKER == "real"
APP_ID = "11111111-2222-3333-4444-555555555555"
WRITER_ROLES = ("BackupRestore-Restore.ReadWrite.All", "BackupRestore-Search.Read.All",
                "BackupRestore-Configuration.Read.All")


class SimulatedCrash(ConnectionError):
    """The worker 'dies' here: the host abandons the message and Service Bus redelivers it.

    A connection error, because what the service must do is the same as for a lost connection at that point:
    let Service Bus deliver the message again (a failure that comes from the message itself is reported and
    completed instead)."""


def base_settings(graph_url: str, sb_connection: str, ledger_connection: str, **extra: str) -> dict[str, str]:
    return {
        "ServiceBusConnection": sb_connection,
        "AzureWebJobsStorage": ledger_connection,
        "RESTORE_REQUESTS_QUEUE": "restore-requests",
        "BROWSE_REQUESTS_QUEUE": "browse-requests",
        "ACTIVATION_REQUESTS_QUEUE": "activation-requests",
        "RESTORE_EVENTS_TOPIC": "restore-events",
        "GRAPH_BASE_URL": graph_url,
        "GRAPH_ACCESS_TOKEN": make_token(WRITER_ROLES, app_id=APP_ID, lifetime=6 * 3600),
        "GRAPH_CLIENT_ID": APP_ID,
        "LEDGER_TABLE": f"e2e{uuid.uuid4().hex[:16]}",
        "RETRY_BASE_DELAY_SECONDS": "0.5",
        "RETRY_MAX_DELAY_SECONDS": "2",
        "GRAPH_THROTTLE_WAIT_LIMIT_SECONDS": "3",
        **extra,
    }


@dataclass
class Harness:
    settings_env: dict[str, str]
    graph: AdminClient
    sb_connection: str
    host: FunctionsHost | None = None
    runtime: Runtime | None = None
    client: ServiceBusClient | None = None
    standin: Any = None
    received: list[dict[str, Any]] = field(default_factory=list)
    _events_rx: Any = None

    @property
    def introspects(self) -> bool:
        """Whether ``standin`` can be looked into (the stand-in can; Microsoft's emulator is reached by SDK only)."""
        return hasattr(self.standin, "snapshot")

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.settings_env)

    async def start(self, runtime_parts: Runtime | None = None) -> Harness:
        self.runtime = runtime_parts or await Runtime.create(self.settings)
        runtime.install(self.runtime)
        self.client = ServiceBusClient.from_connection_string(self.sb_connection)
        self.host = FunctionsHost(app_module_or_path="function_app", settings=self.settings_env,
                                  host_json=servicebus_backend.host_json(), worker=WORKER,
                                  http_port=0)
        await self.host.start()
        return self

    async def stop(self) -> None:
        # The test's own events receiver closes while the host winds down; the app's runtime only after the
        # host, whose invocations in flight still use it.
        async def close_events() -> None:
            if self._events_rx is not None:
                await close_promptly(self._events_rx)
            if self.client is not None:
                await self.client.close()

        outcomes = await asyncio.gather(self.host.stop() if self.host is not None else asyncio.sleep(0),
                                        close_events(), return_exceptions=True)
        runtime.install(None)
        if self.runtime is not None:
            await self.runtime.aclose()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def send(self, body: bytes | Mapping[str, Any], message_id: str | None = None,
                   queue: str = "restore-requests") -> str:
        assert self.client is not None
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        message_id = message_id or str(uuid.uuid4())
        async with self.client.get_queue_sender(queue) as sender:
            await sender.send_messages(ServiceBusMessage(raw, message_id=message_id))
        return message_id

    async def settle(self, timeout: float = 60.0) -> None:
        assert self.host is not None
        await self.host.wait_idle(timeout=timeout, include_scheduled=True)

    def pending_events(self) -> int:
        counts = self.standin.snapshot().get("restore-events/Subscriptions/all", {}) if self.introspects else {}
        return int(counts.get("active", 0))

    async def drain_events(self, wait: float = 0.5) -> list[dict[str, Any]]:
        """Every event that reached subscription `all` since the last drain, in arrival order."""
        assert self.client is not None
        if self._events_rx is None:
            self._events_rx = self.client.get_subscription_receiver("restore-events", "all")
            await self._events_rx.__aenter__()
        rx = self._events_rx
        got: list[dict[str, Any]] = []
        while True:
            expected = self.pending_events() if self.introspects else 200
            if self.introspects and expected == 0:
                break
            batch = await rx.receive_messages(max_message_count=max(1, min(expected, 500)), max_wait_time=wait)
            if not batch:
                break
            for message in batch:
                event = json.loads(b"".join(message.body))
                check_event(event)  # every event the suite reads matches the published contract
                event["_message"] = {
                    "message_id": message.message_id,
                    "correlation_id": message.correlation_id,
                    "subject": message.subject,
                    "content_type": message.content_type,
                    "application_properties": {
                        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                        for k, v in (message.application_properties or {}).items()
                    },
                }
                got.append(event)
                await rx.complete_message(message)
        self.received.extend(got)
        return got

    async def run(self, body: bytes | Mapping[str, Any], message_id: str | None = None,
                  timeout: float = 60.0, queue: str = "restore-requests") -> list[dict[str, Any]]:
        """Send one request, wait until the app is idle, and return the events it produced."""
        await self.send(body, message_id, queue=queue)
        await self.settle(timeout)
        return await self.drain_events()

    def graph_sessions(self) -> list[dict[str, Any]]:
        """Every OneDrive restore session in the emulator, with its artifacts, read through Graph's own API."""
        base = self.settings_env["GRAPH_BASE_URL"] + "/solutions/backupRestore/oneDriveForBusinessRestoreSessions"
        headers = {"Authorization": f"Bearer {self.settings_env['GRAPH_ACCESS_TOKEN']}"}
        with httpx.Client(headers=headers, timeout=30) as http:
            sessions = _all_pages(http, base)
            for session in sessions:
                session["artifacts"] = [
                    {"restorePointId": a["restorePoint"]["id"], "destinationType": a["destinationType"],
                     "status": a["status"]}
                    for a in _all_pages(http, f"{base}/{session['id']}/driveRestoreArtifacts")
                ]
        return sessions

    def restore_points(self, count: int) -> list[str]:
        return [p["id"] for p in self.graph.samples(count)["restorePoints"]][:count]

    async def run_browse(self, body: bytes | Mapping[str, Any], message_id: str | None = None,
                         timeout: float = 60.0) -> list[dict[str, Any]]:
        """Send one browse request, wait until the app is idle, and return the events it produced."""
        await self.send(body, message_id, queue=self.settings_env["BROWSE_REQUESTS_QUEUE"])
        await self.settle(timeout)
        return await self.drain_events()

    def fast_restore_points(self, count: int) -> list[str]:
        """Restore points Graph can browse (tagged fastRestore)."""
        return [p["id"] for p in self.graph.samples(count)["fastRestorePoints"]][:count]

    def browse_sessions(self) -> list[dict[str, Any]]:
        """Every live browse session in the emulator, read through Graph's own API."""
        url = self.settings_env["GRAPH_BASE_URL"] + "/solutions/backupRestore/oneDriveForBusinessBrowseSessions"
        headers = {"Authorization": f"Bearer {self.settings_env['GRAPH_ACCESS_TOKEN']}"}
        with httpx.Client(headers=headers, timeout=30) as http:
            return _all_pages(http, url)


    def graph_calls(self, operation: str) -> list[dict[str, Any]]:
        """Calls the Graph emulator logged for one operation (for example `searchRestorePoints`)."""
        return [c for c in self.graph.calls() if c["operation"] == operation]

    def bulk_requests(self, session_id: str) -> list[dict[str, Any]]:
        """The bulk addition requests of a session, read through Graph's own API."""
        url = (self.settings_env["GRAPH_BASE_URL"] + "/solutions/backupRestore/oneDriveForBusinessRestoreSessions/"
               f"{session_id}/driveRestoreArtifactsBulkAdditionRequests")
        headers = {"Authorization": f"Bearer {self.settings_env['GRAPH_ACCESS_TOKEN']}"}
        with httpx.Client(headers=headers, timeout=30) as http:
            return _all_pages(http, url)


def _all_pages(http: httpx.Client, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        answer = http.get(next_url)
        answer.raise_for_status()
        page = answer.json()
        items.extend(page.get("value", []))
        next_url = page.get("@odata.nextLink")
    return items


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == event_type]


async def eventually(predicate: Any, timeout: float = 10.0, interval: float = 0.1) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)
