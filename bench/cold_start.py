"""Benchmark: the first invocation on a cold worker, phase by phase.

    python -m bench.cold_start [--runs 5] [--artifacts 50]

Each run starts a fresh interpreter (a cold worker), imports `function_app` as the worker's indexing does, then
hands the restore function one message of N restore points, as the host would, against the local stand-ins
(Graph emulator, Service Bus stand-in, Azurite). Printed per phase (median of the runs): the import, the first
invocation (SDK imports, client creation, the ledger table check, parsing, Graph, the ledger, publishing), and a
second invocation on the same worker for comparison. The goal for the first invocation is <= 0.6 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid

from bench.services import ROOT, local_services

CHILD = r"""
import asyncio, json, sys, time, types
t0 = time.perf_counter()
import azure.functions as func
t1 = time.perf_counter()

points = json.loads(sys.argv[1])

def message(request_id, chunk):
    body = json.dumps({"requestId": request_id, "artifacts": [{"restorePointId": p} for p in chunk]}).encode()
    # What the restore function reads of the host's message (the worker builds the real type from RPC data).
    return types.SimpleNamespace(get_body=lambda: body, message_id=request_id + "-msg", delivery_count=1,
                                 correlation_id=None, content_type="application/json", enqueued_time_utc=None,
                                 application_properties={})

async def main():
    # The worker indexes the app from its running event loop, as here.
    global t2
    import function_app
    t2 = time.perf_counter()
    from orchestrators.app import entrypoints

    await asyncio.sleep(float(sys.argv[3]))  # the host starting its listeners after loading the functions
    half = len(points) // 2
    a = time.perf_counter()
    first = await entrypoints.handle_restore_request(message(sys.argv[2] + "-1", points[:half]))
    b = time.perf_counter()
    second = await entrypoints.handle_restore_request(message(sys.argv[2] + "-2", points[half:]))
    c = time.perf_counter()
    print(json.dumps({"functions": t1 - t0, "app": t2 - t1, "first": b - a, "second": c - b,
                      "outcomes": [first.kind, second.kind]}))

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--artifacts", type=int, default=50, help="restore points per invocation")
    parser.add_argument("--start-gap-ms", type=int, default=0,
                        help="time between indexing and the first message (the host opening its listeners)")
    args = parser.parse_args()
    with local_services(drives=2 * args.artifacts * args.runs + 50) as services:
        points = [p["id"] for p in services.graph.samples(2 * args.artifacts * args.runs)["restorePoints"]]
        results = []
        for run in range(args.runs):
            mine = points[2 * args.artifacts * run: 2 * args.artifacts * (run + 1)]
            env = {**os.environ, **services.settings_env(), "PYTHONPATH": str(ROOT)}
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(mine), f"cold-{uuid.uuid4().hex[:8]}",
                                  str(args.start_gap_ms / 1000)],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert all(r["outcomes"] == ["accepted", "accepted"] for r in results), results

    def median_ms(key: str) -> float:
        return statistics.median(r[key] for r in results) * 1000

    print(f"cold start over {args.runs} fresh workers, {args.artifacts} restore points per invocation, first message "
          f"{args.start_gap_ms} ms after indexing (median):")
    print(f"  import azure.functions (the worker's own):   {median_ms('functions'):7.0f} ms")
    print(f"  import function_app (indexing):              {median_ms('app'):7.0f} ms")
    print(f"  first invocation (cold clients):             {median_ms('first'):7.0f} ms   goal <= 600 ms")
    print(f"  second invocation (warm):                    {median_ms('second'):7.0f} ms")


if __name__ == "__main__":
    main()
