"""A message's W3C trace context, read strictly: a valid one is continued, anything else is ignored."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from orchestrators.contracts import CloudEvent, encode_event
from orchestrators.kernel import tracing
from orchestrators.kernel.messages import InboundMessage

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
W3C = re.compile(tracing.TRACEPARENT_PATTERN)


def _message(**properties: object) -> InboundMessage:
    return InboundMessage(body=b"{}", message_id="m-1", application_properties=dict(properties))


def test_a_traceparent_property_is_the_messages_trace_context():
    context = _message(traceparent=VALID).trace_context
    assert context == tracing.TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert context.traceparent == VALID


def test_diagnostic_id_as_the_service_bus_sdks_set_it_is_read_when_traceparent_is_absent():
    assert _message(**{"Diagnostic-Id": VALID}).trace_context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    assert _message(traceparent=other, **{"Diagnostic-Id": VALID}).trace_context.traceparent == other
    # The legacy hierarchical Request-Id form is not W3C trace context.
    assert _message(**{"Diagnostic-Id": "|4bf92f3577b34da6.1."}).trace_context is None


def test_bytes_as_amqp_may_carry_them_are_read():
    assert _message(traceparent=VALID.encode()).trace_context.traceparent == VALID


@pytest.mark.parametrize("value", [
    "", "garbage", VALID.upper(), VALID + "-extra", " " * 600 + VALID,
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the forbidden version
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # trace id one digit short
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902g7-01",
    b"\xff\xfe", 42, None, ["00"],
])
def test_an_invalid_trace_context_is_ignored_never_an_error(value):
    assert _message(traceparent=value).trace_context is None


def test_a_later_version_is_read_by_its_first_four_fields():
    later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"
    assert _message(traceparent=later).trace_context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert _message(traceparent="01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").trace_context is None


def test_without_trace_context_an_invocation_starts_a_new_trace_the_same_throughout():
    with tracing.invocation(None) as first:
        assert W3C.match(first.trace.traceparent)
        assert tracing.invocation_trace() == first.trace
    with tracing.invocation(None) as second:
        assert second.trace.trace_id != first.trace.trace_id


def test_an_invocation_continues_the_incoming_trace_with_a_span_of_its_own():
    incoming = tracing.parse_traceparent(VALID)
    with tracing.invocation(incoming) as current:
        assert current.trace.trace_id == incoming.trace_id
        assert current.trace.span_id != incoming.span_id
    assert tracing.current_invocation() is None


def test_the_event_document_carries_traceparent_as_a_top_level_attribute_only_when_set():
    event = CloudEvent(id="r-1:accepted", type="restore.request.accepted", subject="r-1",
                       data={"requestId": "r-1"}, correlation_id="r-1", request_id="r-1", time="2026-12-03T10:00:00Z")
    assert "traceparent" not in event.to_document()
    document = json.loads(encode_event(replace(event, traceparent=VALID)))
    assert document["traceparent"] == VALID
