"""The host runner: a message sent with the SDK reaches a handler with the Functions host's settlement."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.functions.servicebus import ServiceBusMessage as FuncMessage
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

from emulators.functions_host import FunctionsHost, HostOptions
from emulators.servicebus import ServiceBusStandIn
from tests.emulators.servicebus import sample_function_app as sample

APP = "tests.emulators.servicebus.sample_function_app"


@pytest.fixture(autouse=True)
def _reset_sample() -> None:
    sample.CALLS.clear()
    sample.TIMER_CALLS.clear()
    sample.ACTIVE.update(now=0, max=0)


def _host(conn: str, **kwargs) -> FunctionsHost:
    host_json = kwargs.pop("host_json", {"extensions": {"serviceBus": {"maxConcurrentCalls": 4}}})
    return FunctionsHost(
        APP,
        settings={"ServiceBusConnection": conn, "Q": "host-q", "Q2": "host-q2"},
        host_json=host_json,
        reload=False,
        poll_interval=0.2,
        **kwargs,
    )


async def _send(conn: str, queue: str, *messages: ServiceBusMessage) -> None:
    async with ServiceBusClient.from_connection_string(conn) as client, client.get_queue_sender(queue) as sender:
        await sender.send_messages(list(messages))


async def test_message_reaches_handler_and_is_completed(conn: str, sb: ServiceBusStandIn) -> None:
    async with _host(conn) as host:
        await _send(
            conn, "host-q", ServiceBusMessage(b'{"hello": 1}', message_id="ok-1", application_properties={"type": "t"})
        )
        await _send(conn, "host-q2", ServiceBusMessage(b"sync", message_id="sync-1"))
        await host.wait_idle(timeout=20)
    assert ("handler", "ok-1", 1, b'{"hello": 1}', "host-q") in sample.CALLS
    assert ("sync_handler", "sync-1", 1, b"sync", None) in sample.CALLS
    by_id = {i.message_id: i for i in host.invocations}
    assert by_id["ok-1"].outcome == "completed"
    assert by_id["ok-1"].delivery_count == 1
    assert by_id["ok-1"].exception is None
    assert by_id["sync-1"].function == "sync_handler"
    snap = sb.snapshot()
    assert snap["host-q"]["active"] == snap["host-q"]["locked"] == 0
    assert snap["host-q"]["dead_lettered"] == 0


async def test_failing_handler_is_redelivered_then_dead_lettered(conn: str, sb: ServiceBusStandIn) -> None:
    async with _host(conn) as host:
        await _send(conn, "host-q", ServiceBusMessage(b"fail", message_id="poison-1"))
        await host.wait_idle(timeout=20)
    attempts = [i for i in host.invocations if i.message_id == "poison-1"]
    # MaxDeliveryCount is 3 for host-q: deliveries 1, 2, 3 are abandoned, then the message is dead-lettered.
    assert [i.delivery_count for i in attempts] == [1, 2, 3]
    assert {i.outcome for i in attempts} == {"abandoned"}
    assert "handler failed on purpose" in (attempts[0].exception or "")
    [dead] = sb.messages("host-q/$deadletterqueue")
    assert dead["message_id"] == "poison-1"
    assert dead["dead_letter_reason"] == "MaxDeliveryCountExceeded"


async def test_lock_is_renewed_while_the_handler_runs(conn: str, sb: ServiceBusStandIn) -> None:
    # LockDuration is PT2S: a 3.5 s handler only completes once if the runner renews the lock.
    async with _host(conn) as host:
        await _send(conn, "host-q", ServiceBusMessage(b"sleep:3.5", message_id="slow-1"))
        await host.wait_idle(timeout=20)
    attempts = [i for i in host.invocations if i.message_id == "slow-1"]
    assert [(i.delivery_count, i.outcome) for i in attempts] == [(1, "completed")]
    assert attempts[0].duration >= 3.5


async def test_concurrency_is_capped_by_max_concurrent_calls(conn: str, sb: ServiceBusStandIn) -> None:
    host_json = {"extensions": {"serviceBus": {"maxConcurrentCalls": 2}}}
    async with _host(conn, host_json=host_json) as host:
        await _send(conn, "host-q", *[ServiceBusMessage(b"sleep:0.6", message_id=f"c{i}") for i in range(6)])
        await host.wait_idle(timeout=30)
    assert sorted(i.message_id for i in host.invocations if i.function == "handler") == [f"c{i}" for i in range(6)]
    assert sample.ACTIVE["max"] == 2


async def test_wait_idle_ignores_future_scheduled_messages_unless_asked(conn: str, sb: ServiceBusStandIn) -> None:
    async with _host(conn) as host:
        async with ServiceBusClient.from_connection_string(conn) as client, client.get_queue_sender("host-q") as s:
            await s.schedule_messages(
                ServiceBusMessage(b"later", message_id="sch-1"), dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
            )
        await host.wait_idle(timeout=10)
        with pytest.raises(TimeoutError):
            await host.wait_idle(timeout=1, include_scheduled=True)
    assert sample.CALLS == []


async def test_run_timer_and_function_message_fidelity(conn: str) -> None:
    async with _host(conn) as host:
        record = await host.run_timer("tick")
        assert record.outcome == "completed"
        assert sample.TIMER_CALLS == [False]
        with pytest.raises(KeyError):
            await host.run_timer("handler")
        assert set(host.triggers) == {"handler", "sync_handler", "tick"}
        assert host.triggers["handler"].queue == "host-q"


def test_host_json_defaults_and_overrides(tmp_path) -> None:
    assert HostOptions.load(None).max_concurrent_calls == 16
    assert HostOptions.load(None).prefetch_count == 0
    assert HostOptions.load(None).max_auto_lock_renewal_duration == 300
    path = tmp_path / "host.json"
    path.write_text(
        '{"functionTimeout": "00:10:00", "extensions": {"serviceBus": {"maxConcurrentCalls": 8, '
        '"prefetchCount": 0, "maxAutoLockRenewalDuration": "00:10:00", "autoCompleteMessages": true}}}'
    )
    opts = HostOptions.load(path)
    assert (opts.max_concurrent_calls, opts.max_auto_lock_renewal_duration, opts.function_timeout) == (8, 600, 600)
    assert HostOptions.load(
        {"extensions": {"serviceBus": {"maxAutoLockRenewalDuration": "-00:00:00.001"}}}
    ).max_auto_lock_renewal_duration == float("inf")


def test_function_message_is_the_full_fidelity_class() -> None:
    assert FuncMessage.__module__ == "azure.functions.servicebus"
