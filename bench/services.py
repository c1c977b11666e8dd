"""Local services as subprocesses for benchmarks, so their CPU is not counted as ours."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from emulators.azurite import free_port, start_azurite
from emulators.graph import AdminClient, make_token

ROOT = Path(__file__).resolve().parents[1]
SERVICE_BUS_CONNECTION = (
    "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


ACTIVATING_SECONDS, SCHEDULED_SECONDS = 60, 120


def frozen_clock_graph_args(session_seconds: int) -> tuple[str, ...]:
    """Emulator options for the lifecycle benchmarks: a clock moved by hand, sessions of a given length."""
    in_progress = session_seconds - ACTIVATING_SECONDS - SCHEDULED_SECONDS
    return ("--clock-scale", "0", "--activating-seconds", str(ACTIVATING_SECONDS), "--scheduled-seconds",
            str(SCHEDULED_SECONDS), "--in-progress-seconds", str(in_progress), "--unprotected-fraction", "0")


@dataclass
class Services:
    graph_url: str
    graph: AdminClient
    service_bus_connection: str
    ledger_connection: str

    def settings_env(self, **extra: str) -> dict[str, str]:
        """The app settings that point the service at these local services (a fresh ledger table each time)."""
        return {
            "ServiceBusConnection": self.service_bus_connection,
            "AzureWebJobsStorage": self.ledger_connection,
            "GRAPH_BASE_URL": self.graph_url,
            "GRAPH_ACCESS_TOKEN": make_token(("BackupRestore-Restore.ReadWrite.All", "BackupRestore-Search.Read.All",
                                              "BackupRestore-Configuration.Read.All"), lifetime=3600),
            "LEDGER_TABLE": f"bench{uuid.uuid4().hex[:12]}",
            **extra,
        }


@contextlib.contextmanager
def local_services(drives: int, graph_args: tuple[str, ...] = ()) -> Iterator[Services]:
    graph_port, sb_port = free_port(), free_port()
    graph = subprocess.Popen(
        [sys.executable, "-m", "emulators.graph", "--port", str(graph_port), "--drives", str(drives),
         "--log-level", "WARNING", *graph_args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bus = subprocess.Popen(
        [sys.executable, "-m", "emulators.servicebus", "--port", str(sb_port), "--config",
         str(ROOT / "emulators" / "servicebus" / "Config.json")], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    azurite = start_azurite()
    try:
        _wait_port(graph_port, graph)
        _wait_port(sb_port, bus)
        yield Services(f"http://127.0.0.1:{graph_port}/v1.0", AdminClient(f"http://127.0.0.1:{graph_port}"),
                       SERVICE_BUS_CONNECTION.format(port=sb_port), azurite.connection_string)
    finally:
        _stop(graph)
        _stop(bus)
        azurite.stop()
