"""``python -m emulators.functions_host``: run a function app locally until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from .host import FunctionsHost
from .http_triggers import DEFAULT_HTTP_PORT
from .loading import Trigger

log = logging.getLogger("emulators.functions_host")

# The CLI's grace for invocations in flight on SIGTERM/Ctrl-C. Guess: a local run should stop within a few
# seconds when told; how long the Functions host drains is not modelled. FunctionsHost's stop_timeout stays 30 s.
DEFAULT_CLI_STOP_TIMEOUT = 2.0


def _read_settings(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    values = doc.get("Values", doc)
    return {str(k): str(v) for k, v in values.items()}


def _source(trig: Trigger) -> str:
    if trig.kind == "serviceBus":
        return trig.entity
    return str(trig.binding.get("schedule")) if trig.kind == "timer" else "http"


def _describe(host: FunctionsHost) -> list[str]:
    """What the runner prints once it has started (the first line is what scripts wait for)."""
    lines = ["Functions: " + ", ".join(f"{t.name} ({_source(t)})" for t in host.triggers.values())]
    http_triggers = [t for t in host.triggers.values() if t.kind == "http"]
    if host.http is not None:
        for trig in http_triggers:
            methods = ",".join(trig.methods) or "all methods"
            lines.append(f"  {trig.name}: [{methods}] {host.http.url(trig)} (auth level {trig.auth_level})")
        lines.append(f"HTTP function key (the code query parameter or the x-functions-key header): {host.http_key}")
    return lines


async def _run(args: argparse.Namespace) -> None:
    # First, so that a stop signal during start-up is not lost either. The loop's wakeup fd sees a signal
    # whichever thread the kernel hands it to.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    settings = _read_settings(args.settings)
    standin = None
    if args.standin is not None:
        from emulators.servicebus import DEFAULT_CONFIG, ServiceBusStandIn

        standin = ServiceBusStandIn(config=args.standin or DEFAULT_CONFIG).start(port=args.standin_port)
        for key in [k for k in settings if k == "AzureWebJobsServiceBus" or "ServiceBus" in k]:
            if "__" not in key:
                settings[key] = standin.connection_string
        settings.setdefault("ServiceBusConnection", standin.connection_string)
        print(f"Service Bus stand-in: {standin.connection_string}", flush=True)
    host = FunctionsHost(
        args.app, settings=settings, host_json=args.host_json, run_timers=not args.no_timers, worker=args.worker,
        stop_timeout=args.stop_timeout, http_port=None if args.no_http else args.http_port, http_key=args.http_key,
    )
    try:
        async with host:
            for line in _describe(host):
                print(line, flush=True)
            await stop.wait()
            log.info("stopping: invocations in flight get %.1f s, then they are cancelled", args.stop_timeout)
    finally:
        if standin is not None:
            standin.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.functions_host",
        description="Run a function app's Service Bus, timer and HTTP functions locally.",
    )
    parser.add_argument("--app", default="function_app", help="module name or path of function_app.py")
    parser.add_argument("--settings", default=None, help="local.settings.json (its Values become app settings)")
    parser.add_argument("--host-json", default="host.json", help="host.json (extensions.serviceBus is honoured)")
    parser.add_argument("--no-timers", action="store_true", help="do not run timer functions on their schedule")
    parser.add_argument(
        "--standin",
        nargs="?",
        const="",
        default=None,
        metavar="CONFIG",
        help="also start the Service Bus stand-in (optionally with this Config.json) and point the app at it",
    )
    parser.add_argument("--standin-port", type=int, default=5672, help="0 picks a free port")
    parser.add_argument(
        "--http-port", type=int, default=DEFAULT_HTTP_PORT,
        help=f"port of the HTTP functions on 127.0.0.1 (default {DEFAULT_HTTP_PORT} as with func start; 0: a free one)",
    )
    parser.add_argument("--http-key", default=None, help="the key FUNCTION and ADMIN routes ask for (default: random)")
    parser.add_argument("--no-http", action="store_true", help="do not serve the HTTP functions")
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=DEFAULT_CLI_STOP_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, how long invocations in flight may run on before they are cancelled "
        f"(default {DEFAULT_CLI_STOP_TIMEOUT:g}); their messages come back once their locks expire",
    )
    parser.add_argument(
        "--worker",
        choices=("inproc", "real"),
        default="inproc",
        help="real: index, load and invoke the functions through azure-functions-runtime (Python 3.13+)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    # Until the loop installs its handlers, SIGTERM interrupts like Ctrl-C does (and ends the run cleanly).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
