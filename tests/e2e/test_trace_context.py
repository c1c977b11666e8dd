"""Trace context: every event of a request carries its trace id, from the first event to the tracker's last."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage

from tests.e2e.harness import Harness, of_type

pytestmark = pytest.mark.timeout(180)

SENDER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
APPROVER_TRACE = "0af7651916cd43dd8448eb211c80319c"
W3C = re.compile(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


async def _send(harness: Harness, body: dict[str, Any], queue: str, **properties: str) -> None:
    assert harness.client is not None
    async with harness.client.get_queue_sender(queue) as sender:
        await sender.send_messages(ServiceBusMessage(json.dumps(body).encode(), message_id=str(uuid.uuid4()),
                                                     application_properties=properties or None))
    await harness.settle()


async def _track_to_the_end(harness: Harness) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for _ in range(20):
        harness.graph.advance(seconds=300)
        await harness.host.run_timer("session_tracker")
        events += await harness.drain_events()
        if of_type(events, "restore.request.completed"):
            return events
    raise AssertionError("the request did not complete")


def _trace_ids(events: list[dict[str, Any]]) -> set[str]:
    found = set()
    for event in events:
        match = W3C.match(event.get("traceparent", ""))
        assert match, event
        found.add(match.group(1))
    return found


async def test_a_request_keeps_its_senders_trace_through_approval_and_tracking(harness):
    points = harness.restore_points(4)
    request = {"requestId": "r-traced", "incidentId": "INC-T", "artifacts": [{"restorePointId": p} for p in points]}
    await _send(harness, request, "restore-requests", traceparent=f"00-{SENDER_TRACE}-00f067aa0ba902b7-01")
    created = await harness.drain_events()
    assert of_type(created, "restore.request.accepted")

    # The approver's own trace context names the approval's span, not the request's trace.
    await _send(harness, {"requestId": "r-traced"}, "activation-requests",
                traceparent=f"00-{APPROVER_TRACE}-b7ad6b7169203331-01")
    approved = await harness.drain_events()
    assert of_type(approved, "restore.session.activated")

    tracked = await _track_to_the_end(harness)
    assert of_type(tracked, "restore.session.completed") and of_type(tracked, "restore.request.completed")
    of_request = [e for e in created + approved + tracked if e["data"].get("requestId") == "r-traced"]
    assert _trace_ids(of_request) == {SENDER_TRACE}


async def test_a_request_without_trace_context_gets_one_new_trace_for_all_its_events(harness):
    points = harness.restore_points(4)
    request = {"requestId": "r-untraced", "activate": True, "artifacts": [{"restorePointId": p} for p in points]}
    # Not a W3C value: ignored, as if absent.
    await _send(harness, request, "restore-requests", traceparent="00-not-a-trace-context-01")
    events = await harness.drain_events()
    events += await _track_to_the_end(harness)
    assert of_type(events, "restore.session.activated")
    [trace_id] = _trace_ids(events)
    assert trace_id not in (SENDER_TRACE, APPROVER_TRACE)


@pytest.fixture
def spans(graph, service_bus, settings_env):
    """Telemetry on, through an in-memory exporter (the test's own providers, as start-up would install them)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from orchestrators.app import telemetry

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_providers(provider, MeterProvider(metric_readers=[reader]))
    try:
        yield exporter, reader
    finally:
        telemetry.disable()


async def test_one_requests_trace_tree_is_whole(spans, graph, service_bus, settings_env):
    exporter, reader = spans
    harness = Harness(settings_env, graph.admin, service_bus.connection_string, standin=service_bus)
    await harness.start()
    try:
        points = harness.restore_points(4)
        request = {"requestId": "r-spans", "incidentId": "INC-S", "artifacts": [{"restorePointId": p}
                                                                                for p in points]}
        await _send(harness, request, "restore-requests", traceparent=f"00-{SENDER_TRACE}-00f067aa0ba902b7-01")
        events = await harness.drain_events()
    finally:
        await harness.stop()

    finished = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == SENDER_TRACE]
    [invocation] = [s for s in finished if s.name == "restore_requests"]
    assert f"{invocation.parent.span_id:016x}" == "00f067aa0ba902b7" and invocation.parent.is_remote
    assert invocation.kind.name == "CONSUMER"
    attributes = dict(invocation.attributes)
    assert attributes["messaging.system"] == "servicebus"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.destination.name"] == "restore-requests"
    assert attributes["messaging.message.id"]
    assert (attributes["restore.request_id"], attributes["restore.incident_id"]) == ("r-spans", "INC-S")
    assert attributes["restore.workload"] == "oneDrive"

    by_id = {s.context.span_id: s for s in finished}

    def under_invocation(span) -> bool:
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
        return span is invocation

    names = {s.name.split(" ")[0] for s in finished if s is not invocation}
    assert {"graph", "ledger", "send"} <= names
    assert all(under_invocation(s) for s in finished)
    [create] = [s for s in finished if s.name.startswith("graph POST")]
    assert create.kind.name == "CLIENT" and create.attributes["http.response.status_code"] in (200, 201)
    [publish] = [s for s in finished if s.name.startswith("send ")]
    assert publish.kind.name == "PRODUCER" and publish.attributes["messaging.destination.name"] == "restore-events"
    # The events name the span that published them.
    assert {e["traceparent"] for e in events} == {f"00-{SENDER_TRACE}-{publish.context.span_id:016x}-01"}

    metrics = reader.get_metrics_data()
    created = [point.value for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
               if m.name == "restore.sessions.created" for point in m.data.data_points]
    assert created == [1]
