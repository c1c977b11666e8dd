"""Config parsing, the shared Config.json, docker-compose and the stand-in's CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators.servicebus import DEFAULT_CONFIG, load_config, parse_duration

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1M", 60),
        ("PT20S", 20),
        ("PT10M", 600),
        ("PT1H", 3600),
        ("P1D", 86400),
        ("PT0.5S", 0.5),
        ("00:01:00", 60),
        ("1.00:00:00", 86400),
        (5, 5),
    ],
)
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


def test_shared_config_declares_the_contract_entities() -> None:
    [ns] = load_config(DEFAULT_CONFIG)
    queues = {q.name: q for q in ns.queues}
    assert set(queues) == {"restore-requests", "browse-requests", "activation-requests"}
    assert all(q.lock_duration == 60 and q.max_delivery_count == 10 for q in queues.values())
    [topic] = ns.topics
    assert topic.entity.name == "restore-events"
    assert topic.entity.requires_duplicate_detection
    assert topic.entity.duplicate_detection_window == 600
    assert {s.name for s in topic.subscriptions} >= {"all"}


def test_docker_compose_mounts_the_shared_config() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "mcr.microsoft.com/azure-messaging/servicebus-emulator" in compose
    assert "./emulators/servicebus/Config.json:/ServiceBus_Emulator/ConfigFiles/Config.json" in compose


def test_cli_serves_the_sdk() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.servicebus", "--port", "0", "--config", str(DEFAULT_CONFIG)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        conn = proc.stdout.readline().strip()
        assert conn.startswith("Endpoint=sb://127.0.0.1:") and "UseDevelopmentEmulator=true" in conn
        with ServiceBusClient.from_connection_string(conn) as client:
            with client.get_queue_sender("restore-requests", keep_alive=None) as sender:
                sender.send_messages(ServiceBusMessage("{}", message_id="cli-1"))
            with client.get_queue_receiver("restore-requests") as receiver:
                [msg] = receiver.receive_messages(max_wait_time=3)
                assert msg.message_id == "cli-1"
                receiver.complete_message(msg)
    finally:
        proc.terminate()
        start = time.monotonic()
        proc.wait(timeout=10)
        assert time.monotonic() - start < 10
