"""Benchmark: what telemetry costs, off and on.

    python -m bench.telemetry_cost [--requests 20] [--artifacts 50]

For each mode (off: no exporter setting; memory: spans and metrics into an in-memory exporter; otlp: OTLP/HTTP
to an endpoint where nothing listens) prints the median time to import function_app in a fresh interpreter and
the worker's median CPU per restore request of `--artifacts` restore points against the local stand-ins
(Graph emulator, Service Bus stand-in and Azurite run as separate processes, so their CPU is not counted).
Each mode runs in its own interpreter: telemetry is decided once per process, at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.services import ROOT, local_services

MODES = ("off", "memory", "otlp")
UNREACHABLE_OTLP = "http://127.0.0.1:9"  # the discard port: nothing answers, exports fail in the background
BASE_ENV = {"ServiceBusConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=a;SharedAccessKey=b",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def _env(mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT")}
    if mode == "otlp":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = UNREACHABLE_OTLP
    return env


def import_time_ms(mode: str, runs: int = 7) -> float:
    """Median wall time of `import function_app` (start-up included: settings, telemetry, prewarm's start)."""
    code = "import time; t=time.perf_counter(); import function_app; print((time.perf_counter()-t)*1000)"
    env = {**_env(mode), **BASE_ENV}
    times = [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                                  text=True, check=True).stdout.split()[-1]) for _ in range(runs)]
    return statistics.median(times)


async def _invocations(mode: str, requests: int, artifacts: int) -> dict[str, Any]:
    exporter = None
    if mode != "off":  # off imports nothing of telemetry (so the same run measures a tree without it)
        from orchestrators.app import telemetry
    if mode == "memory":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        telemetry.use_providers(provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    elif mode == "otlp":
        assert telemetry.configure() == "otlp"

    from orchestrators.app.runtime import Runtime
    from orchestrators.kernel.messages import InboundMessage
    from orchestrators.kernel.settings import Settings

    with local_services(drives=requests * artifacts + 50) as services:
        points = [p["id"] for p in services.graph.samples(requests * artifacts)["restorePoints"]]
        parts = await Runtime.create(Settings.from_env(services.settings_env()))
        cpu: list[float] = []
        try:
            await parts.ledger.ensure_table()
            orchestrator = parts.restore_orchestrator()
            for n in range(requests + 1):  # the first one warms the connections and is not counted
                chunk = points[(n % requests) * artifacts:((n % requests) + 1) * artifacts]
                body = json.dumps({"requestId": f"bench-{mode}-{n}",
                                   "artifacts": [{"restorePointId": p} for p in chunk]}).encode()
                message = InboundMessage(body=body, message_id=f"m-{n}", application_properties={
                    "traceparent": f"00-{n + 1:032x}-00f067aa0ba902b7-01"})
                cpu0 = time.process_time()
                outcome = await orchestrator.handle(message)
                if n:
                    cpu.append(time.process_time() - cpu0)
                assert outcome.kind == "accepted", outcome
        finally:
            await parts.aclose()
    spans = len(exporter.get_finished_spans()) if exporter is not None else None
    return {"cpu_ms": statistics.median(cpu) * 1000, "spans": spans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--artifacts", type=int, default=50)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_invocations(args.child, args.requests, args.artifacts))))
        return
    print(f"telemetry cost: {args.requests} restore requests of {args.artifacts} restore points each, per mode")
    for mode in MODES:
        out = subprocess.run([sys.executable, "-m", "bench.telemetry_cost", "--child", mode, "--requests",
                              str(args.requests), "--artifacts", str(args.artifacts)], cwd=ROOT, env=_env(mode),
                             capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        spans = f", {result['spans'] / args.requests:.0f} spans per request" if result["spans"] else ""
        print(f"  {mode:6}  import function_app {import_time_ms(mode):6.0f} ms (median)   "
              f"worker CPU {result['cpu_ms']:6.1f} ms per request (median){spans}")


if __name__ == "__main__":
    main()
