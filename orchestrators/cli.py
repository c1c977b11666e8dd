"""`python -m orchestrators` (or `restore-orchestrator`): the service for a person at a terminal.

    submit FILE   validate locally, send to the restore-requests queue, print the message id
    plan FILE     the dry run, locally, as a table (no Graph, no Service Bus)
    events        follow a subscription of the events topic and print each event as it arrives
    demo          everything local: Graph emulator, Service Bus stand-in, Azurite, the app, a sample incident

Settings come from the environment, or from a `local.settings.json`-style file given with --settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .contracts import ValidationPolicy, decode_body, parse_restore_request
from .errors import Rejected
from .planner import plan_sessions
from .settings import DESTINATION_TYPES


def _load_settings_file(path: str | None) -> None:
    if not path:
        return
    values = json.loads(Path(path).read_text()).get("Values", {})
    for key, value in values.items():
        os.environ.setdefault(key, str(value))


def _policy() -> ValidationPolicy:
    allowed = tuple(v.strip() for v in os.environ.get("ALLOWED_DESTINATION_TYPES", "new,inPlace").split(",")
                    if v.strip() in DESTINATION_TYPES)
    return ValidationPolicy(int(os.environ.get("MAX_ARTIFACTS_PER_REQUEST", "10000")), allowed or DESTINATION_TYPES)


def _validate_file(path: str, message_id: str) -> Any:
    body = Path(path).read_bytes()
    try:
        return body, parse_restore_request(decode_body(body), message_id, _policy())
    except Rejected as rejected:
        print(f"{path}: the request would be rejected:", file=sys.stderr)
        for error in rejected.errors:
            print(f"  {error.field}: {error.message}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_plan(args: argparse.Namespace) -> int:
    _, request = _validate_file(args.file, "local-plan")
    cap = int(os.environ.get("MAX_ARTIFACTS_PER_SESSION", "50"))
    plans = plan_sessions(request.artifacts, cap)
    print(f"request {request.request_id}: {len(request.artifacts)} restore points -> {len(plans)} sessions "
          f"(at most {cap} each)")
    print(f"{'index':>5}  {'destination':<11}  {'points':>6}  first .. last")
    for plan in plans:
        ids = plan.restore_point_ids
        span = ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}"
        print(f"{plan.index:>5}  {plan.destination_type:<11}  {len(ids):>6}  {span}")
    return 0


async def _submit(args: argparse.Namespace) -> int:
    from azure.servicebus import ServiceBusMessage

    from .events import service_bus_client
    from .settings import Settings

    message_id = args.message_id or str(uuid.uuid4())
    body, request = _validate_file(args.file, message_id)
    settings = Settings.from_env()
    async with service_bus_client(settings.service_bus) as client, \
            client.get_queue_sender(settings.restore_requests_queue) as sender:
        await sender.send_messages(ServiceBusMessage(body, message_id=message_id,
                                                     content_type="application/json",
                                                     correlation_id=request.correlation_id))
    print(message_id)
    return 0


async def follow_events(subscription: str, count: int | None = None, idle_seconds: float | None = None,
                        out: Any = None) -> list[dict[str, Any]]:
    """Print events from a subscription of the events topic as they arrive (and return them)."""
    from .events import service_bus_client
    from .settings import Settings

    out = out or sys.stdout
    settings = Settings.from_env()
    seen: list[dict[str, Any]] = []
    async with service_bus_client(settings.service_bus) as client, client.get_subscription_receiver(
        settings.restore_events_topic, subscription, max_wait_time=idle_seconds
    ) as receiver:
        async for message in receiver:
            event = json.loads(b"".join(message.body))
            seen.append(event)
            print(format_event(event), file=out, flush=True)
            await receiver.complete_message(message)
            if count is not None and len(seen) >= count:
                break
    return seen


def format_event(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    detail = {k: v for k, v in data.items() if k not in ("requestId", "incidentId", "body")}
    if "restorePointIds" in detail and len(detail["restorePointIds"]) > 3:
        detail["restorePointIds"] = [*detail["restorePointIds"][:3], f"... {len(data['restorePointIds'])} in all"]
    if "sessions" in detail and len(detail["sessions"]) > 5:
        detail["sessions"] = [*detail["sessions"][:5], f"... {len(data['sessions'])} in all"]
    text = json.dumps(detail, separators=(", ", ": "))
    if len(text) > 400:
        text = text[:397] + "..."
    return f"{event.get('time', '')}  {event.get('type', ''):<26} {event.get('subject', '')}  {text}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="restore-orchestrator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help="a local.settings.json-style file to read settings from")
    sub = parser.add_subparsers(dest="command", required=True)
    p_submit = sub.add_parser("submit", help="validate a restore request file and send it")
    p_submit.add_argument("file")
    p_submit.add_argument("--message-id", help="defaults to a new GUID")
    p_plan = sub.add_parser("plan", help="show the sessions a request would create (locally)")
    p_plan.add_argument("file")
    p_events = sub.add_parser("events", help="print events from the events topic as they arrive")
    p_events.add_argument("--subscription", default="all")
    p_events.add_argument("--count", type=int, help="stop after this many events")
    p_events.add_argument("--idle", type=float, help="stop after this many seconds without an event")
    p_demo = sub.add_parser("demo", help="run everything locally with a sample incident")
    p_demo.add_argument("--drives", type=int, default=120)
    p_demo.add_argument("--artifacts", type=int, default=120)
    args = parser.parse_args(argv)
    _load_settings_file(args.settings)

    if args.command == "plan":
        return cmd_plan(args)
    if args.command == "submit":
        return asyncio.run(_submit(args))
    if args.command == "events":
        asyncio.run(follow_events(args.subscription, args.count, args.idle))
        return 0
    if args.command == "demo":
        from .demo import run_demo

        return asyncio.run(run_demo(drives=args.drives, artifacts=args.artifacts))
    parser.error(f"unknown command {args.command}")
    return 2
