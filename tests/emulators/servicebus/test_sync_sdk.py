"""The stand-in through the synchronous azure-servicebus SDK.

Clients use keep_alive=None (no keep-alive thread, whose join makes every close wait up to a second) and
retry_total=1 (so expected errors are not retried with back-off).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import MessageLockLostError, MessagingEntityNotFoundError, ServiceBusError

from emulators.servicebus import ServiceBusStandIn


def _props(msg) -> dict:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in (msg.application_properties or {}).items()
    }


def test_send_receive_complete_round_trip(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages(
                ServiceBusMessage(
                    b'{"requestId": "r1"}',
                    message_id="m-1",
                    correlation_id="INC-1",
                    subject="restore",
                    content_type="application/json",
                    application_properties={"type": "restore", "n": 7},
                    reply_to="replies",
                    to="someone",
                )
            )
        assert sb.snapshot()["q"]["active"] == 1
        with client.get_queue_receiver("q", max_wait_time=2) as receiver:
            [msg] = receiver.receive_messages(max_message_count=1, max_wait_time=2)
            assert b"".join(msg.body) == b'{"requestId": "r1"}'
            assert msg.message_id == "m-1"
            assert msg.correlation_id == "INC-1"
            assert msg.subject == "restore"
            assert msg.content_type == "application/json"
            assert msg.reply_to == "replies"
            assert msg.to == "someone"
            assert _props(msg) == {"type": "restore", "n": 7}
            assert msg.delivery_count == 0  # the number of earlier deliveries: none
            assert msg.sequence_number == 1
            assert msg.enqueued_time_utc is not None
            assert msg.locked_until_utc is not None
            assert msg.locked_until_utc > dt.datetime.now(dt.UTC)
            assert msg.lock_token is not None
            assert sb.snapshot()["q"]["locked"] == 1
            receiver.complete_message(msg)
        assert sb.snapshot()["q"] == {"active": 0, "locked": 0, "deferred": 0, "scheduled": 0, "dead_lettered": 0}


def test_batch_send_delivers_every_message(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            batch = sender.create_message_batch()
            for i in range(5):
                batch.add_message(ServiceBusMessage(f"b{i}", message_id=f"b{i}"))
            sender.send_messages(batch)
            sender.send_messages([ServiceBusMessage("l0"), ServiceBusMessage("l1")])
        assert sb.snapshot()["q"]["active"] == 7
        with client.get_queue_receiver("q") as receiver:
            got = []
            while len(got) < 7:
                msgs = receiver.receive_messages(max_message_count=10, max_wait_time=2)
                assert msgs
                for m in msgs:
                    got.append(str(m))
                    receiver.complete_message(m)
        assert got == ["b0", "b1", "b2", "b3", "b4", "l0", "l1"]


def test_abandon_increments_delivery_count_then_dead_letters(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("poison", message_id="p-1"))
        counts = []
        with client.get_queue_receiver("q") as receiver:
            for _ in range(3):  # MaxDeliveryCount 3
                [msg] = receiver.receive_messages(max_wait_time=2)
                counts.append(msg.delivery_count)
                receiver.abandon_message(msg)
            assert receiver.receive_messages(max_wait_time=0.5) == []
        assert counts == [0, 1, 2]  # n after n abandons
        assert sb.snapshot()["q"]["dead_lettered"] == 1
        with client.get_queue_receiver("q", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = dlq.receive_messages(max_wait_time=2)
            assert dead.message_id == "p-1"
            assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
            assert dead.dead_letter_source == "q"
            dlq.complete_message(dead)
        assert sb.snapshot()["q"]["dead_lettered"] == 0


def test_dead_letter_with_reason_and_description(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("bad", message_id="bad-1", application_properties={"k": "v"}))
        with client.get_queue_receiver("q") as receiver:
            [msg] = receiver.receive_messages(max_wait_time=2)
            receiver.dead_letter_message(msg, reason="ValidationFailed", error_description="no artifacts")
        [dead] = sb.messages("q/$deadletterqueue")
        assert dead["dead_letter_reason"] == "ValidationFailed"
        with client.get_queue_receiver("q", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [msg] = dlq.receive_messages(max_wait_time=2)
            assert msg.dead_letter_reason == "ValidationFailed"
            assert msg.dead_letter_error_description == "no artifacts"
            assert _props(msg)["k"] == "v"
            # Guess in the stand-in: a dead-lettered message keeps its count and its DLQ deliveries add to it.
            assert msg.delivery_count == 1


def test_lock_expiry_redelivers_and_settling_late_fails(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("slow"))
        with client.get_queue_receiver("q") as receiver:
            [first] = receiver.receive_messages(max_wait_time=2)
            assert first.delivery_count == 0
            time.sleep(2.3)  # LockDuration PT2S
            [second] = receiver.receive_messages(max_wait_time=2)
            assert second.delivery_count == 1  # a lock expiry counts as a delivery, like an abandon
            assert second.sequence_number == first.sequence_number
            with pytest.raises(MessageLockLostError):
                receiver.complete_message(first)
            receiver.complete_message(second)
        assert sb.snapshot()["q"]["active"] == 0


def test_lock_expiries_count_like_abandons_and_dead_letter_at_max_delivery_count(
    conn: str, sb: ServiceBusStandIn
) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("never settled", message_id="x-1"))
        counts = []
        with client.get_queue_receiver("q") as receiver:
            for _ in range(3):  # MaxDeliveryCount 3, LockDuration PT2S: each lock is left to expire
                [msg] = receiver.receive_messages(max_wait_time=4)
                counts.append(msg.delivery_count)
                time.sleep(2.2)
            assert receiver.receive_messages(max_wait_time=0.5) == []
            [peeked] = receiver.peek_messages(max_message_count=1, sequence_number=1) or [None]
            assert peeked is None  # gone from the queue itself
        assert counts == [0, 1, 2]
        with client.get_queue_receiver("q", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [peeked] = dlq.peek_messages(max_message_count=1)
            assert peeked.delivery_count == 3  # peeked, held by nobody: every delivery so far
            [dead] = dlq.receive_messages(max_wait_time=2)
            assert (dead.message_id, dead.dead_letter_reason) == ("x-1", "MaxDeliveryCountExceeded")
            dlq.complete_message(dead)


def test_renew_lock_keeps_the_message(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("renew me"))
        with client.get_queue_receiver("q") as receiver:
            [msg] = receiver.receive_messages(max_wait_time=2)
            before = msg.locked_until_utc
            for _ in range(3):
                time.sleep(0.8)
                receiver.renew_message_lock(msg)
            assert msg.locked_until_utc > before
            assert sb.snapshot()["q"]["locked"] == 1
            receiver.complete_message(msg)


def test_receive_and_delete(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        with client.get_queue_receiver("q", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
            got = []
            while len(got) < 2:
                got += [str(m) for m in receiver.receive_messages(max_message_count=2, max_wait_time=2)]
        assert got == ["a", "b"]
        assert sb.snapshot()["q"]["active"] == 0


def test_schedule_and_cancel(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
            keep, drop = sender.schedule_messages([ServiceBusMessage("keep"), ServiceBusMessage("drop")], when)
            assert sb.snapshot()["q"]["scheduled"] == 2
            sender.cancel_scheduled_messages(drop)
            assert sb.snapshot()["q"]["scheduled"] == 1
            # Sending with scheduled_enqueue_time_utc schedules too.
            sender.send_messages(ServiceBusMessage("later", scheduled_enqueue_time_utc=when))
        with client.get_queue_receiver("q") as receiver:
            peeked = receiver.peek_messages(max_message_count=10)
            assert {int(m.state) for m in peeked} == {2}  # ServiceBusMessageState.SCHEDULED
            assert receiver.receive_messages(max_wait_time=0.5) == []
            got = []
            deadline = time.monotonic() + 8
            while len(got) < 2 and time.monotonic() < deadline:
                for m in receiver.receive_messages(max_message_count=2, max_wait_time=1):
                    got.append(m)
                    receiver.complete_message(m)
        assert sorted(str(m) for m in got) == ["keep", "later"]
        assert all(m.sequence_number for m in got)
        assert keep in {m.sequence_number for m in got}
        assert got[0].scheduled_enqueue_time_utc is not None
        assert dt.datetime.now(dt.UTC) >= when


def test_peek_does_not_lock(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages([ServiceBusMessage(f"p{i}") for i in range(3)])
        with client.get_queue_receiver("q") as receiver:
            first = receiver.peek_messages(max_message_count=2)
            assert [str(m) for m in first] == ["p0", "p1"]
            assert [m.delivery_count for m in first] == [0, 0]
            rest = receiver.peek_messages(max_message_count=10)
            assert [str(m) for m in rest] == ["p2"]  # the SDK continues after the last peeked sequence number
            assert sb.snapshot()["q"]["active"] == 3
            assert receiver.peek_messages(max_message_count=10, sequence_number=1)[0].sequence_number == 1


def test_defer_and_receive_deferred(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("later please", message_id="d-1"))
        with client.get_queue_receiver("q") as receiver:
            [msg] = receiver.receive_messages(max_wait_time=2)
            seq = msg.sequence_number
            receiver.defer_message(msg)
            assert sb.snapshot()["q"]["deferred"] == 1
            assert receiver.receive_messages(max_wait_time=0.5) == []
            [deferred] = receiver.receive_deferred_messages([seq])
            assert deferred.message_id == "d-1"
            assert int(deferred.state) == 1
            receiver.abandon_message(deferred)  # stays deferred
            assert sb.snapshot()["q"]["deferred"] == 1
            [again] = receiver.receive_deferred_messages([seq])
            receiver.complete_message(again)
            with pytest.raises(ServiceBusError):
                receiver.receive_deferred_messages([seq])
        assert sb.snapshot()["q"]["deferred"] == 0


def test_duplicate_detection_by_message_id(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("dup", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("one", message_id="same"))
            sender.send_messages(ServiceBusMessage("two", message_id="same"))
            sender.send_messages(ServiceBusMessage("three", message_id="other"))
        assert sb.snapshot()["dup"]["active"] == 2
        # Without duplicate detection both arrive.
        with client.get_queue_sender("q", keep_alive=None) as sender:
            sender.send_messages([ServiceBusMessage("a", message_id="x"), ServiceBusMessage("b", message_id="x")])
        assert sb.snapshot()["q"]["active"] == 2
        # After the history window the id is accepted again.
        with client.get_queue_sender("dupshort", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("1", message_id="w"))
            sender.send_messages(ServiceBusMessage("2", message_id="w"))
            time.sleep(1.2)
            sender.send_messages(ServiceBusMessage("3", message_id="w"))
        assert sb.snapshot()["dupshort"]["active"] == 2


def test_topic_fans_out_to_subscriptions_with_filters(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_topic_sender("events", keep_alive=None) as sender:
            sender.send_messages(
                ServiceBusMessage(
                    "c", message_id="e1", subject="restore.session.created", application_properties={"requestId": "r-1"}
                )
            )
            sender.send_messages(ServiceBusMessage("c", message_id="e1", subject="restore.session.created"))
            sender.send_messages(
                ServiceBusMessage(
                    "a",
                    message_id="e2",
                    subject="restore.request.accepted",
                    application_properties={"requestId": "r-2"},
                )
            )
        snap = sb.snapshot()
        assert snap["events/Subscriptions/all"]["active"] == 2  # the duplicate e1 was dropped at the topic
        assert snap["events/Subscriptions/audit"]["active"] == 2
        assert snap["events/Subscriptions/created"]["active"] == 1
        assert snap["events/Subscriptions/sql"]["active"] == 1
        with client.get_subscription_receiver("events", "all") as receiver:
            msgs = receiver.receive_messages(max_message_count=2, max_wait_time=2)
            while len(msgs) < 2:
                msgs += receiver.receive_messages(max_message_count=2, max_wait_time=2)
            assert [m.message_id for m in msgs] == ["e1", "e2"]
            for m in msgs:
                receiver.complete_message(m)
        with client.get_subscription_receiver("events", "created") as receiver:
            [m] = receiver.receive_messages(max_wait_time=2)
            assert m.subject == "restore.session.created"
            receiver.dead_letter_message(m, reason="r", error_description="d")
        assert sb.snapshot()["events/Subscriptions/created"]["dead_lettered"] == 1
        with client.get_subscription_receiver("events", "created", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [m] = dlq.receive_messages(max_wait_time=2)
            assert m.dead_letter_reason == "r"


def test_unknown_entity_is_refused(conn: str) -> None:
    with ServiceBusClient.from_connection_string(conn, retry_total=0, keep_alive=None) as client:
        with pytest.raises(MessagingEntityNotFoundError), client.get_queue_sender("nope", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("x"))
        with pytest.raises(MessagingEntityNotFoundError), client.get_queue_receiver("nope") as receiver:
            receiver.receive_messages(max_wait_time=1)


def test_ttl_expiry_dead_letters_when_configured(conn: str, sb: ServiceBusStandIn) -> None:
    with ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client:
        with client.get_queue_sender("ttl", keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("short-lived"))
        time.sleep(1.2)
        assert sb.snapshot()["ttl"]["dead_lettered"] == 1
        [dead] = sb.messages("ttl/$deadletterqueue")
        assert dead["dead_letter_reason"] == "TTLExpiredException"


def test_forward_to(conn: str, sb: ServiceBusStandIn) -> None:
    with (
        ServiceBusClient.from_connection_string(conn, keep_alive=None, retry_total=1) as client,
        client.get_queue_sender("fwd", keep_alive=None) as sender,
    ):
        sender.send_messages(ServiceBusMessage("moved"))
    snap = sb.snapshot()
    assert snap["fwd"]["active"] == 0
    assert snap["q2"]["active"] == 1
