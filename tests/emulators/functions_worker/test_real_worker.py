"""The host runner's real-worker mode: the sample app indexed, loaded and invoked through azure-functions-runtime.

Needs the worker library (Python 3.13+, ``.venv313``); skipped elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import uuid

import pytest

pytest.importorskip(
    "azure_functions_runtime",
    reason="the worker library azure-functions-runtime needs Python 3.13+: run these with .venv313/bin/python",
)

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage as ConvertedMessage
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

from emulators.functions_host import FunctionsHost
from emulators.functions_worker import InvocationFailed, LanguageWorker, WorkerError
from emulators.functions_worker.host_data import system_entry
from emulators.functions_worker.rpc import ParameterBinding, StatusResult, TypedData
from tests.emulators.functions_worker.conftest import SAMPLE_APP


def _host(settings: dict[str, str], **kwargs) -> FunctionsHost:
    return FunctionsHost(SAMPLE_APP, settings=settings, host_json={}, poll_interval=0.2, worker="real", **kwargs)


async def _send(conn: str, queue: str, *messages: ServiceBusMessage) -> None:
    async with ServiceBusClient.from_connection_string(conn) as client, client.get_queue_sender(queue) as sender:
        await sender.send_messages(list(messages))


async def test_the_functions_come_from_the_workers_own_indexing(settings) -> None:
    async with _host(settings) as host:
        assert host.module is not None and host.module.__name__ == "worker_sample_app"
        assert set(host.triggers) == {"inspect", "raw_bytes", "tick"}
        assert host.triggers["inspect"].entity == "sample-q"  # %SAMPLE_QUEUE% resolved from the app settings
        assert host.triggers["raw_bytes"].binding["dataType"] == "BINARY"
        assert host.triggers["tick"].kind == "timer"
        with pytest.raises(RuntimeError, match="runs in the language worker"):
            host.triggers["inspect"].user_function()


async def test_a_message_reaches_the_function_through_the_librarys_converters(sb, settings) -> None:
    sent_at = dt.datetime.now(dt.UTC)
    async with _host(settings) as host:
        await _send(
            sb.connection_string,
            "sample-q",
            ServiceBusMessage(
                b'{"requestId": "r-1"}',
                message_id="m-1",
                correlation_id="INC-4711",
                content_type="application/json",
                subject="restore",
                application_properties={"restoreAttempt": 2, "restoreRequestId": "r-1", "urgent": True},
            ),
        )
        await host.wait_idle(timeout=20)
        [seen] = host.module.SEEN
    received_by = dt.datetime.now(dt.UTC)

    # Built by azure.functions' converter from what the host sent (the full class, not func.ServiceBusMessage's base).
    assert type(seen["message"]) is ConvertedMessage and isinstance(seen["message"], func.ServiceBusMessage)
    assert seen["body"] == b'{"requestId": "r-1"}'
    assert seen["message_id"] == "m-1"
    assert seen["delivery_count"] == 1
    assert seen["correlation_id"] == "INC-4711" and seen["content_type"] == "application/json"
    assert seen["subject"] == seen["label"] == "restore"
    assert seen["application_properties"] == {"restoreAttempt": 2, "restoreRequestId": "r-1", "urgent": True}
    assert seen["user_properties"] == seen["application_properties"]
    # The host sends EnqueuedTimeUtc without a zone, so the library gives a naive datetime (UTC by name).
    enqueued = seen["enqueued_time_utc"]
    assert isinstance(enqueued, dt.datetime) and enqueued.tzinfo is None
    assert sent_at - dt.timedelta(seconds=1) <= enqueued.replace(tzinfo=dt.UTC) <= received_by
    expires = seen["expires_at_utc"]
    assert expires.tzinfo is None and abs((expires - enqueued) - dt.timedelta(hours=1)) < dt.timedelta(seconds=1)
    assert isinstance(seen["sequence_number"], int) and seen["sequence_number"] >= 1
    assert uuid.UUID(seen["lock_token"])
    # What the extension does not put in the binding data is None, as under the real host.
    assert seen["locked_until"] is None and seen["to"] is None and seen["session_id"] is None
    assert seen["metadata"]["sys"]["MethodName"] == "inspect"
    [invocation] = host.invocations
    assert invocation.outcome == "completed" and invocation.delivery_count == 1


async def test_an_exception_abandons_the_message_until_it_is_dead_lettered(sb, settings) -> None:
    async with _host(settings) as host:
        await _send(sb.connection_string, "sample-q", ServiceBusMessage(b"fail", message_id="poison"))
        await host.wait_idle(timeout=30)
        seen = [s["delivery_count"] for s in host.module.SEEN]
    assert seen == [1, 2, 3]
    assert [i.outcome for i in host.invocations] == ["abandoned"] * 3
    assert all("RuntimeError: failed on purpose" in (i.exception or "") for i in host.invocations)
    [dead] = sb.messages("sample-q/$deadletterqueue")
    assert dead["message_id"] == "poison" and dead["dead_letter_reason"] == "MaxDeliveryCountExceeded"


async def test_a_binary_binding_gets_the_bytes_and_a_string_binding_replacement_characters(sb, settings) -> None:
    async with _host(settings) as host:
        await _send(sb.connection_string, "sample-bin", ServiceBusMessage(b"\xff\xfe\x00bin", message_id="b-1"))
        await _send(sb.connection_string, "sample-q", ServiceBusMessage(b"\xff\xfe\x00bin", message_id="s-1"))
        await host.wait_idle(timeout=20)
        by_function = {s["function"]: s for s in host.module.SEEN}
    assert by_function["raw_bytes"]["body"] == b"\xff\xfe\x00bin"
    assert by_function["inspect"]["body"] == "\ufffd\ufffd\x00bin".encode()
    # The sync function ran on the library's thread pool, with the context it builds from the request.
    raw = by_function["raw_bytes"]
    assert raw["thread"] != threading.main_thread().name
    assert raw["function_name"] == "raw_bytes" and uuid.UUID(raw["invocation_id"])
    assert {i.outcome for i in host.invocations} == {"completed"}


async def test_the_timer_function_gets_a_timer_request(settings, monkeypatch) -> None:
    async with _host(settings) as host:
        first = await host.run_timer("tick")
        await host.run_timer("tick", past_due=True)
        first_timer, second_timer = host.module.TIMERS
        monkeypatch.setenv("SAMPLE_TICK_FAILS", "1")
        failed = await host.run_timer("tick", raise_errors=False)
        with pytest.raises(InvocationFailed, match="tick failed on purpose"):
            await host.run_timer("tick")
    assert first.outcome == "completed" and failed.outcome == "failed"
    assert isinstance(first_timer, func.TimerRequest)
    assert first_timer.past_due is False and second_timer.past_due is True
    assert first_timer.schedule == {"AdjustForDST": True}
    status = first_timer.schedule_status
    assert set(status) == {"Last", "Next", "LastUpdated"} and status["Last"] == "0001-01-01T00:00:00"
    next_run = dt.datetime.fromisoformat(status["Next"])
    assert next_run.minute % 5 == 0 and next_run.second == 0
    assert second_timer.schedule_status["Last"] != "0001-01-01T00:00:00"  # the first run is now the last one


async def test_the_library_converts_metadata_typed_as_the_host_sends_it(settings, monkeypatch) -> None:
    """Straight through the worker: JSON numbers, a zone-less time and a JSON object become Python values."""
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    worker = LanguageWorker(SAMPLE_APP.parent, SAMPLE_APP.name)
    metadata = {m.name: m for m in await worker.start()}
    try:
        assert metadata["inspect"].properties == {"worker_indexed": "True"}
        [trigger] = [json.loads(raw) for raw in metadata["inspect"].raw_bindings]
        assert trigger["type"] == "serviceBusTrigger" and trigger["queueName"] == "%SAMPLE_QUEUE%"
        response = await worker.invoke(
            "inspect",
            [ParameterBinding(name="msg", data=TypedData(string="hello"))],
            {
                "DeliveryCount": TypedData(json="3"),
                "EnqueuedTimeUtc": TypedData(json='"2026-11-20T03:00:05.1234567"'),
                "ApplicationProperties": TypedData(json='{"restoreAttempt":4}'),
                "UserProperties": TypedData(json='{"restoreAttempt":4}'),
                "MessageId": TypedData(string="m-9"),
                "sys": system_entry("inspect"),
            },
        )
        assert response.result.status == StatusResult.Success
        [seen] = sys.modules["worker_sample_app"].SEEN
        assert seen["delivery_count"] == 3 and seen["message_id"] == "m-9"
        assert seen["enqueued_time_utc"] == dt.datetime(2026, 11, 20, 3, 0, 5, 123456)
        assert seen["application_properties"] == {"restoreAttempt": 4}
        # Without UserProperties the library cannot tell a single message from a batch: the decode fails.
        broken = await worker.invoke("inspect", [ParameterBinding(name="msg", data=TypedData(string="x"))], {})
        assert broken.result.status == StatusResult.Failure
        assert "unable to decode incoming TypedData" in broken.result.exception.message
    finally:
        worker.stop()


async def test_one_worker_per_process(settings) -> None:
    async with _host(settings):
        with pytest.raises(RuntimeError, match="already running"):
            await _host(settings).start()
    async with _host(settings) as again:  # the first one stopped: a new worker may start
        assert "inspect" in again.triggers



async def test_an_app_that_fails_to_load_fails_the_host_start_with_the_workers_error(settings, monkeypatch) -> None:
    monkeypatch.setenv("SAMPLE_IMPORT_FAILS", "1")
    host = _host(settings)
    with pytest.raises(WorkerError, match="WorkerInitRequest failed: RuntimeError: SAMPLE_SETTING is not set"):
        await host.start()
    monkeypatch.delenv("SAMPLE_IMPORT_FAILS")
    async with _host(settings) as again:  # nothing left running: the next start works
        assert "inspect" in again.triggers


METADATA_NAMED_BODY = json.dumps({"requestId": "r-meta", "DeliveryCount": "x", "UserProperties": "x",
                                  "ApplicationProperties": {"restoreAttempt": 99}, "MessageId": "forged"}).encode()


async def test_a_json_body_bound_as_a_string_overwrites_the_trigger_metadata(sb, settings) -> None:
    """The host merges a string body's top-level JSON properties into the trigger metadata: a body that names
    them breaks the invocation before the function runs, or replaces what the host says about the message."""
    async with _host(settings) as host:
        await _send(sb.connection_string, "sample-q", ServiceBusMessage(METADATA_NAMED_BODY, message_id="m-1"))
        await _send(sb.connection_string, "sample-q", ServiceBusMessage(
            json.dumps({"MessageId": "forged", "ApplicationProperties": {"restoreAttempt": 99}}).encode(),
            message_id="m-2", application_properties={"k": "v"}))
        await host.wait_idle(timeout=30)
    by_id = {s["message_id"]: s for s in host.module.SEEN}
    assert "m-1" not in by_id and not any(s["body"] == METADATA_NAMED_BODY for s in host.module.SEEN)
    first = [i for i in host.invocations if i.message_id == "m-1"]
    assert first and {i.outcome for i in first} == {"abandoned"}  # the library failed on "DeliveryCount": "x"
    forged = by_id["forged"]  # the body's MessageId replaced the message's own
    assert forged["application_properties"] == {"restoreAttempt": 99}


async def test_a_json_body_bound_as_bytes_arrives_untouched_with_the_hosts_metadata(sb, settings) -> None:
    async with _host(settings) as host:
        await _send(sb.connection_string, "sample-bin", ServiceBusMessage(
            METADATA_NAMED_BODY, message_id="b-meta", application_properties={"k": "v"}))
        await host.wait_idle(timeout=20)
    [seen] = host.module.SEEN
    assert seen["body"] == METADATA_NAMED_BODY
    assert (seen["message_id"], seen["delivery_count"]) == ("b-meta", 1)
    assert seen["application_properties"] == seen["user_properties"] == {"k": "v"}
    assert {i.outcome for i in host.invocations} == {"completed"}
