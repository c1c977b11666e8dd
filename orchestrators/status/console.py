"""`python -m orchestrators status`: a request's or an incident's sessions as a table with a progress bar per
request, read the same way the HTTP routes read them (`StatusReader`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from orchestrators.contracts.rules import is_request_id
from orchestrators.status.view import TERMINAL, incident_status

UNSETTLED = {"planned", "creating", "draft", "waiting", "activating", "active"}


def bar(done: int, total: int, width: int = 30) -> str:
    filled = round(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} artifacts settled"


def render_request(status: Mapping[str, Any]) -> str:
    totals = status["artifactTotals"]
    done = sum(n for k, n in totals.items() if k not in UNSETTLED)
    lines = [f"request {status['requestId']}  incident {status['incidentId'] or '-'}  state {status['state']}  "
             f"updated {status['updatedDateTime'] or '-'}",
             "  " + bar(done, sum(totals.values())),
             f"  {'#':>4}  {'session':<38} {'status':<19} {'waiting':>7}  {'dest':<8} {'points':>6}  error"]
    for s in status["sessions"]:
        waiting = f"#{s['queuePosition']}" if s["queuePosition"] else ("approve" if s["awaitingApproval"] else "")
        error = f"{s['error'].get('code', '')}: {s['error'].get('message', '')}"[:60] if s["error"] else ""
        lines.append(f"  {s['index']:>4}  {s['sessionId'] or '-':<38} {s['status']:<19} {waiting:>7}  "
                     f"{s['destinationType']:<8} {s['artifactCount']:>6}  {error}")
    if status["lastError"]:
        lines.append(f"  last error: {status['lastError'].get('code')}: {status['lastError'].get('message')}")
    return "\n".join(lines)


def settled(statuses: Sequence[Mapping[str, Any]]) -> bool:
    return all(s["state"] in ("completed", "failed", "rejected", "planned") and
               all(x["status"] in TERMINAL or x["status"] == "createFailed" for x in s["sessions"] if x["sessionId"])
               for s in statuses)


async def read(reader: Any, target: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the contract's JSON, the requests' statuses) for a request id or, failing that, an incident id."""
    if is_request_id(target):
        status = await reader.request(target)
        if status is not None:
            return status, [status]
    statuses = await reader.incident(target)
    return (incident_status(target, statuses) if statuses else None), statuses


async def show(reader: Any, target: str, *, watch: bool = False, as_json: bool = False, interval: float = 5.0,
               out: TextIO) -> int:
    while True:
        document, statuses = await read(reader, target)
        if document is None:
            print(f"no restore request or incident {target!r} in the ledger", file=out)
            return 1
        if as_json:
            print(json.dumps(document, indent=2, default=str), file=out, flush=True)
        else:
            print("\n\n".join(render_request(s) for s in statuses), file=out, flush=True)
        if not watch or settled(statuses):
            return 0
        await asyncio.sleep(interval)
        if not as_json:
            print(file=out)


async def run(target: str, *, watch: bool, as_json: bool, out: TextIO) -> int:
    from orchestrators.adapters.tables.ledger import Ledger
    from orchestrators.kernel.settings import Settings
    from orchestrators.status.reader import StatusReader

    settings = Settings.from_env()
    ledger = Ledger.from_settings(settings)
    try:
        return await show(StatusReader.from_settings(ledger.table, settings), target, watch=watch, as_json=as_json,
                          out=out)
    finally:
        await ledger.aclose()
