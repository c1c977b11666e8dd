"""GraphGateway: the few Backup Storage calls the service makes, on msgraph-sdk's pipeline.

Requests go through the SDK's request adapter, so authentication (azure-identity), the retry,
redirect and telemetry middleware are the production ones. On the hot path (creating sessions)
the body is written and the answer read as plain JSON instead of through kiota's models: that cut
the CPU a create costs on the shared event loop several times over (see bench/). Every failed
answer becomes a `GraphError` and is classified in `errors.classify_graph_failure`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlparse

import httpx
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import ResponseHandlerOption, RetryHandlerOption
from msgraph import GraphRequestAdapter
from msgraph_core import GraphClientFactory

from orchestrators.kernel import tracing
from orchestrators.kernel.errors import GraphError, GraphRefused, OrchestrationError, RetryLater, classify_graph_failure

log = logging.getLogger(__name__)

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
_BACKUP = "{+baseurl}/solutions/backupRestore"
_NO_SDK_RETRY = RetryHandlerOption(delay=0, max_retries=0, should_retry=False)
_UNKNOWN_ENUMS = {"Prefer": "include-unknown-enum-members"}


@dataclass(frozen=True)
class CreatedSession:
    session_id: str
    status: str
    created_date_time: str | None


@dataclass(frozen=True)
class DraftSession:
    session_id: str
    created_date_time: datetime | None
    artifact_total: int | None
    application_id: str | None


@dataclass(frozen=True)
class RestorePointCheck:
    restore_point_id: str
    usable: bool
    reason: str | None = None
    protection_unit_id: str | None = None


@dataclass(frozen=True)
class RestorePointIdentity:
    """A restore point as browse session reads name it: its drive (`directoryObjectId`) and its time."""

    restore_point_id: str
    protection_date_time: str | None
    directory_object_id: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}


class _RawResponse:
    """Hands the httpx response back untouched, so we decode it once, our way."""

    async def handle_response_async(self, response: httpx.Response, error_map: Any) -> httpx.Response:
        await response.aread()
        return response


_RAW = ResponseHandlerOption(_RawResponse())  # type: ignore[arg-type]


def parse_graph_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.rstrip("Z")
    if "." in text:  # Graph sends up to 7 fractional digits; Python takes 6
        head, frac = text.split(".", 1)
        digits = "".join(ch for ch in frac if ch.isdigit())[:6]
        text = f"{head}.{digits}" if digits else head
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def graph_error_from_answer(answer: _Answer) -> GraphError:
    code, message = "UnknownError", f"HTTP {answer.status}"
    request_id = answer.headers.get("request-id")
    try:
        payload = json.loads(answer.body) if answer.body else {}
        err = payload.get("error", {}) if isinstance(payload, dict) else {}
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
        inner = err.get("innerError") or err.get("innererror") or {}
        request_id = inner.get("request-id") or request_id
    except (ValueError, AttributeError):
        pass
    retry_after: float | None = None
    raw_retry = answer.headers.get("Retry-After")
    if raw_retry:
        try:
            retry_after = max(0.0, float(raw_retry))
        except ValueError:
            retry_after = None
    return GraphError(answer.status, code, message, request_id, retry_after)


class GraphGateway:
    """One per worker: holds the request adapter (and its connection pool) across invocations."""

    def __init__(self, request_adapter: GraphRequestAdapter, base_url: str, *,
                 throttle_wait_limit: float = 30.0, application_id: str | None = None) -> None:
        self._adapter = request_adapter
        self._adapter.base_url = base_url.rstrip("/")
        self._throttle_wait_limit = throttle_wait_limit
        self._server = urlparse(base_url).hostname or ""
        self.application_id = application_id
        self.calls = 0

    @classmethod
    def create(cls, credential: Any, base_url: str, *, timeout: float = 60.0,
               throttle_wait_limit: float = 30.0, application_id: str | None = None) -> GraphGateway:
        """The production wiring: azure-identity credential -> kiota auth -> Graph middleware pipeline.

        Tokens are only ever attached to requests for the configured Graph host.
        """
        host = urlparse(base_url).hostname or ""
        auth = AzureIdentityAuthenticationProvider(credential, scopes=GRAPH_SCOPES, allowed_hosts=[host])
        http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0),
                                 limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        client = GraphClientFactory.create_with_default_middleware(client=http)
        adapter = GraphRequestAdapter(auth, client=client)
        return cls(adapter, base_url, throttle_wait_limit=throttle_wait_limit, application_id=application_id)

    async def aclose(self) -> None:
        client = getattr(self._adapter, "_http_client", None)
        if client is not None:
            await client.aclose()

    # -- transport ------------------------------------------------------------------------------

    async def _send(self, method: Method, template: str, params: dict[str, str] | None = None, *,
                    body: Any = None, raw_url: str | None = None, write: bool = False,
                    headers: dict[str, str] | None = None) -> _Answer:
        info = RequestInformation(method, template, dict(params or {}))
        if raw_url:
            info.path_parameters[RequestInformation.RAW_URL_KEY] = raw_url
        if body is not None:
            info.set_stream_content(json.dumps(body, separators=(",", ":")).encode(), "application/json")
        info.headers.try_add("Accept", "application/json")
        for key, value in (headers or {}).items():
            info.headers.try_add(key, value)
        options: list[Any] = [_RAW]
        if write:
            # A write retried blindly after a 5xx could create a second session: never let the
            # middleware do that. Throttling (429) is retried below, where it is known to be safe.
            options.append(_NO_SDK_RETRY)
        info.add_request_options(options)
        self.calls += 1
        if not tracing.enabled():
            return await self._exchange(info, write)
        with tracing.span(f"graph {method.value} {template}", "client", {
                "http.request.method": method.value, "url.template": template,
                "server.address": self._server, "restore.graph.write": write}) as span:
            answer = await self._exchange(info, write)
            tracing.set_attributes(span, {"http.response.status_code": answer.status,
                                          "restore.graph.request_id": answer.headers.get("request-id")})
            return answer

    async def _exchange(self, info: RequestInformation, write: bool) -> _Answer:
        try:
            response = await self._adapter.send_primitive_async(info, "bytes", None)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            error = GraphError(None, "ConnectionFailed", f"{type(exc).__name__}: {exc}".strip(": "))
            raise classify_graph_failure(error, write) from None
        assert isinstance(response, httpx.Response)
        return _Answer(response.status_code, response.headers, response.content)

    async def _call(self, method: Method, template: str, params: dict[str, str] | None = None, *,
                    body: Any = None, raw_url: str | None = None, write: bool = False,
                    ok: tuple[int, ...] = (200, 201, 204), headers: dict[str, str] | None = None) -> _Answer:
        """Send, waiting out short throttling (429 never applied the write), and map failures."""
        waited = 0.0
        delay = 1.0
        while True:
            answer = await self._send(method, template, params, body=body, raw_url=raw_url, write=write,
                                      headers=headers)
            if answer.status in ok:
                return answer
            error = graph_error_from_answer(answer)
            if answer.status == 429:
                pause = error.retry_after if error.retry_after is not None else delay
                tracing.count("graph.throttled")
                if waited + pause <= self._throttle_wait_limit:
                    log.info("Graph throttled %s; waiting %.1fs (request-id %s)", template, pause,
                             error.graph_request_id)
                    await asyncio.sleep(pause)
                    tracing.count("graph.throttle.wait", pause)
                    waited += pause
                    delay = min(delay * 2, 30.0)
                    continue
            raise classify_graph_failure(error, write)

    async def _pages(self, template: str, params: dict[str, str] | None = None,
                     headers: dict[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
        answer = await self._call(Method.GET, template, params, headers=headers)
        while True:
            page = answer.json()
            for item in page.get("value", []):
                yield item
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            answer = await self._call(Method.GET, template, raw_url=next_link, headers=headers)

    # -- restore sessions ------------------------------------------------------------------------

    async def create_restore_session(self, destination_type: str,
                                     restore_point_ids: Sequence[str]) -> CreatedSession:
        body = {
            "driveRestoreArtifacts": [
                {"restorePoint": {"id": rp}, "destinationType": destination_type} for rp in restore_point_ids
            ]
        }
        answer = await self._call(Method.POST, _BACKUP + "/oneDriveForBusinessRestoreSessions",
                                  body=body, write=True, ok=(200, 201))
        created = answer.json()
        session_id = created.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise RetryLater(GraphError(answer.status, "MalformedResponse",
                                        "Graph answered the create without a session id"),
                             outcome_unknown=True)
        return CreatedSession(session_id, str(created.get("status", "draft")), created.get("createdDateTime"))

    async def draft_sessions_since(self, since: datetime) -> list[DraftSession]:
        """Draft OneDrive sessions created at or after `since` (for reconciling a lost create answer)."""
        found: list[DraftSession] = []
        async for item in self._pages(_BACKUP + "/oneDriveForBusinessRestoreSessions"):
            if item.get("status") != "draft":
                continue
            created = parse_graph_time(item.get("createdDateTime"))
            if created is not None and created < since:
                continue
            counts = item.get("restoreSessionArtifactCount") or {}
            app = ((item.get("createdBy") or {}).get("application") or {}).get("id")
            found.append(DraftSession(str(item["id"]), created, counts.get("total"), app))
        return found

    async def session_restore_point_ids(self, session_id: str) -> set[str] | None:
        """The restore points of a session's drive artifacts; None when an artifact comes back without one
        (Graph shows `restorePoint` inline in the documented listing, but it is a relationship): then the
        session's content is unknown, which is not the same as different."""
        ids: set[str] = set()
        complete = True
        path = _BACKUP + "/oneDriveForBusinessRestoreSessions/{sid}/driveRestoreArtifacts"
        async for item in self._pages(path, {"sid": quote(session_id, safe="")}):
            point = item.get("restorePoint") or {}
            rp = point.get("id") or point.get("@odata.id")
            if rp:
                ids.add(str(rp))
            else:
                complete = False
        return ids if complete else None

    async def _restore_point(self, restore_point_id: str) -> dict[str, Any]:
        """GET restorePoints/{id}, with its protection unit.

        This call is in msgraph-sdk but not among restorePoint's documented methods. Those are List, which
        requires `$expand=protectionUnit($filter=id eq ...)` and a `$filter` on protectionDateTime (none on the
        restore point's own id), and Search, which takes protection unit ids: both need the drive that this
        lookup is meant to find. `protectionUnit` is a relationship, so it is asked for with `$expand`."""
        url = self._backup_url(f"restorePoints/{quote(restore_point_id, safe='')}", {"$expand": "protectionUnit"})
        answer = await self._call(Method.GET, _BACKUP + "/restorePoints/{rp}", raw_url=url)
        return dict(answer.json())

    async def restore_point_identity(self, restore_point_id: str) -> RestorePointIdentity | None:
        """The restore point's time and its drive's directoryObjectId, or None if Graph does not know it."""
        try:
            point = await self._restore_point(restore_point_id)
        except GraphRefused as refused:
            if refused.error.status in (400, 404):
                return None
            raise
        unit = point.get("protectionUnit") or {}
        directory_object_id = unit.get("directoryObjectId")
        if not directory_object_id and unit.get("id"):
            # The expanded unit may be shortened; the drive protection unit itself carries directoryObjectId.
            quoted = str(unit["id"]).replace("'", "''")
            found = await self.drive_protection_units(f"id eq '{quoted}'")
            directory_object_id = found[0].get("directoryObjectId") if found else None
        return RestorePointIdentity(restore_point_id, point.get("protectionDateTime"),
                                    str(directory_object_id) if directory_object_id else None)

    async def check_restore_point(self, restore_point_id: str) -> RestorePointCheck:
        """Is this restore point one Graph will accept? Used to isolate the bad ones of a batch."""
        try:
            point = await self._restore_point(restore_point_id)
        except GraphRefused as refused:
            if refused.error.status in (400, 404):
                return RestorePointCheck(restore_point_id, False, refused.error.code)
            raise
        expires = parse_graph_time(point.get("expirationDateTime"))
        unit = (point.get("protectionUnit") or {}).get("id")
        if expires is not None and expires <= datetime.now(UTC):
            return RestorePointCheck(restore_point_id, False, "RestorePointExpired", unit)
        return RestorePointCheck(restore_point_id, True, None, unit)

    # -- activation and tracking -----------------------------------------------------------------

    async def activate_session(self, session_id: str) -> dict[str, Any]:
        """POST activate: Graph answers with the session, normally `activating`."""
        answer = await self._call(Method.POST, _BACKUP + "/restoreSessions/{sid}/activate",
                                  {"sid": quote(session_id, safe="")}, write=True, ok=(200, 201, 202))
        return dict(answer.json())

    async def get_session(self, session_id: str) -> dict[str, Any]:
        """The session as Graph sees it, `failed` included (it is hidden without the Prefer header)."""
        answer = await self._call(Method.GET, _BACKUP + "/restoreSessions/{sid}",
                                  {"sid": quote(session_id, safe="")}, headers=_UNKNOWN_ENUMS)
        return dict(answer.json())

    async def session_artifacts(self, session_id: str) -> list[dict[str, Any]]:
        path = _BACKUP + "/oneDriveForBusinessRestoreSessions/{sid}/driveRestoreArtifacts"
        return [item async for item in self._pages(path, {"sid": quote(session_id, safe="")},
                                                   headers=_UNKNOWN_ENUMS)]

    async def delete_session(self, session_id: str) -> None:
        await self._call(Method.DELETE, _BACKUP + "/restoreSessions/{sid}", {"sid": quote(session_id, safe="")},
                         write=True, ok=(200, 202, 204))

    # -- selection -------------------------------------------------------------------------------

    def _backup_url(self, path: str, query: dict[str, str] | None = None) -> str:
        url = f"{self._adapter.base_url}/solutions/backupRestore/{path}"
        return f"{url}?{urlencode(query, quote_via=quote, safe='$')}" if query else url

    async def drive_protection_units(self, odata_filter: str | None = None,
                                     page_size: int = 1000) -> list[dict[str, Any]]:
        """Drive protection units: every one (paged), or those matching one `$filter` (eq) expression."""
        query = {"$filter": odata_filter} if odata_filter else {"$top": str(page_size)}
        url = self._backup_url("driveProtectionUnits", query)
        return [item async for item in self._pages_from(_BACKUP + "/driveProtectionUnits", url)]

    async def _pages_from(self, template: str, url: str) -> AsyncIterator[dict[str, Any]]:
        next_link: str | None = url
        while next_link:
            page = (await self._call(Method.GET, template, raw_url=next_link)).json()
            for item in page.get("value", []):
                yield item
            next_link = page.get("@odata.nextLink")

    async def search_restore_points(self, protection_unit_ids: Sequence[str], start: datetime, end: datetime,
                                    preference: str = "latest") -> dict[str, Any]:
        """`restorePoints/search` for at most 20 protection units: one restore point each, or none."""
        body = {"protectionUnitIds": list(protection_unit_ids),
                "protectionTimePeriod": {"startDateTime": _graph_time(start), "endDateTime": _graph_time(end)},
                "restorePointPreference": preference}
        answer = await self._call(Method.POST, _BACKUP + "/restorePoints/search", body=body, ok=(200,))
        return dict(answer.json())

    async def create_empty_restore_session(self) -> CreatedSession:
        """An empty OneDrive session, the first step of a bulk restore."""
        answer = await self._call(Method.POST, _BACKUP + "/oneDriveForBusinessRestoreSessions", body={},
                                  write=True, ok=(200, 201))
        created = answer.json()
        session_id = created.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise RetryLater(GraphError(answer.status, "MalformedResponse",
                                        "Graph answered the create without a session id"), outcome_unknown=True)
        return CreatedSession(session_id, str(created.get("status", "draft")), created.get("createdDateTime"))

    async def create_bulk_addition(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = _BACKUP + "/oneDriveForBusinessRestoreSessions/{sid}/driveRestoreArtifactsBulkAdditionRequests"
        answer = await self._call(Method.POST, path, {"sid": quote(session_id, safe="")}, body=body, write=True,
                                  ok=(200, 201))
        return dict(answer.json())

    async def bulk_additions(self, session_id: str) -> list[dict[str, Any]]:
        path = _BACKUP + "/oneDriveForBusinessRestoreSessions/{sid}/driveRestoreArtifactsBulkAdditionRequests"
        return [item async for item in self._pages(path, {"sid": quote(session_id, safe="")})]

    async def get_bulk_addition(self, session_id: str, bulk_id: str) -> dict[str, Any]:
        path = _BACKUP + "/oneDriveForBusinessRestoreSessions/{sid}/driveRestoreArtifactsBulkAdditionRequests/{bid}"
        answer = await self._call(Method.GET, path, {"sid": quote(session_id, safe=""),
                                                     "bid": quote(bulk_id, safe="")})
        return dict(answer.json())

    async def all_session_artifacts(self, session_id: str, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every artifact of a (bulk) session, in large pages."""
        url = self._backup_url(f"oneDriveForBusinessRestoreSessions/{quote(session_id, safe='')}/"
                               "driveRestoreArtifacts", {"$top": str(page_size)})
        path = _BACKUP + "/oneDriveForBusinessRestoreSessions/{sid}/driveRestoreArtifacts"
        return [item async for item in self._pages_from(path, url)]

    # -- browse sessions -------------------------------------------------------------------------

    async def create_browse_session(self, restore_point_id: str) -> BrowseSessionInfo:
        answer = await self._call(Method.POST, _BACKUP + "/oneDriveForBusinessBrowseSessions",
                                  body={"restorePointId": restore_point_id}, write=True, ok=(200, 201))
        info = BrowseSessionInfo.from_json(answer.json(), restore_point_id)
        if not info.session_id:
            raise RetryLater(GraphError(answer.status, "MalformedResponse",
                                        "Graph answered the browse session create without an id"),
                             outcome_unknown=True)
        return info

    async def get_browse_session(self, session_id: str) -> BrowseSessionInfo:
        answer = await self._call(Method.GET, _BACKUP + "/oneDriveForBusinessBrowseSessions/{bsid}",
                                  {"bsid": quote(session_id, safe="")})
        return BrowseSessionInfo.from_json(answer.json())

    async def browse_sessions_since(self, since: datetime) -> list[BrowseSessionInfo]:
        """Browse sessions created at or after `since` (for reconciling a lost create answer)."""
        found: list[BrowseSessionInfo] = []
        async for item in self._pages(_BACKUP + "/oneDriveForBusinessBrowseSessions"):
            created = parse_graph_time(item.get("createdDateTime"))
            if created is not None and created < since:
                continue
            found.append(BrowseSessionInfo.from_json(item))
        return found

    async def browse(self, session_id: str, item_key: str | None = None,
                     page_size: int | None = None) -> BrowsePage:
        """The first page of a browse location: the top level without a key, else the item's children."""
        url = f"{self._adapter.base_url}/solutions/backupRestore/oneDriveForBusinessBrowseSessions/" \
              f"{quote(session_id, safe='')}/browse"
        if page_size:
            url += f"?$top={int(page_size)}"
        body = {"browseLocationItemKey": item_key} if item_key else {}
        answer = await self._call(Method.POST, _BACKUP + "/oneDriveForBusinessBrowseSessions/{bsid}/browse",
                                  raw_url=url, body=body)
        return BrowsePage.from_json(answer.json())

    async def browse_next(self, next_link: str) -> BrowsePage:
        answer = await self._call(Method.GET, _BACKUP + "/oneDriveForBusinessBrowseSessions/{bsid}/browse",
                                  raw_url=next_link)
        return BrowsePage.from_json(answer.json())


@dataclass(frozen=True)
class BrowseSessionInfo:
    """A browse session as Graph describes it (status: creating, created, failed)."""

    session_id: str
    status: str
    restore_point_id: str | None = None
    created_date_time: str | None = None
    expiration_date_time: str | None = None
    restore_point_date_time: str | None = None
    backup_size_in_bytes: str | None = None
    directory_object_id: str | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, item: dict[str, Any], restore_point_id: str | None = None) -> BrowseSessionInfo:
        size = item.get("backupSizeInBytes")
        error = item.get("error")
        return cls(
            session_id=str(item.get("id") or ""),
            status=str(item.get("status") or "creating"),
            restore_point_id=item.get("restorePointId") or restore_point_id,
            created_date_time=item.get("createdDateTime"),
            expiration_date_time=item.get("expirationDateTime"),
            restore_point_date_time=item.get("restorePointDateTime"),
            backup_size_in_bytes=None if size is None else str(size),
            directory_object_id=item.get("directoryObjectId"),
            error=error if isinstance(error, dict) and error else None,
        )


@dataclass(frozen=True)
class BrowsePage:
    """One page of a browse answer; `next_link` is set while more items follow."""

    items: tuple[dict[str, Any], ...]
    total: int | None
    next_link: str | None

    @classmethod
    def from_json(cls, page: dict[str, Any]) -> BrowsePage:
        total = page.get("@odata.count")
        return cls(tuple(page.get("value") or ()), total if isinstance(total, int) else None,
                   page.get("@odata.nextLink") or None)


__all__ = [
    "BrowsePage",
    "BrowseSessionInfo",
    "CreatedSession",
    "DraftSession",
    "GraphGateway",
    "OrchestrationError",
    "RestorePointCheck",
    "RestorePointIdentity",
    "parse_graph_time",
]
