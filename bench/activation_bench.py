"""Benchmark: time until the last OneDrive is restored under Graph's 25-active-session cap.

    python -m bench.activation_bench [--drives 1000 10000] [--session-minutes 63] [--tracker-seconds 60]

For each size, one request with `activate: true` is created and the tracker runs on its schedule while the
Graph emulator's clock advances (a frozen clock moved by hand, so an hour of restores takes seconds). The
lower bound is what the cap allows at best: ceil(sessions / 25) waves of one session duration each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time

from bench.services import frozen_clock_graph_args, local_services
from orchestrators.messages import InboundMessage
from orchestrators.runtime import Runtime
from orchestrators.settings import Settings


async def run(drives: int, session_seconds: int, tracker_seconds: int) -> dict[str, float]:
    graph_args = frozen_clock_graph_args(session_seconds)
    with local_services(drives=drives, graph_args=graph_args) as services:
        points = [p["id"] for p in services.graph.samples(drives)["restorePoints"]][:drives]
        env = services.settings_env()
        parts = await Runtime.create(Settings.from_env(env))
        wall0 = time.perf_counter()
        try:
            await parts.ledger.ensure_table()
            body = json.dumps({"requestId": "bench-activation", "activate": True,
                               "artifacts": [{"restorePointId": p} for p in points]}).encode()
            outcome = await parts.restore_orchestrator().handle(InboundMessage(body=body, message_id="m"))
            assert outcome.kind == "accepted", outcome
            sessions = math.ceil(drives / 50)
            tracker = parts.session_tracker()
            elapsed, last_done = 0, 0
            for _ in range(100_000):
                state = services.graph.state(sessions=False)
                counts = state["statusCounts"]
                if not set(counts) & {"draft", "activating", "active"}:
                    break
                services.graph.advance(seconds=tracker_seconds)
                elapsed += tracker_seconds
                report = await tracker.run()
                if report.completed:
                    last_done = elapsed
            max_active = services.graph.state(sessions=False)["maxActiveObserved"]
        finally:
            await parts.aclose()
    waves = math.ceil(sessions / 25)
    return {"drives": drives, "sessions": sessions, "last_completed_s": last_done,
            "lower_bound_s": waves * session_seconds, "max_active": max_active,
            "wall_s": time.perf_counter() - wall0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drives", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--session-minutes", type=float, default=63.0,
                        help="emulated duration of one session, activate to done (default 63)")
    parser.add_argument("--tracker-seconds", type=int, default=60, help="tracker interval (default 60)")
    args = parser.parse_args()
    session_seconds = int(args.session_minutes * 60)
    print(f"session duration {session_seconds} s (emulated), tracker every {args.tracker_seconds} s, cap 25")
    for drives in args.drives:
        r = asyncio.run(run(drives, session_seconds, args.tracker_seconds))
        print(f"{r['drives']:>6} OneDrives, {r['sessions']:>3} sessions: last session done after "
              f"{r['last_completed_s'] / 60:.0f} min; lower bound {r['lower_bound_s'] / 60:.0f} min; "
              f"ratio {r['last_completed_s'] / r['lower_bound_s']:.3f}; max active {r['max_active']}; "
              f"real time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
