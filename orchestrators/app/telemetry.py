"""Telemetry wiring, decided once at start-up: Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is
set, an OTLP endpoint when OTEL_EXPORTER_OTLP_ENDPOINT is set, nothing otherwise. Off, no OpenTelemetry module is
imported and the span helpers in `orchestrators.kernel.tracing` stay no-ops."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from orchestrators.kernel import tracing

log = logging.getLogger(__name__)

APPINSIGHTS_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_SETTING = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_NAME = "restore-orchestrator"
INSTRUMENTATION_SCOPE = "orchestrators"

_configured: str | None = None


def exporter_for(env: Mapping[str, str]) -> str | None:
    """Which exporter the settings ask for: "azure_monitor", "otlp" or None."""
    if env.get(APPINSIGHTS_SETTING, "").strip():
        return "azure_monitor"
    if env.get(OTLP_SETTING, "").strip():
        return "otlp"
    return None


def configure(env: Mapping[str, str] | None = None) -> str | None:
    """Configure the exporter the settings name (once per process); returns which one, or None when off.
    A failure to set up telemetry is logged, never fatal: the service runs without it."""
    global _configured
    if _configured is not None:
        return _configured
    env = os.environ if env is None else env
    exporter = exporter_for(env)
    if exporter is None:
        return None
    try:
        if exporter == "azure_monitor":
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(connection_string=env[APPINSIGHTS_SETTING])
            from opentelemetry import metrics, trace

            use_providers(trace.get_tracer_provider(), metrics.get_meter_provider())
        else:
            tracer_provider, meter_provider = _otlp_providers()
            from opentelemetry import metrics, trace

            trace.set_tracer_provider(tracer_provider)
            metrics.set_meter_provider(meter_provider)
            use_providers(tracer_provider, meter_provider)
    except Exception as exc:  # an exporter missing or misconfigured must not stop the service
        log.warning("telemetry (%s) is not available: %s", exporter, exc)
        return None
    _configured = exporter
    return exporter


def _otlp_providers() -> tuple[Any, Any]:
    """SDK providers exporting over OTLP/HTTP; the exporters read the OTEL_EXPORTER_OTLP_* settings."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": SERVICE_NAME})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(resource=resource,
                                   metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
    return tracer_provider, meter_provider


def use_providers(tracer_provider: Any, meter_provider: Any = None) -> None:
    """Send our spans (and metrics) through these providers: start-up uses it, and tests with an in-memory
    exporter."""
    tracer = tracer_provider.get_tracer(INSTRUMENTATION_SCOPE)
    meter = meter_provider.get_meter(INSTRUMENTATION_SCOPE) if meter_provider is not None else None
    tracing.enable(tracer, meter)


def disable() -> None:
    """Back to no telemetry (tests)."""
    global _configured
    _configured = None
    tracing.enable(None, None)
