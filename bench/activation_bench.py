"""Benchmark: time until the last OneDrive is restored under Graph's 25-active-session cap.

    python -m bench.activation_bench [--drives 1000 10000] [--fixed-minutes 168] [--per-artifact-minutes 12]
                                     [--parallelism 50] [--tracker-seconds 60]

For each size, one request with `activate: true` is created and the tracker runs on its schedule while the
Graph emulator's clock advances (a frozen clock moved by hand, so a day of restores takes minutes). A session
lasts fixed + ceil(artifacts / parallelism) * per-artifact from activation to its last artifact; the defaults
are the emulator's, fitted to Microsoft's published restore times (3 hours for 50 OneDrives). The lower bound
is what the cap allows at best: the sessions activated in order, each as soon as a slot is free (waves of 25),
without the tracker's polling delay, as the service's own estimate (orchestrators.selection.resolver) computes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.services import frozen_clock_graph_args, local_services
from emulators.graph.config import EmulatorConfig
from orchestrators.app.runtime import Runtime
from orchestrators.kernel.messages import InboundMessage
from orchestrators.kernel.settings import Settings
from orchestrators.selection.resolver import SessionDurationModel, completion_seconds, standard_session_sizes

CAP = 25


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options for the session duration model; the defaults are the Graph emulator's."""
    emulator = EmulatorConfig()
    fixed = emulator.activating_seconds + emulator.scheduled_seconds + emulator.in_progress_seconds
    parser.add_argument("--fixed-minutes", type=float, default=fixed / 60,
                        help=f"part of a session's duration that does not depend on its size (default {fixed / 60:g})")
    parser.add_argument("--per-artifact-minutes", type=float, default=emulator.in_progress_per_artifact_seconds / 60,
                        help="work on one artifact (default %(default)g)")
    parser.add_argument("--parallelism", type=int, default=emulator.in_progress_parallelism,
                        help="artifacts of one session worked on at a time (default %(default)s)")


def model_from(args: argparse.Namespace) -> SessionDurationModel:
    return SessionDurationModel(round(args.fixed_minutes * 60), round(args.per_artifact_minutes * 60),
                                args.parallelism)


def graph_args(model: SessionDurationModel) -> tuple[str, ...]:
    """Emulator options: a frozen clock and sessions that follow `model` from activation to the end."""
    return (*frozen_clock_graph_args(int(model.fixed_seconds)), "--in-progress-per-artifact-seconds",
            str(model.per_artifact_seconds), "--in-progress-parallelism", str(model.parallelism))


def model_settings(model: SessionDurationModel) -> dict[str, str]:
    """The service's settings for the same model (what `auto` estimates with)."""
    return {"ONEDRIVE_SESSION_FIXED_SECONDS": str(model.fixed_seconds),
            "ONEDRIVE_SESSION_PER_ARTIFACT_SECONDS": str(model.per_artifact_seconds),
            "ONEDRIVE_SESSION_PARALLELISM": str(model.parallelism)}


async def run(drives: int, model: SessionDurationModel, tracker_seconds: int) -> dict[str, float]:
    with local_services(drives=drives, graph_args=graph_args(model)) as services:
        points = [p["id"] for p in services.graph.samples(drives)["restorePoints"]][:drives]
        env = services.settings_env(**model_settings(model))
        parts = await Runtime.create(Settings.from_env(env))
        wall0 = time.perf_counter()
        try:
            await parts.ledger.ensure_table()
            body = json.dumps({"requestId": "bench-activation", "activate": True,
                               "artifacts": [{"restorePointId": p} for p in points]}).encode()
            outcome = await parts.restore_orchestrator().handle(InboundMessage(body=body, message_id="m"))
            assert outcome.kind == "accepted", outcome
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
    sizes = standard_session_sizes([drives], 50)
    return {"drives": drives, "sessions": len(sizes), "last_completed_s": last_done,
            "lower_bound_s": completion_seconds(sizes, CAP, model), "max_active": max_active,
            "wall_s": time.perf_counter() - wall0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drives", type=int, nargs="+", default=[1000, 10_000])
    add_model_options(parser)
    parser.add_argument("--tracker-seconds", type=int, default=60, help="tracker interval (default 60)")
    args = parser.parse_args()
    model = model_from(args)
    print(f"session duration {model.fixed_seconds:g} s + {model.per_artifact_seconds:g} s per "
          f"{model.parallelism} artifacts (emulated; {model.seconds(50) / 60:g} min for 50), "
          f"tracker every {args.tracker_seconds} s, cap {CAP}")
    for drives in args.drives:
        r = asyncio.run(run(drives, model, args.tracker_seconds))
        print(f"{r['drives']:>6} OneDrives, {r['sessions']:>3} sessions: last session done after "
              f"{r['last_completed_s'] / 60:.0f} min; lower bound {r['lower_bound_s'] / 60:.0f} min; "
              f"ratio {r['last_completed_s'] / r['lower_bound_s']:.3f}; max active {r['max_active']}; "
              f"real time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
