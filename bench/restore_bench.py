"""Benchmark: one 10,000-artifact restore request against the Graph emulator with 50 ms latency.

    python -m bench.restore_bench [--artifacts 10000] [--latency-ms 50] [--concurrency 8]

Prints the Graph calls made, the wall time, the CPU time of the worker, the time a perfectly parallel
client bounded by the same concurrency would need, and the cold-start import time of function_app.
The emulators and Azurite run as separate processes, so the CPU figure is the worker's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.services import ROOT, local_services
from orchestrators.app.runtime import Runtime
from orchestrators.kernel.messages import InboundMessage
from orchestrators.kernel.settings import Settings


def import_time_ms(runs: int = 7) -> tuple[float, float]:
    """Median time to import function_app in a fresh interpreter, and the part azure.functions takes."""
    code = ("import time; t=time.perf_counter(); import azure.functions; t1=time.perf_counter(); "
            "import function_app; t2=time.perf_counter(); print((t2-t)*1000, (t1-t)*1000)")
    env = {**os.environ, "ServiceBusConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=a;SharedAccessKey=b",
           "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    totals, bases = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True).stdout.split()
        totals.append(float(out[0]))
        bases.append(float(out[1]))
    return statistics.median(totals), statistics.median(bases)


async def run(artifacts: int, latency_ms: int, concurrency: int) -> dict[str, Any]:
    with local_services(drives=int(artifacts * 1.05) + 50) as services:
        services.graph.set_faults([{"name": "latency", "latencyMs": latency_ms}])
        points = [p["id"] for p in services.graph.samples(artifacts)["restorePoints"]][:artifacts]
        env = services.settings_env(GRAPH_CREATE_CONCURRENCY=str(concurrency))
        settings = Settings.from_env(env)
        parts = await Runtime.create(settings)
        try:
            await parts.ledger.ensure_table()
            orchestrator = parts.restore_orchestrator()
            body = json.dumps({"requestId": "bench-1", "artifacts": [{"restorePointId": p} for p in points]}).encode()
            services.graph.clear_calls()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            outcome = await orchestrator.handle(InboundMessage(body=body, message_id="bench-msg"))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            calls = services.graph.calls()
        finally:
            await parts.aclose()
    sessions = math.ceil(artifacts / settings.max_artifacts_per_session)
    ideal = math.ceil(sessions / concurrency) * latency_ms / 1000
    return {"outcome": outcome.kind, "artifacts": artifacts, "sessions": sessions, "graph_calls": len(calls),
            "graph_writes": sum(1 for c in calls if c["method"] != "GET"), "wall_s": wall, "cpu_s": cpu,
            "ideal_s": ideal, "events": len(outcome.events)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    result = asyncio.run(run(args.artifacts, args.latency_ms, args.concurrency))
    total_ms, functions_ms = import_time_ms()
    print(f"restore request: {result['artifacts']} artifacts -> {result['sessions']} sessions ({result['outcome']})")
    print(f"  Graph calls:            {result['graph_calls']} ({result['graph_writes']} writes)")
    print(f"  wall time:              {result['wall_s']:.2f} s")
    print(f"  ideal (concurrency {args.concurrency}, {args.latency_ms} ms/call): {result['ideal_s']:.2f} s  "
          + (f"-> ratio {result['wall_s'] / result['ideal_s']:.2f}" if result["ideal_s"] else "(no latency: no bound)"))
    print(f"  worker CPU:             {result['cpu_s']:.2f} s ({result['cpu_s'] / result['sessions'] * 1000:.1f} ms "
          f"per session, ledger and events included)")
    print(f"  events published:       {result['events']}")
    print(f"cold start: import function_app {total_ms:.0f} ms median, of which azure.functions {functions_ms:.0f} ms "
          f"(loaded by the worker anyway); the app's own modules {total_ms - functions_ms:.0f} ms")


if __name__ == "__main__":
    main()
