"""Every stand-in process stops within a few seconds of SIGTERM or Ctrl-C (SIGINT), whatever it is doing.

Each test starts the process as a child in a session of its own, on an ephemeral port, loads it (SDK senders and
receivers busy or waiting, HTTP requests or function invocations in flight), sends the signal to its PID alone,
and measures how long it takes to exit and with which code. Teardown kills whatever is left of the child's
process group (the demo's Azurite included), by that group's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

ROOT = Path(__file__).resolve().parents[2]
#: What "within a few seconds" means here. The processes take 0.1 to 2.5 s; the rest is room for a busy machine.
FEW_SECONDS = 5.0
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


class Child:
    """A process under test: stdout read line by line in the background, stderr kept in a file."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            start_new_session=True,  # its own process group: teardown can end its children too
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, name=f"stdout:{self.proc.pid}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], Any], timeout: float = 60.0) -> Any:
        """Wait until ``predicate(lines so far)`` is truthy and return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (found := predicate(self.lines)):
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._changed.wait(0.1)):
                    raise AssertionError(f"not seen within {timeout:.0f} s (exit code {self.proc.poll()}); "
                                         f"stdout: {self.lines[-10:]}; stderr: {self.stderr()[-2000:]}")
                self._changed.wait(min(left, 0.5))
            return found

    def line_matching(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        regex = re.compile(pattern)
        return self.wait_for(lambda lines: next((m for line in lines if (m := regex.search(line))), None), timeout)

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def stop_with(self, sig: int, timeout: float = 30.0) -> tuple[int | None, float]:
        """Send ``sig`` to the child's PID; return its exit code (None if still running) and the seconds it took."""
        started = time.monotonic()
        os.kill(self.proc.pid, sig)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(*args: str) -> Child:
        child = Child(list(args), tmp_path / f"child-{len(children)}.stderr")
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()


class BusLoad:
    """Busy SDK links against a Service Bus, from an event loop of their own: senders sending batches,
    receivers completing and abandoning, and receivers waiting on an empty queue."""

    def __init__(self, connection: str) -> None:
        self.connection = connection
        self.sent = 0
        self.received = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bus-load", daemon=True)
        self._thread.start()
        self._jobs: list[Future[None]] = []

    def start(self, *, senders: int = 3, receivers: int = 3, waiting: int = 2, queue: str = "restore-requests",
              idle_queue: str = "activation-requests") -> BusLoad:
        jobs = [self._send(queue) for _ in range(senders)] + [self._receive(queue) for _ in range(receivers)]
        jobs += [self._wait(idle_queue) for _ in range(waiting)]
        self._jobs = [asyncio.run_coroutine_threadsafe(job, self._loop) for job in jobs]
        return self

    async def _send(self, queue: str) -> None:
        async with ServiceBusClient.from_connection_string(self.connection) as client, \
                client.get_queue_sender(queue) as sender:
            while True:
                await sender.send_messages([ServiceBusMessage(b"x" * 2000) for _ in range(20)])
                self.sent += 20

    async def _receive(self, queue: str) -> None:
        async with ServiceBusClient.from_connection_string(self.connection) as client, \
                client.get_queue_receiver(queue, prefetch_count=20) as receiver:
            while True:
                for i, message in enumerate(await receiver.receive_messages(max_message_count=20, max_wait_time=1)):
                    await (receiver.complete_message(message) if i % 2 else receiver.abandon_message(message))
                    self.received += 1

    async def _wait(self, queue: str) -> None:
        async with ServiceBusClient.from_connection_string(self.connection) as client, \
                client.get_queue_receiver(queue) as receiver:
            while True:
                await receiver.receive_messages(max_wait_time=30)

    def wait_busy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < 200 or self.received < 40:
            failed = [job.exception() for job in self._jobs if job.done()]
            assert not failed and time.monotonic() < deadline, f"load did not get going: {failed}"
            time.sleep(0.05)

    def close(self) -> None:
        for job in self._jobs:
            job.cancel()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


@pytest.fixture
def bus_load() -> Iterator[Callable[[str], BusLoad]]:
    loads: list[BusLoad] = []

    def start(connection: str) -> BusLoad:
        loads.append(BusLoad(connection))
        return loads[-1]

    yield start
    for load in loads:
        load.close()


def _assert_clean(child: Child, code: int | None, elapsed: float, expected_code: int, what: str) -> None:
    print(f"{what}: exit code {code} after {elapsed:.2f} s")
    assert code is not None, f"{what}: still running {elapsed:.1f} s after the signal; stderr: {child.stderr()[-3000:]}"
    assert code == expected_code, f"{what}: exit code {code}; stderr: {child.stderr()[-3000:]}"
    assert elapsed < FEW_SECONDS, f"{what}: took {elapsed:.2f} s to exit"
    assert "Traceback" not in child.stderr(), child.stderr()[-3000:]


# --------------------------------------------------------------------------- python -m emulators.servicebus


def _start_standin(spawn: Callable[..., Child]) -> tuple[Child, str]:
    child = spawn("-m", "emulators.servicebus", "--port", "0")
    connection = child.line_matching(r"^(Endpoint=sb://127\.0\.0\.1:\d+;.*)$", timeout=30)[1]
    return child, connection


@pytest.mark.parametrize("sig", SIGNALS)
def test_the_service_bus_standin_stops_with_busy_links(spawn, bus_load, sig) -> None:
    child, connection = _start_standin(spawn)
    bus_load(connection).start().wait_busy()
    code, elapsed = child.stop_with(sig)
    _assert_clean(child, code, elapsed, 0, f"servicebus standin, busy links, {sig.name}")
    assert not child.group_alive()


def test_the_service_bus_standin_stops_when_signals_come_in_a_burst(spawn, bus_load) -> None:
    # Many signals at once are what made the kernel hand them to the reactor thread most often: the main thread,
    # asleep in an untimed wait, was never woken, and the process lived on until SIGKILL.
    child, connection = _start_standin(spawn)
    bus_load(connection).start(senders=1, receivers=1, waiting=1).wait_busy()
    started = time.monotonic()
    for _ in range(100):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.proc.pid, signal.SIGTERM)
            os.kill(child.proc.pid, signal.SIGINT)
    try:
        code: int | None = child.proc.wait(30)
    except subprocess.TimeoutExpired:
        code = None
    _assert_clean(child, code, time.monotonic() - started, 0, "servicebus standin, 200 signals")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread signal masks from /proc")
def test_only_the_service_bus_standins_main_thread_can_take_a_stop_signal(spawn) -> None:
    child, _connection = _start_standin(spawn)
    masks = {}
    for status in Path(f"/proc/{child.proc.pid}/task").glob("*/status"):
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        masks[status.parent.name] = int(fields["SigBlk"].strip(), 16)
    # The main thread takes the signals in sigwait (which unblocks them while it waits); any other thread that
    # could take one would only flag it for a main thread that never looks.
    others = {tid: mask for tid, mask in masks.items() if tid != str(child.proc.pid)}
    assert others, masks  # the reactor thread at least
    for sig in (signal.SIGINT, signal.SIGTERM):
        bit = 1 << (sig - 1)
        assert all(mask & bit for mask in others.values()), f"{sig.name} can land on another thread: {masks}"
    code, elapsed = child.stop_with(signal.SIGTERM)
    _assert_clean(child, code, elapsed, 0, "servicebus standin, idle, SIGTERM")


# --------------------------------------------------------------------------- python -m emulators.graph


@pytest.mark.parametrize("sig", SIGNALS)
def test_the_graph_emulator_stops_with_requests_in_flight(spawn, tmp_path, sig) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"rules": [{"name": "slow", "path": "*", "latencyMs": 60_000}]}))
    child = spawn("-m", "emulators.graph", "--port", "0", "--drives", "10", "--faults", str(faults))
    deadline = time.monotonic() + 30
    while not (banner := re.search(r"Graph emulator on (http://127\.0\.0\.1:\d+)/v1\.0", child.stderr())):
        assert time.monotonic() < deadline and child.proc.poll() is None, child.stderr()
        time.sleep(0.05)
    root = banner[1]
    while True:
        try:
            if httpx.get(f"{root}/_emulator/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the Graph emulator did not answer"
        time.sleep(0.05)
    outcomes: list[str] = []

    def slow_request() -> None:  # held for a minute by the latency fault, unless the emulator lets go
        try:
            httpx.get(f"{root}/v1.0/solutions/backupRestore/restoreSessions", timeout=90)
            outcomes.append("answered")
        except httpx.HTTPError as exc:
            outcomes.append(type(exc).__name__)

    requests = [threading.Thread(target=slow_request, daemon=True) for _ in range(8)]
    for request in requests:
        request.start()
    time.sleep(0.5)
    assert not outcomes, "the latency fault did not hold the requests"
    code, elapsed = child.stop_with(sig)
    _assert_clean(child, code, elapsed, 0, f"graph emulator, 8 requests in flight, {sig.name}")
    for request in requests:
        request.join(10)
    assert len(outcomes) == 8, outcomes  # none of them left hanging for the minute


# --------------------------------------------------------------------------- python -m emulators.functions_host


@pytest.mark.parametrize("sig", SIGNALS)
def test_the_host_runner_stops_with_invocations_in_flight(spawn, bus_load, tmp_path, sig) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {"ASYNC_QUEUE": "restore-requests", "SYNC_QUEUE": "browse-requests"}}))
    child = spawn("-m", "emulators.functions_host", "--app", str(ROOT / "tests" / "emulators" / "shutdown_app.py"),
                  "--settings", str(settings), "--host-json", str(ROOT / "host.json"), "--standin",
                  "--standin-port", "0", "--no-timers")
    connection = child.line_matching(r"^Service Bus stand-in: (Endpoint=sb://\S+)$", timeout=30)[1]
    child.line_matching(r"^Functions: ", timeout=60)

    async def send() -> None:
        async with ServiceBusClient.from_connection_string(connection) as client:
            for queue, count in (("restore-requests", 6), ("browse-requests", 3)):
                async with client.get_queue_sender(queue) as sender:
                    await sender.send_messages([ServiceBusMessage(b"sleep:120") for _ in range(count)])

    asyncio.run(send())
    # Async invocations awaiting, sync ones blocked in their threads, receive loops polling, plus idle receivers.
    child.wait_for(lambda lines: sum("invoked slow_async" in line for line in lines) >= 6
                   and sum("invoked slow_sync" in line for line in lines) >= 3)
    bus_load(connection).start(senders=0, receivers=0, waiting=2)
    time.sleep(0.5)
    code, elapsed = child.stop_with(sig)
    _assert_clean(child, code, elapsed, 0, f"host runner, 9 invocations in flight, {sig.name}")
    assert not child.group_alive()


# --------------------------------------------------------------------------- python -m emulators.demo


@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", SIGNALS)
def test_the_demo_stops_mid_run_and_takes_azurite_with_it(spawn, sig) -> None:
    child = spawn("-m", "emulators.demo")
    child.line_matching(r"sending it to the restore-requests queue", timeout=180)
    time.sleep(0.5)  # the request is being handled: Graph calls, ledger writes, events, the tracker to come
    code, elapsed = child.stop_with(sig)
    _assert_clean(child, code, elapsed, 128 + sig, f"demo, request in flight, {sig.name}")
    assert any(f"{sig.name}: stopping the local services" in line for line in child.lines)
    assert not child.group_alive(), "a process of the demo (Azurite?) outlived it"
