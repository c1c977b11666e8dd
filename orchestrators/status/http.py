"""The status routes' answers: ids checked against the contract's rules, the reader called once, JSON out.

Kept free of the Functions library (function_app.py wraps each answer in an `HttpResponse`) and of SDK imports
until the first call, so indexing the app stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrators.contracts.rules import is_request_id, text_field_problem

JSON = "application/json; charset=utf-8"
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, document: Any) -> Answer:
    return Answer(status, json.dumps(document, separators=(",", ":"), default=str).encode(),
                  {"Content-Type": JSON, **_NO_STORE})


def _error(status: int, code: str, message: str) -> Answer:
    return _json(status, {"error": {"code": code, "message": message}})


async def _reader() -> Any:
    from orchestrators.app import runtime
    from orchestrators.status.reader import StatusReader

    parts = await runtime.get_runtime()
    return StatusReader.from_settings(parts.ledger.table, parts.settings)


async def answer(route: str, params: dict[str, str], reader: Any = None) -> Answer:
    """The answer of one status route (`restore`, `incident`, `incidents`, `capacity`, `dashboard`), in a server
    span of its own when telemetry is on."""
    from orchestrators.kernel import tracing

    with tracing.invocation_span(f"status {route}", "server", {"http.request.method": "GET",
                                                                "http.route": route}) as span:
        result = await _answer(route, params, reader)
        if span is not None:
            span.set_attribute("http.response.status_code", result.status)
        return result


async def _answer(route: str, params: dict[str, str], reader: Any) -> Answer:
    if route == "dashboard":
        from orchestrators.status.page import CONTENT_SECURITY_POLICY, PAGE

        return Answer(200, PAGE.encode(), {"Content-Type": "text/html; charset=utf-8",
                                           "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                           "Referrer-Policy": "no-referrer", **_NO_STORE})
    if route == "restore":
        request_id = params.get("requestId", "")
        if not is_request_id(request_id):
            return _error(400, "invalidRequestId", "a requestId is 1 to 128 characters of A-Z a-z 0-9 . _ : -")
        reader = reader or await _reader()
        status = await reader.request(request_id)
        if status is None:
            return _error(404, "requestNotFound", f"no restore request {request_id!r} in the ledger")
        return _json(200, status)
    if route == "incident":
        incident_id = params.get("incidentId", "")
        problem = text_field_problem(incident_id, 128, printable=True) if incident_id else "must not be empty"
        if problem is not None:
            return _error(400, "invalidIncidentId", f"incidentId {problem}")
        reader = reader or await _reader()
        from orchestrators.status.view import incident_status

        statuses = await reader.incident(incident_id)
        if not statuses:
            return _error(404, "incidentNotFound", f"no request of incident {incident_id!r} in the ledger")
        return _json(200, incident_status(incident_id, statuses))
    reader = reader or await _reader()
    if route == "incidents":
        return _json(200, await reader.incidents())
    if route == "capacity":
        return _json(200, await reader.capacity())
    raise ValueError(f"unknown status route {route!r}")
