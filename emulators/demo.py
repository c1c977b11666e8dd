"""The local demo: the whole service on one machine, no Azure and no Docker.

Starts the Graph Backup Storage emulator, the Service Bus stand-in and Azurite, runs `function_app` under
the host runner with the Functions host's settlement rules, sends a sample incident request and prints
the events as they arrive. It lives with the emulators because it needs them (they are not deployed); it is a
client of the service like any other, so it uses the service's command line for the plan and the events.

Run: ``python -m emulators.demo [--drives N] [--artifacts N]`` (``bash scripts/demo`` installs everything first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("BackupRestore-Restore.ReadWrite.All", "BackupRestore-Search.Read.All",
         "BackupRestore-Configuration.Read.All")
#: On SIGTERM or Ctrl-C, how long the app's invocations in flight may run on before they are cancelled.
STOP_TIMEOUT_SECONDS = 1.0


class _Interrupt:
    """SIGINT and SIGTERM cancel the demo, once; its clean-up then stops every local service (Azurite too,
    which is a child process) before the demo exits with 128 + the signal number."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.cleaning_up = False  # set by the clean-up, which a signal then leaves alone (it is bounded)
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self._received, sig)

    def _received(self, signum: int) -> None:
        if self.signum is not None:
            return  # the clean-up is under way; a second signal must not cut it short
        self.signum = signum
        print(f"\n== {signal.Signals(signum).name}: stopping the local services", flush=True)
        if self._task is not None and not self.cleaning_up:
            self._task.cancel()

    def remove(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.remove_signal_handler(sig)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


async def _wait_for(seen: list[dict[str, Any]], event_type: str, subject: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(e["type"] == event_type and e["subject"] == subject for e in seen):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {event_type} for {subject} within {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def run_demo(drives: int = 120, artifacts: int = 120, serve: bool = False) -> int:
    try:
        from azure.servicebus import ServiceBusMessage
        from azure.servicebus.aio import ServiceBusClient

        from emulators.azurite import start_azurite
        from emulators.functions_host import FunctionsHost
        from emulators.graph import GraphEmulator, make_token
        from emulators.servicebus import ServiceBusStandIn
    except ImportError as exc:
        print(f"the demo needs the repository checkout with its dev requirements ({exc})", file=sys.stderr)
        return 2

    from orchestrators.cli.main import cmd_plan, follow_events

    interrupt = _Interrupt()
    sys.path.insert(0, str(ROOT))
    _say("starting local services: Graph emulator, Service Bus stand-in, Azurite")
    # The emulated clock runs 3,600 times faster than the wall clock: a session of 50 OneDrives takes 3 s
    # instead of the 3 hours Microsoft publishes (the emulator's default timing).
    graph = GraphEmulator(seed=4711, drives=max(drives, artifacts + 10), clock_scale=3600.0).start()
    bus = ServiceBusStandIn(config=str(ROOT / "emulators" / "servicebus" / "Config.json")).start()
    azurite = start_azurite()
    print(f"   Graph emulator   {graph.base_url}")
    print(f"   Service Bus      127.0.0.1:{bus.port} (AMQP stand-in)")
    print(f"   Azurite tables   127.0.0.1:{azurite.port}")
    settings = {
        "ServiceBusConnection": bus.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "GRAPH_BASE_URL": graph.base_url,
        "GRAPH_ACCESS_TOKEN": make_token(ROLES, lifetime=4 * 3600),
        "RESTORE_REQUESTS_QUEUE": "restore-requests",
        "BROWSE_REQUESTS_QUEUE": "browse-requests",
        "ACTIVATION_REQUESTS_QUEUE": "activation-requests",
        "RESTORE_EVENTS_TOPIC": "restore-events",
        "LEDGER_TABLE": "demoledger",
    }
    os.environ.update(settings)
    # The HTTP functions (status, dashboard) on 7071 like `func start`, or a free port when 7071 is taken.
    host = FunctionsHost("function_app", settings=settings, host_json=str(ROOT / "host.json"),
                         stop_timeout=STOP_TIMEOUT_SECONDS, http_port=7071 if _port_free(7071) else 0)
    seen: list[dict[str, Any]] = []
    follower: asyncio.Task[Any] | None = None
    try:
        await host.start()
        follower = asyncio.create_task(follow_events("all", seen=seen))
        _say("function app running under the host runner: " + ", ".join(sorted(host.triggers)))
        dashboard = f"{host.http_url}/dashboard?code={host.http_key}" if host.http_url else None
        if dashboard:
            print(f"   dashboard: {dashboard}", flush=True)

        samples = graph.admin.samples(artifacts + 2)
        points = [p["id"] for p in samples["restorePoints"]][:artifacts]
        expired = samples["expiredRestorePoints"][0]["id"]
        request: dict[str, Any] = {
            "requestId": f"inc-4711-{uuid.uuid4().hex[:6]}",
            "incidentId": "INC-4711",
            "requestedBy": "demo",
            "reason": "mass encryption detected on OneDrive",
            "activate": True,
            "destinationType": "new",
            "artifacts": [{"restorePointId": p} for p in points[: artifacts // 2]]
            + [{"restorePointId": expired}]
            + [{"restorePointId": p, "destinationType": "inPlace"} for p in points[artifacts // 2:]],
        }
        path = Path(tempfile.mkdtemp(prefix="demo-")) / "incident.json"
        path.write_text(json.dumps(request, indent=2))
        _say(f"the incident request ({len(request['artifacts'])} restore points, one of them expired, "
             "activate: true), planned locally")
        cmd_plan(type("Args", (), {"file": str(path)})())

        async with ServiceBusClient.from_connection_string(bus.connection_string) as client, \
                client.get_queue_sender("restore-requests") as sender:
            _say("sending it to the restore-requests queue; events as they arrive:")
            await sender.send_messages(ServiceBusMessage(path.read_bytes(), message_id=str(uuid.uuid4())))
            await _wait_for(seen, "restore.request.accepted", str(request["requestId"]))
            await host.wait_idle(timeout=60)

            _say("the session tracker (a timer, every minute in Azure; here every 2 s) follows them to the end")
            deadline = time.monotonic() + 120
            while not any(e["type"] == "restore.request.completed" for e in seen):
                if time.monotonic() > deadline:
                    raise TimeoutError("the sessions did not finish")
                await asyncio.sleep(2.0)
                await host.run_timer("session_tracker")
                await asyncio.sleep(0.5)

            _say("the same request again (a redelivery or a retrying playbook): nothing new is created")
            before = len(seen)
            await sender.send_messages(ServiceBusMessage(path.read_bytes(), message_id=str(uuid.uuid4())))
            await host.wait_idle(timeout=60)
            await asyncio.sleep(1.0)
            print(f"   new events: {len(seen) - before} (re-published with the same ids; the topic dropped them)")

            _say("a malformed request: rejected with the reason and the original body")
            await sender.send_messages(ServiceBusMessage(b'{"requestId": "inc-4711-typo", "artifact": []}',
                                                         message_id="demo-bad-1"))
            await _wait_for(seen, "restore.request.rejected", "inc-4711-typo")

        state = graph.admin.state(sessions=False)
        _say("done")
        print(f"   restore sessions in Graph: {state['sessionCount']} ({state['statusCounts']})")
        print(f"   events received: {len(seen)}; handler invocations: {len(host.invocations)}")
        print("   next: `python -m orchestrators events` follows the topic; see README.md for func start and Azure")
        if serve and dashboard:
            print(f"\n   the dashboard stays up at {dashboard}\n   (Ctrl-C stops the demo and the local services)",
                  flush=True)
            await asyncio.Event().wait()  # until a signal cancels the demo
        return 0
    except asyncio.CancelledError:
        if interrupt.signum is None:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the clean-up below runs as usual
        return 128 + interrupt.signum
    finally:
        interrupt.cleaning_up = True
        try:
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)
            await host.stop()
            from orchestrators.app import runtime

            await runtime.shutdown()
        finally:
            bus.stop()
            graph.stop()
            azurite.stop()
            interrupt.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drives", type=int, default=120, help="OneDrives in the emulated tenant")
    parser.add_argument("--artifacts", type=int, default=120, help="restore points in the sample request")
    parser.add_argument("--no-serve", action="store_true",
                        help="exit when the story is told (the default when output is not a terminal); otherwise "
                             "the dashboard is served until Ctrl-C")
    args = parser.parse_args(argv)
    serve = not args.no_serve and sys.stdout.isatty()
    return asyncio.run(run_demo(drives=args.drives, artifacts=args.artifacts, serve=serve))


if __name__ == "__main__":
    sys.exit(main())
