"""What the real-worker mode sends the worker for a message, typed as the Functions host types it.

Runs on any Python (no worker library needed): the messages are real SDK messages from the stand-in.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

from emulators.functions_host import host_delivery_count
from emulators.functions_worker.host_data import (
    NET_MAX_DATETIME,
    HostBindingError,
    message_body,
    net_datetime,
    service_bus_input,
    timer_payload,
)
from emulators.functions_worker.rpc import PROTOS, StatusResult, StreamingMessage, TypedData


async def _receive(conn: str, message: ServiceBusMessage, *, abandon_first: bool = False):
    async with ServiceBusClient.from_connection_string(conn) as client:
        async with client.get_queue_sender("sample-q") as sender:
            await sender.send_messages(message)
        async with client.get_queue_receiver("sample-q", max_wait_time=5) as receiver:
            [received] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
            if abandon_first:
                await receiver.abandon_message(received)
                [received] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
            return received  # left locked: a settled message no longer has its lock token


def _kind(data: TypedData) -> str | None:
    return data.WhichOneof("data")


async def test_trigger_metadata_is_typed_as_the_host_sends_it(sb) -> None:
    before = dt.datetime.now(dt.UTC)
    msg = await _receive(
        sb.connection_string,
        ServiceBusMessage(
            b'{"requestId": "r-1"}',
            message_id="m-1",
            correlation_id="INC-1",
            content_type="application/json",
            subject="restore",
            application_properties={"restoreAttempt": 2, "kind": "retry", "urgent": True, "weight": 0.5},
        ),
    )
    inputs, metadata = service_bus_input(
        msg, arg_name="message", data_type=None, function_name="f", delivery_count=host_delivery_count(msg)
    )

    [binding] = inputs
    assert binding.name == "message" and binding.WhichOneof("rpc_data") == "data"
    assert _kind(binding.data) == "string" and binding.data.string == '{"requestId": "r-1"}'

    # Numbers are JSON, the DeliveryCount the host reports is 1-based.
    assert _kind(metadata["DeliveryCount"]) == "json" and metadata["DeliveryCount"].json == "1"
    assert _kind(metadata["SequenceNumber"]) == "json"
    assert json.loads(metadata["SequenceNumber"].json) == msg.sequence_number

    # EnqueuedTimeUtc: a JSON string without a zone (DateTimeOffset.DateTime); EnqueuedTime with its offset.
    enqueued = json.loads(metadata["EnqueuedTimeUtc"].json)
    assert isinstance(enqueued, str) and not enqueued.endswith("Z") and "+" not in enqueued
    parsed = dt.datetime.fromisoformat(enqueued).replace(tzinfo=dt.UTC)
    assert parsed == msg.enqueued_time_utc
    assert before - dt.timedelta(seconds=1) <= parsed <= dt.datetime.now(dt.UTC)
    assert json.loads(metadata["EnqueuedTime"].json) == enqueued + "+00:00"
    assert dt.datetime.fromisoformat(json.loads(metadata["ExpiresAtUtc"].json)).replace(tzinfo=dt.UTC) == (
        msg.expires_at_utc
    )

    # ApplicationProperties and UserProperties: the same JSON object, keys and text as str.
    props = json.loads(metadata["ApplicationProperties"].json)
    assert props == {"restoreAttempt": 2, "kind": "retry", "urgent": True, "weight": 0.5}
    assert metadata["UserProperties"].json == metadata["ApplicationProperties"].json

    # Strings are strings; what is null is not sent at all.
    for name, value in [("MessageId", "m-1"), ("CorrelationId", "INC-1"), ("ContentType", "application/json"),
                        ("Subject", "restore"), ("Label", "restore"), ("LockToken", str(msg.lock_token))]:
        assert _kind(metadata[name]) == "string" and metadata[name].string == value, name
    for absent in ("ReplyTo", "To", "SessionId", "ReplyToSessionId", "PartitionKey", "DeadLetterSource",
                   "LockedUntil", "State", "TimeToLive", "EnqueuedSequenceNumber"):
        assert absent not in metadata, absent
    system = json.loads(metadata["sys"].json)
    assert system["MethodName"] == "f" and system["UtcNow"].endswith("Z") and system["RandGuid"]


async def test_the_delivery_count_follows_redeliveries(sb) -> None:
    msg = await _receive(sb.connection_string, ServiceBusMessage(b"again", message_id="m-2"), abandon_first=True)
    assert msg.delivery_count == 1  # the SDK: one earlier delivery
    _, metadata = service_bus_input(
        msg, arg_name="m", data_type=None, function_name="f", delivery_count=host_delivery_count(msg)
    )
    assert metadata["DeliveryCount"].json == "2"


async def test_a_message_without_optional_properties_sends_no_nulls(sb) -> None:
    msg = await _receive(sb.connection_string, ServiceBusMessage("plain"))
    _, metadata = service_bus_input(msg, arg_name="m", data_type=None, function_name="f", delivery_count=1)
    assert "CorrelationId" not in metadata and "ContentType" not in metadata and "Subject" not in metadata
    assert json.loads(metadata["ApplicationProperties"].json) == {}


async def test_the_body_is_a_string_unless_the_binding_says_binary(sb) -> None:
    msg = await _receive(sb.connection_string, ServiceBusMessage(b"\xff\xfe ok"))
    as_text = message_body(msg, None)
    assert _kind(as_text) == "string" and as_text.string == "\ufffd\ufffd ok"
    as_bytes = message_body(msg, "binary")
    assert _kind(as_bytes) == "bytes" and as_bytes.bytes == b"\xff\xfe ok"


def test_a_body_that_is_not_data_or_a_string_value_cannot_be_bound() -> None:
    class ValueMessage:
        body_type = "AmqpMessageBodyType.VALUE"
        body = 42

    with pytest.raises(HostBindingError, match="cannot be bound to a string"):
        message_body(ValueMessage(), None)


def test_json_net_date_formats() -> None:
    moment = dt.datetime(2026, 11, 20, 3, 0, 5, 120000, tzinfo=dt.UTC)
    assert net_datetime(moment) == "2026-11-20T03:00:05.12"
    assert net_datetime(moment, zone="+00:00") == "2026-11-20T03:00:05.12+00:00"
    assert net_datetime(moment.replace(microsecond=0), zone="Z") == "2026-11-20T03:00:05Z"
    assert NET_MAX_DATETIME == "9999-12-31T23:59:59.9999999"


def test_the_timer_payload_is_timer_info_json() -> None:
    now = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
    payload = json.loads(timer_payload(past_due=True, adjust_for_dst=True,
                                       status={"Last": None, "Next": now, "LastUpdated": now}).json)
    assert list(payload) == ["Schedule", "ScheduleStatus", "IsPastDue"]
    assert payload["Schedule"] == {"AdjustForDST": True} and payload["IsPastDue"] is True
    assert payload["ScheduleStatus"]["Last"] == "0001-01-01T00:00:00"
    assert dt.datetime.fromisoformat(payload["ScheduleStatus"]["Next"]) == now
    assert json.loads(timer_payload(past_due=False, adjust_for_dst=False, status=None).json)["ScheduleStatus"] is None


def test_the_message_classes_behave_like_protobuf_messages() -> None:
    with pytest.raises(ValueError, match='has no "nope" field'):
        PROTOS.TypedData(nope=1)
    data = PROTOS.TypedData(string="")
    assert data.WhichOneof("data") == "string"  # set, even to the empty string
    data.json = "1"
    assert data.WhichOneof("data") == "json" and data.string == ""
    assert PROTOS.TypedData().WhichOneof("data") is None
    result = PROTOS.StatusResult(status=PROTOS.StatusResult.Success)
    assert result.exception.message == "" and result.status == StatusResult.Success == 1
    assert getattr(PROTOS.BindingInfo, "in") == 0 and PROTOS.BindingInfo.out == 1
    assert StreamingMessage(invocation_request=PROTOS.InvocationRequest()).WhichOneof("content") == "invocation_request"
    request = PROTOS.InvocationRequest()
    assert request.trace_context.trace_parent == "" and request.retry_context.retry_count == 0
