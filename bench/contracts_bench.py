"""Benchmark: the cost of validating a request, from the message bytes to the domain object.

    python -m bench.contracts_bench [--runs 200]

Prints, in microseconds (median of many runs), the time to decode and validate a 50-artifact and a
10,000-artifact restore request, a point-in-time restore request, a browse request and an activation request,
and the cold import time of `orchestrators.contracts` (median of fresh interpreters). Validation runs once per
message on the worker, so a 10,000-artifact request must stay far below the time of one Graph call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrators.activation.coordinator import parse_activation_request
from orchestrators.contracts import ValidationPolicy, decode_body, parse_browse_request, parse_restore_request

ROOT = Path(__file__).resolve().parents[1]
POLICY = ValidationPolicy(max_artifacts_per_request=10_000, allowed_destination_types=("new", "inPlace"))


def restore_body(artifacts: int) -> bytes:
    points = [{"restorePointId": f"1f1fccc3-a642-4f61-bf49-{i:012d}"} for i in range(artifacts)]
    for item in points[::7]:
        item["destinationType"] = "inPlace"
    return json.dumps({"requestId": f"bench-r-{artifacts}", "incidentId": "INC-4711", "requestedBy": "bench",
                       "reason": "benchmark", "destinationType": "new", "artifacts": points,
                       "activate": False, "dryRun": False}).encode()


SELECTION_BODY = json.dumps({"requestId": "bench-s", "incidentId": "INC-4711", "selection": {
    "users": [f"user{i:05d}@contoso.com" for i in range(50)], "pointInTime": "2026-11-20T03:00:00Z"}}).encode()
BROWSE_BODY = json.dumps({"requestId": "bench-b", "incidentId": "INC-4711",
                          "restorePointIds": [f"1f1fccc3-a642-4f61-bf49-{i:012d}" for i in range(10)]}).encode()
ACTIVATION_BODY = json.dumps({"sessionIds": [f"959ba739-{i:04d}" for i in range(10)]}).encode()


def median_us(work: Callable[[], Any], runs: int) -> float:
    work()  # warm up (and, after a change to lazy building, pay the one-off cost outside the figure)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def import_ms(runs: int) -> float:
    """Median import time of orchestrators.contracts in a fresh interpreter (what a cold worker pays)."""
    code = "import time; t=time.perf_counter(); import orchestrators.contracts; print((time.perf_counter()-t)*1000)"
    samples = [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ),
                                    capture_output=True, text=True, check=True).stdout) for _ in range(runs)]
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per figure (the 10,000-artifact one: a tenth)")
    parser.add_argument("--import-runs", type=int, default=7)
    args = parser.parse_args(argv)

    small, large = restore_body(50), restore_body(10_000)
    cases: list[tuple[str, Callable[[], Any], int]] = [
        ("restore, 50 artifacts", lambda: parse_restore_request(decode_body(small), "m", POLICY), args.runs),
        ("restore, 10,000 artifacts", lambda: parse_restore_request(decode_body(large), "m", POLICY),
         max(5, args.runs // 10)),
        ("restore, selection of 50 users", lambda: parse_restore_request(decode_body(SELECTION_BODY), "m", POLICY),
         args.runs),
        ("browse, 10 restore points", lambda: parse_browse_request(decode_body(BROWSE_BODY), "m"), args.runs),
        ("activation, 10 session ids", lambda: parse_activation_request(decode_body(ACTIVATION_BODY), "m"),
         args.runs),
    ]
    for name, work, runs in cases:
        print(f"{name:34s} {median_us(work, runs):12.1f} us  (median of {runs})")
    large_doc = json.loads(large)
    print(f"{'  of which validation (10,000)':34s} "
          f"{median_us(lambda: parse_restore_request(large_doc, 'm', POLICY), max(5, args.runs // 10)):12.1f} us")
    print(f"{'import orchestrators.contracts':34s} {import_ms(args.import_runs) * 1000:12.1f} us  "
          f"(median of {args.import_runs} fresh interpreters)")


if __name__ == "__main__":
    main()
