"""E2E_SERVICEBUS=docker without a usable emulator stops the run at once, saying why and what to start.

Docker cannot run on the machines this suite is developed on, so what is shown here is the failure path: a real
pytest run of one scenario with the switch on, and the checks behind it against real listeners.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulators.servicebus import ServiceBusStandIn
from tests.e2e import servicebus_backend

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "tests/e2e/test_restore_requests.py::test_one_artifact_creates_one_draft_session_and_reports_it"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connection(port: int) -> str:
    return servicebus_backend.EMULATOR_CONNECTION.replace("sb://localhost;", f"sb://127.0.0.1:{port};")


def _run_suite(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", SCENARIO, "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                         env={**os.environ, "E2E_SERVICEBUS": "docker", **env}, capture_output=True, text=True,
                         timeout=120, check=False)
    return run, time.monotonic() - started


def test_without_docker_the_run_stops_at_once_and_says_how_to_start_the_emulator() -> None:
    port = _closed_port()
    run, elapsed = _run_suite({"PATH": str(Path(sys.executable).parent),  # no docker command on it
                               "E2E_SERVICEBUS_CONNECTION": _connection(port)})
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, out[-3000:]
    assert "Docker is not available" in out
    assert f"not reachable on 127.0.0.1:{port}" in out
    assert "docker compose up -d" in out
    assert "passed" not in out and "failed" not in out  # the scenario never ran
    assert elapsed < 60  # collection and start-up only: no connection timeouts


def test_with_docker_but_no_emulator_the_run_stops_at_once() -> None:
    # Wherever this runs, nothing listens on that port: the message names it, and the engine if it is down.
    port = _closed_port()
    run, elapsed = _run_suite({"E2E_SERVICEBUS_CONNECTION": _connection(port)})
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, out[-3000:]
    assert f"the Service Bus emulator is not reachable on 127.0.0.1:{port}" in out
    assert "docker compose up -d" in out
    assert "passed" not in out and "failed" not in out
    assert elapsed < 60


def test_something_else_on_the_amqp_port_is_not_taken_for_the_emulator() -> None:
    # The stand-in answers AMQP on its port, but has no emulator health endpoint: not the emulator, or not ready.
    with ServiceBusStandIn() as standin:
        health = f"http://127.0.0.1:{_closed_port()}/health"
        problem = servicebus_backend.emulator_problem(standin.connection_string, health)
    assert problem is not None
    assert f"127.0.0.1:{standin.port} accepts connections" in problem and health in problem
    assert "docker compose up -d" in problem


def test_the_emulator_connection_string_is_the_documented_one() -> None:
    assert servicebus_backend.EMULATOR_CONNECTION == (
        "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;"
        "UseDevelopmentEmulator=true;")
    assert servicebus_backend.amqp_endpoint(servicebus_backend.EMULATOR_CONNECTION) == ("localhost", 5672)
    assert servicebus_backend.amqp_endpoint(_connection(5674)) == ("127.0.0.1", 5674)


async def test_the_purge_between_docker_scenarios_empties_every_entity_through_the_sdk() -> None:
    import datetime as dt

    from azure.servicebus import ServiceBusMessage
    from azure.servicebus.aio import ServiceBusClient

    with ServiceBusStandIn(config=str(servicebus_backend.CONFIG)) as standin:
        async with ServiceBusClient.from_connection_string(standin.connection_string) as client:
            async with client.get_queue_sender("restore-requests") as sender:
                await sender.send_messages([ServiceBusMessage(f"m{i}") for i in range(5)])
                await sender.schedule_messages(ServiceBusMessage("later"),
                                               dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
            async with client.get_topic_sender("restore-events") as sender:
                await sender.send_messages([ServiceBusMessage("e", message_id=f"e{i}") for i in range(3)])
            async with client.get_queue_receiver("restore-requests") as receiver:
                first, second = await receiver.receive_messages(max_message_count=2, max_wait_time=5)
                await receiver.defer_message(first)
                await receiver.dead_letter_message(second, reason="test")
            async with client.get_subscription_receiver("restore-events", "all") as receiver:
                [event] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
                await receiver.dead_letter_message(event, reason="test")
        before = standin.snapshot()
        assert before["restore-requests"]["scheduled"] == 1 and before["restore-requests"]["deferred"] == 1
        removed = await servicebus_backend.purge(standin.connection_string)
        after = standin.snapshot()
    assert removed == 5 + 1 + 3 + 3  # queue: 3 active, 1 deferred, 1 dead-lettered, 1 scheduled; subs: 3 + 3
    assert all(not any(counts.values()) for counts in after.values()), after


async def test_a_broker_that_remembers_the_last_runs_ids_is_told_apart_from_a_fresh_one() -> None:
    # The stand-in honours the topic's duplicate detection like the emulator: a second run within the window
    # would have its events dropped, and the probe says so before any scenario runs.
    with ServiceBusStandIn(config=str(servicebus_backend.CONFIG)) as standin:
        assert not await servicebus_backend.remembers_an_earlier_run(standin.connection_string)
        assert await servicebus_backend.remembers_an_earlier_run(standin.connection_string)
        assert not any(standin.snapshot()["restore-events/Subscriptions/all"].values())
