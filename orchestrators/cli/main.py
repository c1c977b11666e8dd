"""`python -m orchestrators` (or `restore-orchestrator`): the service for a person at a terminal.

    submit FILE   validate locally, send to the restore-requests queue, print the message id
    plan FILE     the dry run, locally, as a table (no Graph, no Service Bus)
    events        follow a subscription of the events topic and print each event as it arrives
    browse ID     list what a browse session shows (top level, or a folder with --item-key) as a table
    status ID     a request's (or an incident's) sessions and progress; --watch until done, --json for scripts

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

from orchestrators.contracts import ValidationPolicy, decode_body, parse_restore_request
from orchestrators.kernel.errors import Rejected
from orchestrators.kernel.settings import DESTINATION_TYPES
from orchestrators.restore.planner import plan_sessions


def _load_settings_file(path: str | None) -> None:
    if not path:
        return
    values = json.loads(Path(path).read_text()).get("Values", {})
    for key, value in values.items():
        os.environ.setdefault(key, str(value))


def _policy() -> ValidationPolicy:
    allowed = tuple(v.strip() for v in os.environ.get("ALLOWED_DESTINATION_TYPES", "new,inPlace").split(",")
                    if v.strip() in DESTINATION_TYPES)
    return ValidationPolicy(int(os.environ.get("MAX_ARTIFACTS_PER_REQUEST", "10000")), allowed or DESTINATION_TYPES,
                            activation_supported=True)


def _validate_file(path: str, message_id: str) -> Any:
    body = Path(path).read_bytes()
    try:
        return body, parse_restore_request(decode_body(body), message_id, _policy())
    except Rejected as rejected:
        print(f"{path}: the request would be rejected:", file=sys.stderr)
        for error in rejected.errors:
            print(f"  {error.field}: {error.message}", file=sys.stderr)
        raise SystemExit(2) from None


def _selection_document(args: argparse.Namespace) -> bytes | None:
    """A restore request built from --users/--before (and friends), or None when no selection is given."""
    if not getattr(args, "users", None):
        return None
    if not args.before:
        raise SystemExit("--before (the point in time, ISO 8601 with a zone) is required with --users")
    users = [line.strip() for line in Path(args.users).read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    selection: dict[str, Any] = {"users": users, "pointInTime": args.before}
    if args.not_before:
        selection["notBefore"] = args.not_before
    if args.strategy:
        selection["strategy"] = args.strategy
    document: dict[str, Any] = {"requestId": args.request_id or f"cli-{uuid.uuid4().hex[:12]}",
                                "destinationType": args.destination, "selection": selection}
    return json.dumps(document).encode()


def _validate(body: bytes, label: str, message_id: str) -> Any:
    try:
        return parse_restore_request(decode_body(body), message_id, _policy())
    except Rejected as rejected:
        print(f"{label}: the request would be rejected:", file=sys.stderr)
        for error in rejected.errors:
            print(f"  {error.field}: {error.message}", file=sys.stderr)
        raise SystemExit(2) from None


async def plan_selection(request: Any, out: Any = None) -> int:
    """Resolve a selection through Graph (as the service would, nothing written) and print a row per drive."""
    from orchestrators.adapters.credentials import graph_credential
    from orchestrators.adapters.graph import GraphGateway
    from orchestrators.kernel.settings import Settings
    from orchestrators.selection.resolver import SelectionResolver

    out = out or sys.stdout
    settings = Settings.from_env()
    credential = graph_credential(settings)
    graph = GraphGateway.create(credential, settings.graph_base_url, timeout=settings.graph_timeout_seconds,
                                throttle_wait_limit=settings.graph_throttle_wait_limit_seconds)
    try:
        resolution = await SelectionResolver(settings, graph, None).resolve(request, record=False, search=True)
    finally:
        await graph.aclose()
        close = getattr(credential, "close", None)
        if close is not None and asyncio.iscoroutine(result := close()):
            await result
    summary = resolution.summary()
    print(f"request {request.request_id}: {summary['driveCount']} drives, {summary['resolvedDriveCount']} with a "
          f"restore point in [{summary['windowStart']}, {summary['windowEnd']}]; strategy {resolution.strategy}; "
          f"{graph.calls} Graph calls", file=out)
    print(f"{'selector':<40} {'protectionDateTime':<22} restorePointId / reason", file=out)
    for drive in resolution.drives:
        when = drive.protection_date_time or ""
        print(f"{drive.selector[:40]:<40} {when:<22} {drive.restore_point_id or drive.reason}", file=out)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    selection_body = _selection_document(args)
    if selection_body is not None or not args.file:
        if selection_body is None:
            raise SystemExit("give a request FILE, or --users FILE --before TIME")
        return asyncio.run(plan_selection(_validate(selection_body, "--users", "local-plan")))
    _, request = _validate_file(args.file, "local-plan")
    if request.selection is not None:
        return asyncio.run(plan_selection(request))
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

    from orchestrators.adapters.bus import service_bus_client
    from orchestrators.kernel.settings import Settings

    message_id = args.message_id or str(uuid.uuid4())
    selection_body = _selection_document(args)
    if selection_body is not None:
        body, request = selection_body, _validate(selection_body, "--users", message_id)
    elif args.file:
        body, request = _validate_file(args.file, message_id)
    else:
        raise SystemExit("give a request FILE, or --users FILE --before TIME")
    settings = Settings.from_env()
    async with service_bus_client(settings.service_bus) as client, \
            client.get_queue_sender(settings.restore_requests_queue) as sender:
        await sender.send_messages(ServiceBusMessage(body, message_id=message_id,
                                                     content_type="application/json",
                                                     correlation_id=request.correlation_id))
    print(message_id)
    return 0


async def follow_events(subscription: str, count: int | None = None, idle_seconds: float | None = None,
                        out: Any = None, seen: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Print events from a subscription of the events topic as they arrive (and collect them in `seen`)."""
    from orchestrators.adapters.bus import service_bus_client
    from orchestrators.kernel.settings import Settings

    out = out or sys.stdout
    settings = Settings.from_env()
    seen = [] if seen is None else seen
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


async def browse_listing(settings: Any, session_id: str, item_key: str | None = None, *,
                         page_size: int | None = None, all_pages: bool = False, out: Any = None,
                         err: Any = None) -> int:
    """Print a browse location as a table on `out` (one row per item); notes and errors go to `err`."""
    from orchestrators.adapters.credentials import graph_credential
    from orchestrators.adapters.graph import GraphGateway
    from orchestrators.kernel.errors import GraphRefused, RetryLater

    out, err = out or sys.stdout, err or sys.stderr
    credential = graph_credential(settings)
    graph = GraphGateway.create(credential, settings.graph_base_url, timeout=settings.graph_timeout_seconds,
                                throttle_wait_limit=settings.graph_throttle_wait_limit_seconds)
    shown, pages = 0, 0
    try:
        page = await graph.browse(session_id, item_key, page_size)
        print(f"{'type':<16} {'name':<40} {'items/size':>12}  itemKey", file=out)
        while True:
            pages += 1
            for item in page.items:
                print(format_browse_item(item), file=out)
            shown += len(page.items)
            if not page.next_link or not all_pages:
                break
            page = await graph.browse_next(page.next_link)
    except (GraphRefused, RetryLater) as failure:
        print(f"browse session {session_id}: {explain_browse_error(failure.error)}", file=err)
        return 1
    finally:
        await graph.aclose()
        close = getattr(credential, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result
    total = page.total if page.total is not None else shown
    more = " (more follow: use --all)" if page.next_link and not all_pages else ""
    print(f"{shown} of {total} items in {pages} page(s){more}", file=err)
    return 0


def format_browse_item(item: dict[str, Any]) -> str:
    kind = str(item.get("type") or "")
    if kind == "file":
        amount = _human_size(item.get("sizeInBytes"))
    else:
        count = item.get("itemsCount")
        amount = f"{count} items" if count is not None else ""
    name = str(item.get("name") or "")
    if len(name) > 40:
        name = name[:37] + "..."
    return f"{kind:<16} {name:<40} {amount:>12}  {item.get('itemKey', '')}"


def _human_size(raw: Any) -> str:
    try:
        size = float(raw)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def explain_browse_error(error: Any) -> str:
    """Graph's answer, said so that a responder at a terminal knows what to do next."""
    hints = {
        "BrowseSessionNotFound": "not found: browse sessions are deleted when they expire "
                                 "(expirationDateTime); request a new one for the restore point",
        "BrowseSessionNotReady": "still being created; try again in a few seconds",
        "InvalidBrowseLocationItemKey": "no item with that --item-key in this browse session",
    }
    hint = hints.get(error.code)
    text = f"{error.status} {error.code}: {error.message}"
    return f"{hint} ({text})" if hint else text


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="restore-orchestrator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help="a local.settings.json-style file to read settings from")
    sub = parser.add_subparsers(dest="command", required=True)
    p_submit = sub.add_parser("submit", help="validate a restore request file and send it")
    p_submit.add_argument("file", nargs="?")
    p_submit.add_argument("--message-id", help="defaults to a new GUID")
    p_plan = sub.add_parser("plan", help="show the sessions a request would create (a selection: per drive)")
    p_plan.add_argument("file", nargs="?")
    for p in (p_submit, p_plan):
        p.add_argument("--users", help="restore by point in time: a file of owner emails, one a line")
        p.add_argument("--before", help="the point in time (ISO 8601 with a zone), e.g. 2026-11-20T03:00Z")
        p.add_argument("--not-before", help="ignore restore points older than this (default: a year before)")
        p.add_argument("--strategy", choices=("auto", "standard", "bulk"))
        p.add_argument("--destination", choices=DESTINATION_TYPES, default="new")
        p.add_argument("--request-id", help="the requestId of a selection request (default: generated)")
    p_events = sub.add_parser("events", help="print events from the events topic as they arrive")
    p_events.add_argument("--subscription", default="all")
    p_events.add_argument("--count", type=int, help="stop after this many events")
    p_events.add_argument("--idle", type=float, help="stop after this many seconds without an event")
    p_browse = sub.add_parser("browse", help="list what a browse session shows, as a table")
    p_browse.add_argument("session_id", metavar="SESSION_ID")
    p_browse.add_argument("--item-key", help="the itemKey of a folder or library to list (default: top level)")
    p_browse.add_argument("--page-size", type=_positive, help="items per page (default: Graph's)")
    p_browse.add_argument("--all", action="store_true", help="follow every page to the end (default: the first)")
    p_status = sub.add_parser("status", help="a request's or an incident's sessions and progress")
    p_status.add_argument("target", metavar="REQUEST_OR_INCIDENT_ID")
    p_status.add_argument("--watch", action="store_true", help="refresh until every session has ended")
    p_status.add_argument("--json", action="store_true", help="print the status routes' JSON")
    args = parser.parse_args(argv)
    _load_settings_file(args.settings)

    if args.command == "status":
        from orchestrators.status.console import run

        return asyncio.run(run(args.target, watch=args.watch, as_json=args.json, out=sys.stdout))

    if args.command == "plan":
        return cmd_plan(args)
    if args.command == "submit":
        return asyncio.run(_submit(args))
    if args.command == "events":
        asyncio.run(follow_events(args.subscription, args.count, args.idle))
        return 0
    if args.command == "browse":
        from orchestrators.kernel.settings import Settings

        return asyncio.run(browse_listing(Settings.from_env(), args.session_id, args.item_key,
                                          page_size=args.page_size, all_pages=args.all))
    parser.error(f"unknown command {args.command}")
    return 2
