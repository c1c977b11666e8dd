"""The stand-in through the asyncio azure-servicebus SDK, including competing receivers."""

from __future__ import annotations

import asyncio
import datetime as dt

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient

from emulators.servicebus import ServiceBusStandIn


async def test_aio_core_matrix(conn: str, sb: ServiceBusStandIn) -> None:
    async with ServiceBusClient.from_connection_string(conn) as client:
        async with client.get_queue_sender("q") as sender:
            batch = await sender.create_message_batch()
            batch.add_message(ServiceBusMessage("done", message_id="a-1", correlation_id="c-1"))
            batch.add_message(ServiceBusMessage("retry", message_id="a-2"))
            batch.add_message(ServiceBusMessage("dead", message_id="a-3"))
            batch.add_message(ServiceBusMessage("defer", message_id="a-4"))
            await sender.send_messages(batch)
            [seq] = await sender.schedule_messages(
                ServiceBusMessage("scheduled", message_id="a-5"), dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
            )
        async with client.get_queue_receiver("q") as receiver:
            got = {}
            while len(got) < 4:
                for m in await receiver.receive_messages(max_message_count=4, max_wait_time=2):
                    got[m.message_id] = m
            assert {m.delivery_count for m in got.values()} == {0}  # earlier deliveries, as Service Bus sends it
            assert got["a-1"].correlation_id == "c-1"
            await receiver.complete_message(got["a-1"])
            await receiver.abandon_message(got["a-2"])
            await receiver.dead_letter_message(got["a-3"], reason="Bad", error_description="bad input")
            await receiver.defer_message(got["a-4"])
            [again] = await receiver.receive_messages(max_wait_time=2)
            assert (again.message_id, again.delivery_count) == ("a-2", 1)
            await receiver.renew_message_lock(again)
            await receiver.complete_message(again)
            [deferred] = await receiver.receive_deferred_messages([got["a-4"].sequence_number])
            await receiver.complete_message(deferred)
            [scheduled] = await receiver.receive_messages(max_wait_time=4)
            assert (scheduled.message_id, scheduled.sequence_number) == ("a-5", seq)
            await receiver.complete_message(scheduled)
        async with client.get_queue_receiver("q", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = await dlq.receive_messages(max_wait_time=2)
            assert (dead.message_id, dead.dead_letter_reason, dead.dead_letter_error_description) == (
                "a-3",
                "Bad",
                "bad input",
            )
            await dlq.complete_message(dead)
    assert sb.snapshot()["q"] == {"active": 0, "locked": 0, "deferred": 0, "scheduled": 0, "dead_lettered": 0}


async def test_competing_receivers_each_message_to_one_receiver_at_a_time(conn: str, sb: ServiceBusStandIn) -> None:
    total = 30
    async with ServiceBusClient.from_connection_string(conn) as client:
        async with client.get_queue_sender("long") as sender:
            await sender.send_messages([ServiceBusMessage(f"m{i}", message_id=f"m{i}") for i in range(total)])
        holders: dict[str, int] = {}
        handled: list[tuple[int, str]] = []
        overlaps: list[str] = []

        async def consume(worker: int) -> None:
            async with client.get_queue_receiver("long") as receiver:
                while len(handled) < total:
                    for m in await receiver.receive_messages(max_message_count=2, max_wait_time=0.5):
                        if m.message_id in holders:
                            overlaps.append(m.message_id)
                        holders[m.message_id] = worker
                        await asyncio.sleep(0.01)
                        del holders[m.message_id]
                        handled.append((worker, m.message_id))
                        await receiver.complete_message(m)

        await asyncio.wait_for(asyncio.gather(*(consume(w) for w in range(4))), timeout=60)
    ids = [mid for _w, mid in handled]
    assert sorted(ids) == sorted(f"m{i}" for i in range(total))  # each message handled exactly once
    assert overlaps == []
    assert len({w for w, _ in handled}) > 1  # the work was actually shared
    assert sb.snapshot()["long"]["active"] == 0
