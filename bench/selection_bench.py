"""Benchmark: restore by point in time for many users, standard sessions against one bulk session.

    python -m bench.selection_bench [--users 10000] [--session-minutes 63] [--tracker-seconds 60]

For each strategy, one request names every user with `activate: true`. Printed: the wall time until the request
is accepted (resolution and creates), the Graph calls that took, by operation, and the emulated time until the
last drive is restored under the 25-session cap, with the tracker run every --tracker-seconds on a frozen Graph
clock advanced by hand (as in bench/activation_bench.py). The emulator gives every artifact of a session the same
duration, however many the session holds; real bulk sessions of thousands of drives take longer (Microsoft's
preview target: 1,000 drives in under 12 hours).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from bench.services import frozen_clock_graph_args, local_services
from orchestrators.messages import InboundMessage
from orchestrators.runtime import Runtime
from orchestrators.settings import Settings


async def run(users: int, strategy: str, session_seconds: int, tracker_seconds: int) -> dict[str, object]:
    graph_args = frozen_clock_graph_args(session_seconds)
    with local_services(drives=users, graph_args=graph_args) as services:
        emails = [d["email"] for d in services.graph.samples(users)["drives"]]
        env = services.settings_env()
        parts = await Runtime.create(Settings.from_env(env))
        point_in_time = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        try:
            await parts.ledger.ensure_table()
            services.graph.clear_calls()
            body = json.dumps({"requestId": f"bench-selection-{strategy}", "activate": True,
                               "selection": {"users": emails, "pointInTime": point_in_time,
                                             "strategy": strategy}}).encode()
            wall0 = time.perf_counter()
            outcome = await parts.restore_orchestrator().handle(InboundMessage(body=body, message_id="m"))
            accept_s = time.perf_counter() - wall0
            assert outcome.kind == "accepted", outcome
            calls = Counter(c["operation"] for c in services.graph.calls())
            tracker = parts.session_tracker()
            elapsed, last_done = 0, 0
            for _ in range(100_000):
                counts = services.graph.state(sessions=False)["statusCounts"]
                if not set(counts) & {"draft", "activating", "active"}:
                    break
                services.graph.advance(seconds=tracker_seconds)
                elapsed += tracker_seconds
                report = await tracker.run()
                if report.completed:
                    last_done = elapsed
            state = services.graph.state(sessions=False)
        finally:
            await parts.aclose()
    return {"strategy": strategy, "accept_s": accept_s, "calls": calls, "sessions": state["sessionCount"],
            "last_completed_s": last_done, "max_active": state["maxActiveObserved"],
            "wall_s": time.perf_counter() - wall0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--session-minutes", type=float, default=63.0)
    parser.add_argument("--tracker-seconds", type=int, default=60)
    parser.add_argument("--strategies", nargs="+", default=["standard", "bulk"])
    args = parser.parse_args()
    session_seconds = int(args.session_minutes * 60)
    print(f"{args.users} users; session duration {session_seconds} s (emulated), tracker every "
          f"{args.tracker_seconds} s, cap 25")
    for strategy in args.strategies:
        r = asyncio.run(run(args.users, strategy, session_seconds, args.tracker_seconds))
        calls: Counter[str] = r["calls"]  # type: ignore[assignment]
        detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
        print(f"{strategy:>8}: accepted after {r['accept_s']:.1f} s wall; {sum(calls.values())} Graph calls "
              f"({detail}); {r['sessions']} sessions; last drive restored after "
              f"{int(r['last_completed_s']) / 60:.0f} min (emulated); max active {r['max_active']}; "  # type: ignore[call-overload]
              f"real time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
