"""Telemetry is decided once at start-up: off, nothing of OpenTelemetry is imported and spans cost a flag test;
on, the invocation span continues the message's trace and our spans are its children."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrators.app import telemetry
from orchestrators.kernel import tracing
from orchestrators.kernel.messages import InboundMessage

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import json, sys; import function_app; from orchestrators.kernel import tracing; "
         "print(json.dumps({'enabled': tracing.enabled(), "
         "'otel': sorted(m for m in sys.modules if m.startswith('opentelemetry'))}))")


def _start_up(**settings: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in (telemetry.APPINSIGHTS_SETTING, telemetry.OTLP_SETTING)}
    env.update({"ServiceBusConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=a;SharedAccessKey=b",
                "AzureWebJobsStorage": "UseDevelopmentStorage=true", **settings})
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_without_an_exporter_setting_no_opentelemetry_module_is_loaded_at_start_up():
    started = _start_up()
    assert started == {"enabled": False, "otel": []}


def test_an_otlp_endpoint_turns_telemetry_on_with_the_sdk():
    started = _start_up(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")  # nothing listens: exports fail quietly
    assert started["enabled"] is True
    assert "opentelemetry.sdk.trace" in started["otel"]


def test_which_exporter_the_settings_ask_for():
    assert telemetry.exporter_for({}) is None
    assert telemetry.exporter_for({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}) is None
    assert telemetry.exporter_for({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == "otlp"
    assert telemetry.exporter_for({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x",
                                   "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == "azure_monitor"


def test_off_the_span_helpers_are_one_shared_null_context():
    assert not tracing.enabled()
    message = InboundMessage(b"{}", "m-1")
    assert tracing.span("x") is tracing.NULL
    assert tracing.consumer_span("restore_requests", "restore-requests", message) is tracing.NULL
    tracing.count("graph.throttled")  # nothing to count into, and no error


@pytest.fixture
def exporter():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_providers(provider)
    try:
        yield exporter
    finally:
        telemetry.disable()


def test_the_invocation_span_continues_the_messages_trace_and_the_invocation_takes_its_trace(exporter):
    message = InboundMessage(b"{}", "m-1", application_properties={
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    with (tracing.consumer_span("restore_requests", "restore-requests", message) as span,
          tracing.invocation(message.trace_context) as current):
        assert current.trace.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert current.trace.span_id == f"{span.get_span_context().span_id:016x}"
        current.note_request("r-1", "INC-1")
        with tracing.span("ledger read", "client"):
            pass
    ledger, invocation = exporter.get_finished_spans()
    assert invocation.parent.span_id == 0x00f067aa0ba902b7 and invocation.parent.is_remote
    assert ledger.parent.span_id == invocation.context.span_id
    assert invocation.attributes["restore.request_id"] == "r-1"
    assert invocation.attributes["messaging.message.id"] == "m-1"


def test_an_activation_links_to_each_requests_trace_instead_of_joining_it(exporter):
    approver = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    request = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    message = InboundMessage(b"{}", "m-2", application_properties={"traceparent": approver})
    with (tracing.consumer_span("activation_requests", "activation-requests", message),
          tracing.invocation(message.trace_context, links_requests=True) as current):
        current.bind("r-1", request)
        assert tracing.event_traceparent(request) == request  # another trace: the recorded span stays
    [span] = exporter.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert [f"{link.context.trace_id:032x}" for link in span.links] == ["4bf92f3577b34da6a3ce929d0e0e4736"]


def test_a_status_route_is_answered_in_a_server_span_with_its_status_code(exporter):
    from orchestrators.status.http import answer

    result = asyncio.run(answer("restore", {"requestId": "bad id with spaces"}))
    assert result.status == 400
    [span] = [s for s in exporter.get_finished_spans() if s.name == "status restore"]
    assert span.kind.name == "SERVER"
    assert span.attributes["http.route"] == "restore"
    assert span.attributes["http.response.status_code"] == 400
