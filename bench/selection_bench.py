"""Benchmark: restore by point in time for many users, standard sessions against one bulk session.

    python -m bench.selection_bench [--users 10000] [--fixed-minutes 168] [--per-artifact-minutes 12]
                                    [--parallelism 50] [--tracker-seconds 60]

For each strategy, one request names every user with `activate: true`. Printed: the wall time until the request
is accepted (resolution and creates), the Graph calls that took, by operation, and the emulated time until the
last drive is restored under the 25-session cap, with the tracker run every --tracker-seconds on a frozen Graph
clock advanced by hand (as in bench/activation_bench.py). Sessions last fixed + ceil(artifacts / parallelism) *
per-artifact (the emulator's defaults: Microsoft's published restore times), so the bulk session of every drive
takes far longer than a standard session of 50. Also printed: what the service estimates for each strategy
with the same model, and what `strategy: auto` chooses from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from bench.activation_bench import add_model_options, graph_args, model_from, model_settings
from bench.services import local_services
from orchestrators.app.runtime import Runtime
from orchestrators.kernel.messages import InboundMessage
from orchestrators.kernel.settings import Settings
from orchestrators.selection.resolver import AutoStrategy, SessionDurationModel, choose_strategy


async def run(users: int, strategy: str, model: SessionDurationModel, tracker_seconds: int) -> dict[str, object]:
    with local_services(drives=users, graph_args=graph_args(model)) as services:
        emails = [d["email"] for d in services.graph.samples(users)["drives"]]
        env = services.settings_env(**model_settings(model))
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
    add_model_options(parser)
    parser.add_argument("--tracker-seconds", type=int, default=60)
    parser.add_argument("--strategies", nargs="+", default=["standard", "bulk"])
    args = parser.parse_args()
    model = model_from(args)
    print(f"{args.users} users; session duration {model.fixed_seconds:g} s + {model.per_artifact_seconds:g} s per "
          f"{model.parallelism} artifacts (emulated), tracker every {args.tracker_seconds} s, cap 25")
    settings = Settings.from_env({"ServiceBusConnection": "Endpoint=sb://127.0.0.1;", "AzureWebJobsStorage": "-",
                                  **model_settings(model)})
    auto = AutoStrategy.from_settings(settings)
    estimate = auto.estimate([args.users])
    bulk = "-" if estimate.bulk_seconds is None else f"{estimate.bulk_seconds / 60:.0f} min"
    print(f"service estimate: standard {estimate.standard_seconds / 60:.0f} min, bulk {bulk}; "
          f"auto chooses {choose_strategy('auto', [args.users], auto)}")
    for strategy in args.strategies:
        r = asyncio.run(run(args.users, strategy, model, args.tracker_seconds))
        calls: Counter[str] = r["calls"]  # type: ignore[assignment]
        detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
        print(f"{strategy:>8}: accepted after {r['accept_s']:.1f} s wall; {sum(calls.values())} Graph calls "
              f"({detail}); {r['sessions']} sessions; last drive restored after "
              f"{int(r['last_completed_s']) / 60:.0f} min (emulated); max active {r['max_active']}; "  # type: ignore[call-overload]
              f"real time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
