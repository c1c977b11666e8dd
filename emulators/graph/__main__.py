"""``python -m emulators.graph --host 127.0.0.1 --port 8765 --seed 1 --drives 200 --sites 50 --mailboxes 50``"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys

from aiohttp import web

from .app import GraphEmulatorApp
from .clock import parse_iso
from .config import EmulatorConfig
from .runner import SHUTDOWN_TIMEOUT_SECONDS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m emulators.graph", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (the banner shows which)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--drives", type=int, default=200, help="drive protection units in the seeded tenant")
    p.add_argument("--sites", type=int, default=None, help="site protection units (users' team sites; default 50)")
    p.add_argument("--mailboxes", type=int, default=None, help="mailbox protection units (default 50)")
    p.add_argument("--clock-scale", type=float, default=1.0, help="emulated seconds per real second")
    p.add_argument("--start-time", default=None, help="emulated start time (ISO 8601); default: now")
    p.add_argument("--active-cap", type=int, default=25, help="max sessions activating or active")
    p.add_argument("--activating-seconds", type=float, default=None)
    p.add_argument("--scheduled-seconds", type=float, default=None)
    p.add_argument("--in-progress-seconds", type=float, default=None,
                   help="fixed part of a session's inProgress phase, whatever its size")
    p.add_argument("--in-progress-per-artifact-seconds", type=float, default=None,
                   help="inProgress work on one artifact")
    p.add_argument("--in-progress-parallelism", type=int, default=None,
                   help="artifacts of one session worked on at a time")
    for workload in ("sharepoint", "exchange"):
        p.add_argument(f"--{workload}-in-progress-seconds", type=float, default=None,
                       help=f"as --in-progress-seconds, for {workload} sessions")
        p.add_argument(f"--{workload}-in-progress-per-artifact-seconds", type=float, default=None)
        p.add_argument(f"--{workload}-in-progress-parallelism", type=int, default=None)
    p.add_argument("--in-progress-jitter-seconds", type=float, default=None)
    p.add_argument("--browse-creating-seconds", type=float, default=None)
    p.add_argument("--browse-ttl-seconds", type=float, default=None)
    p.add_argument("--unprotected-fraction", type=float, default=None)
    p.add_argument("--faults", default=None, help="JSON file with a fault configuration (see README)")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    cfg = EmulatorConfig(
        seed=args.seed,
        drives=args.drives,
        active_cap=args.active_cap,
        clock_scale=args.clock_scale,
        start_time=parse_iso(args.start_time) if args.start_time else None,
    )
    optional = {
        "activating_seconds": args.activating_seconds,
        "scheduled_seconds": args.scheduled_seconds,
        "in_progress_seconds": args.in_progress_seconds,
        "in_progress_per_artifact_seconds": args.in_progress_per_artifact_seconds,
        "in_progress_parallelism": args.in_progress_parallelism,
        "in_progress_jitter_seconds": args.in_progress_jitter_seconds,
        "sites": args.sites,
        "mailboxes": args.mailboxes,
        **{f"{w}_in_progress_{part}": getattr(args, f"{w}_in_progress_{part}")
           for w in ("sharepoint", "exchange") for part in ("seconds", "per_artifact_seconds", "parallelism")},
        "browse_creating_seconds": args.browse_creating_seconds,
        "browse_ttl_seconds": args.browse_ttl_seconds,
        "unprotected_fraction": args.unprotected_fraction,
    }
    try:
        cfg.update({k: v for k, v in optional.items() if v is not None})
    except ValueError as exc:
        raise SystemExit(f"python -m emulators.graph: {exc}") from exc
    emulator = GraphEmulatorApp(cfg)
    if args.faults:
        with open(args.faults, encoding="utf-8") as fh:
            emulator.state.faults.configure(json.load(fh))
    # Bound here rather than by run_app, so that --port 0 works and the banner names the real port.
    sock = socket.create_server((args.host, args.port))
    args.port = sock.getsockname()[1]
    print(
        f"Graph emulator on http://{args.host}:{args.port}/v1.0 (seed={cfg.seed}, drives={cfg.drives}, "
        f"sites={cfg.sites}, mailboxes={cfg.mailboxes}, "
        f"cap={cfg.active_cap}, clock x{cfg.clock_scale}; a session is in progress {cfg.in_progress_seconds:g} s "
        f"+ {cfg.in_progress_per_artifact_seconds:g} s per {cfg.in_progress_parallelism} artifacts)",
        file=sys.stderr,
        flush=True,
    )
    # SIGINT and SIGTERM end run_app (it handles both); requests still running get SHUTDOWN_TIMEOUT_SECONDS.
    web.run_app(emulator.app, sock=sock, access_log=None, print=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
