"""Azurite's Table service as a local service: a real process on a free port, stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The storage emulator's well-known account, ``devstoreaccount1``, and its key: public, documented by Microsoft for
#: Azurite and the storage emulator (not a secret). Written here, not taken from the service, so that the emulator
#: follows Azurite's documentation rather than the code it serves.
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite-table"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-table")
    if not found:
        raise RuntimeError("azurite-table not found: run `npm install` in the repository root")
    return found


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int
    workdir: str

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT_NAME};"
            f"AccountKey={AZURITE_ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT_NAME};"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_azurite(timeout: float = 30.0) -> Azurite:
    for _ in range(5):
        port = free_port()
        workdir = tempfile.mkdtemp(prefix="azurite-")
        process = subprocess.Popen(
            [_azurite_binary(), "--tableHost", "127.0.0.1", "--tablePort", str(port), "--inMemoryPersistence",
             "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return Azurite(process, port, workdir)
            except OSError:
                time.sleep(0.1)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError("Azurite did not start")
