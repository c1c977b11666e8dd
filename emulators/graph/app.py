"""The aiohttp application: Graph routes under /v1.0 and /beta, and the admin surface under /_emulator.

The restore routes of the three workloads are generated from their descriptions (workloads.py) and share one
set of handlers; every route goes through the same wrapper (faults, throttling, auth, call log).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import auth
from .auth import Principal, TokenCache, TokenError
from .clock import Clock, iso, parse_iso
from .config import EXCHANGE, ONEDRIVE, SHAREPOINT, EmulatorConfig
from .errors import GraphError, bad_request, is_guid
from .seed import Mailbox, Site, Tenant, Unit
from .state import Artifact, EmulatorState, Session, decode_token, encode_token, time_period
from .workloads import SPECS, Workload

PREFIXES = ("/v1.0", "/beta")
R = "/solutions/backupRestore"
ODB = R + "/oneDriveForBusinessRestoreSessions"
BS = R + "/oneDriveForBusinessBrowseSessions"
JSON_CT = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

Payload = dict[str, Any] | None
Result = tuple[int, Payload]


@dataclass(slots=True)
class Ctx:
    request: web.Request
    now: float
    principal: Principal
    base: str  # e.g. http://127.0.0.1:8765/v1.0
    body: Any = None
    workload: str | None = None  # the route's workload (None: a generic route such as restoreSessions/{id})

    @property
    def spec(self) -> Workload:
        assert self.workload is not None
        return SPECS[self.workload]

    @property
    def identity(self) -> dict[str, Any]:
        return self.principal.identity_set()

    def match(self, name: str) -> str:
        return self.request.match_info[name]

    @property
    def include_unknown(self) -> bool:
        prefer = self.request.headers.get("Prefer")
        return prefer is not None and "include-unknown-enum-members" in prefer


Handler = Callable[[Ctx], Result]


class GraphEmulatorApp:
    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock = Clock(start=self.config.start_time, scale=self.config.clock_scale)
        self.state = EmulatorState(self.config, self.clock.now())
        self.tokens = TokenCache()
        self.calls: deque[dict[str, Any]] = deque(maxlen=self.config.call_log_size)
        self.call_seq = 0
        self.app = web.Application(middlewares=[self._not_found_middleware], client_max_size=64 * 1024 * 1024)
        self._register_graph_routes()
        self._register_admin_routes()

    # ---- plumbing ----------------------------------------------------------------------------------------------
    @web.middleware
    async def _not_found_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            path = request.path
            if not path.startswith(PREFIXES):
                raise
            t0 = time.perf_counter()
            rid = str(uuid.uuid4())
            crid = request.headers.get("client-request-id") or rid
            segment = path.rstrip("/").rsplit("/", 1)[-1]
            if isinstance(exc, web.HTTPMethodNotAllowed):
                err = GraphError(405, "Request_BadRequest", f"The {request.method} method is not allowed on {path}.")
            else:
                err = GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
            resp = self._error_response(err, rid, crid)
            self._log(request, "unknown", resp.status, 0, resp.content_length or 0, rid, crid, t0, "")
            return resp

    def _error_response(self, err: GraphError, rid: str, crid: str) -> web.Response:
        body = {
            "error": {
                "code": err.code,
                "message": err.message,
                "innerError": {
                    "date": iso(time.time()).split(".")[0].rstrip("Z") + "Z",
                    "request-id": rid,
                    "client-request-id": crid,
                },
            }
        }
        headers = {"request-id": rid, "client-request-id": crid, "Content-Type": JSON_CT, **err.headers}
        return web.Response(status=err.status, body=_dumps(body).encode(), headers=headers)

    def _log(
        self,
        request: web.Request,
        op: str,
        status: int,
        req_bytes: int,
        resp_bytes: int,
        rid: str,
        crid: str,
        t0: float,
        fault: str,
        workload: str | None = None,
    ) -> None:
        self.call_seq += 1
        self.calls.append(
            {
                "seq": self.call_seq,
                "time": iso(self.clock.now()),
                "wallTime": time.time(),
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "operation": op,
                "status": status,
                "requestBytes": req_bytes,
                "responseBytes": resp_bytes,
                "requestId": rid,
                "clientRequestId": crid,
                "durationMs": round((time.perf_counter() - t0) * 1000, 3),
                "fault": fault,
                "workload": workload,
            }
        )

    def _workload_of(self, request: web.Request) -> str | None:
        """The workload of the session or browse session a generic route names (for faults and the call log)."""
        info = request.match_info
        sid = info.get("sid")
        if sid is not None:
            session = self.state.sessions.get(sid.lower())
            return session.workload if session is not None else None
        bsid = info.get("bsid")
        if bsid is not None:
            browse = self.state.browse_sessions.get(bsid)
            return browse.workload if browse is not None else None
        return None

    def _wrap(
        self, op: str, perm: frozenset[str], fn: Handler, *, has_body: bool, workload: str | None = None
    ) -> Callable[..., Any]:
        faults = self.state_faults
        tokens = self.tokens

        async def handler(request: web.Request) -> web.StreamResponse:
            t0 = time.perf_counter()
            rid = str(uuid.uuid4())
            crid = request.headers.get("client-request-id") or rid
            req_bytes = 0
            fault_name = ""
            inj = None
            wl = workload or self._workload_of(request)
            try:
                inj = faults().decide(request.method, _subpath(request.path), op, wl)
                if inj is not None:
                    # the rule that decided the answer; "fault" for added latency only; "" if nothing happened
                    fault_name = inj.rule or ("fault" if inj.delay else "")
                    if inj.delay:
                        await asyncio.sleep(inj.delay)
                    if inj.drop:
                        transport = request.transport
                        if transport is not None:
                            transport.abort()
                        self._log(request, op, 0, 0, 0, rid, crid, t0, fault_name, wl)
                        # The connection is gone; aiohttp discards whatever is returned here.
                        return web.Response(status=503)
                    if inj.status:
                        headers = {}
                        if inj.retry_after is not None:
                            headers["Retry-After"] = str(max(0, round(inj.retry_after)))
                        raise GraphError(inj.status, inj.code, inj.message, headers)
                try:
                    principal = tokens.principal(request.headers.get("Authorization"))
                except TokenError as exc:
                    raise GraphError(401, "InvalidAuthenticationToken", str(exc)) from exc
                if not (principal.permissions & perm):
                    raise GraphError(
                        403,
                        "Forbidden",
                        "Missing role permissions on the request. API requires one of "
                        f"'{', '.join(sorted(perm))}'. Roles on the request "
                        f"'{', '.join(sorted(principal.permissions))}'.",
                    )
                body: Any = None
                if has_body and request.body_exists:
                    raw = await request.read()
                    req_bytes = len(raw)
                    if raw.strip():
                        try:
                            body = json.loads(raw)
                        except (ValueError, UnicodeDecodeError) as exc:
                            raise bad_request(
                                "BadRequest",
                                "Unable to read JSON request payload. Please ensure Content-Type header is set and "
                                "payload is of valid JSON format.",
                            ) from exc
                now = self.clock.now()
                self.state.settle(now)
                prefix = "/beta" if request.path.startswith("/beta") else "/v1.0"
                ctx = Ctx(request, now, principal, f"{request.scheme}://{request.host}{prefix}", body, workload)
                status, payload = fn(ctx)
                headers = {"request-id": rid, "client-request-id": crid}
                if payload is None:
                    resp = web.Response(status=status, headers=headers)
                else:
                    headers["Content-Type"] = JSON_CT
                    resp = web.Response(status=status, body=_dumps(payload).encode(), headers=headers)
            except GraphError as err:
                resp = self._error_response(err, rid, crid)
            if inj is not None and inj.lose_answer:
                # The call took effect; the client never hears of it (a connection lost on the way back).
                transport = request.transport
                if transport is not None:
                    transport.abort()
                self._log(request, op, 0, req_bytes, 0, rid, crid, t0, fault_name, wl)
                return resp
            self._log(request, op, resp.status, req_bytes, resp.content_length or 0, rid, crid, t0, fault_name, wl)
            return resp

        return handler

    def state_faults(self) -> Any:
        return self.state.faults

    def _route(
        self, method: str, path: str, op: str, perm: frozenset[str], fn: Handler, workload: str | None = None
    ) -> None:
        handler = self._wrap(op, perm, fn, has_body=method in ("POST", "PATCH", "PUT"), workload=workload)
        for prefix in PREFIXES:
            self.app.router.add_route(method, prefix + path, handler)

    # ---- graph routes ------------------------------------------------------------------------------------------
    def _register_graph_routes(self) -> None:
        W, RD, S, C = auth.WRITE, auth.READ, auth.SEARCH, auth.CONFIG
        r = self._route
        for spec in SPECS.values():
            wl = spec.name
            base = f"{R}/{spec.sessions}"
            r("POST", base, "createRestoreSession", W, self.create_session, wl)
            r("GET", base, "listRestoreSessions", RD, self.list_sessions, wl)
            r("GET", base + "/{sid}", "getRestoreSession", RD, self.get_session, wl)
            r("PATCH", base + "/{sid}", "updateRestoreSession", W, self.patch_session, wl)
            r("DELETE", base + "/{sid}", "deleteRestoreSession", W, self.delete_session, wl)
            r("POST", base + "/{sid}/activate", "activateRestoreSession", W, self.activate, wl)
            arts = f"{base}/{{sid}}/{spec.artifacts}"
            r("GET", arts, f"list{spec.artifact_op}s", RD, self.list_artifacts, wl)
            r("GET", arts + "/{aid}", f"get{spec.artifact_op}", RD, self.get_artifact, wl)
            if spec.granular:
                granular = f"{base}/{{sid}}/{spec.granular}"
                r("GET", granular, f"list{spec.granular_op}s", RD, self.list_granular, wl)
                r("GET", granular + "/{aid}", f"get{spec.granular_op}", RD, self.get_granular, wl)
            bulk = f"{base}/{{sid}}/{spec.bulk}"
            r("POST", bulk, "createBulkAdditionRequest", W, self.create_bulk, wl)
            r("GET", bulk, "listBulkAdditionRequests", RD, self.list_bulk, wl)
            r("GET", bulk + "/{bid}", "getBulkAdditionRequest", RD, self.get_bulk, wl)
            r("DELETE", bulk + "/{bid}", "deleteBulkAdditionRequest", W, self.delete_bulk, wl)
        r("GET", R + "/restoreSessions", "listRestoreSessions", RD, self.list_sessions)
        r("GET", R + "/restoreSessions/{sid}", "getRestoreSession", RD, self.get_session)
        r("DELETE", R + "/restoreSessions/{sid}", "deleteRestoreSession", W, self.delete_session)
        r("POST", R + "/restoreSessions/{sid}/activate", "activateRestoreSession", W, self.activate)
        r("POST", R + "/restorePoints/search", "searchRestorePoints", S, self.search)
        r("POST", R + "/restorePoints/microsoft.graph.search", "searchRestorePoints", S, self.search)
        r("GET", R + "/restorePoints", "listRestorePoints", RD, self.list_points)
        r("GET", R + "/restorePoints/{rpid}", "getRestorePoint", RD, self.get_point)
        for spec in SPECS.values():
            unit_op = spec.units[0].upper() + spec.units[1:]  # DriveProtectionUnits
            r("GET", f"{R}/{spec.units}", f"list{unit_op}", C, self.list_units, spec.name)
            r("GET", f"{R}/{spec.units}/{{puid}}", f"get{unit_op[:-1]}", C, self.get_unit, spec.name)
            cast = f"{R}/protectionUnits/microsoft.graph.{spec.unit_type.rsplit('.', 1)[1]}"
            r("GET", cast, f"list{unit_op}", C, self.list_units, spec.name)
        r("GET", R + "/protectionUnits", "listProtectionUnits", C, self.list_units)
        r("GET", R + "/protectionUnits/{puid}", "getProtectionUnit", C, self.get_unit)
        for spec in SPECS.values():
            pol = f"{R}/{spec.policies}"
            unit_op = spec.units[0].upper() + spec.units[1:]
            r("GET", pol, "listProtectionPolicies", C, self.list_policies, spec.name)
            r("GET", pol + "/{pid}", "getProtectionPolicy", C, self.get_policy, spec.name)
            r("GET", f"{pol}/{{pid}}/{spec.policy_units}", f"list{unit_op}", C, self.list_policy_units, spec.name)
        r("GET", R + "/protectionPolicies", "listProtectionPolicies", C, self.list_policies)
        r("GET", R + "/protectionPolicies/{pid}", "getProtectionPolicy", C, self.get_policy)
        for spec in SPECS.values():
            if not spec.browse_sessions:
                continue
            bs = f"{R}/{spec.browse_sessions}"
            r("POST", bs, "createBrowseSession", W, self.create_browse_session, spec.name)
            r("GET", bs, "listBrowseSessions", RD, self.list_browse_sessions, spec.name)
            r("GET", bs + "/{bsid}", "getBrowseSession", RD, self.get_browse_session, spec.name)
            self._browse_routes(bs, spec.name)
        r("GET", R + "/browseSessions", "listBrowseSessions", RD, self.list_browse_sessions)
        r("GET", R + "/browseSessions/{bsid}", "getBrowseSession", RD, self.get_browse_session)
        self._browse_routes(R + "/browseSessions", None)

    def _browse_routes(self, base: str, workload: str | None) -> None:
        # Docs: POST .../browse and GET .../browse?$skiptoken=; SDK: GET .../browse(nextFetchToken='...').
        W = auth.WRITE
        self._route("POST", base + "/{bsid}/browse", "browse", W, self.browse, workload)
        self._route("GET", base + "/{bsid}/browse", "browse", W, self.browse, workload)
        self._route("GET", base + "/{bsid}/browse(nextFetchToken='{token}')", "browse", W, self.browse, workload)

    # ---- helpers -----------------------------------------------------------------------------------------------
    def _top(self, ctx: Ctx, default: int | None = None) -> int:
        raw = ctx.request.query.get("$top")
        if raw is None:
            return default or self.config.default_page_size
        try:
            top = int(raw)
        except ValueError as exc:
            raise bad_request("BadRequest", f"Invalid value '{raw}' for $top.") from exc
        if top < 0:
            raise bad_request("BadRequest", f"Invalid value '{raw}' for $top.")
        return min(top, self.config.max_page_size)

    def _skip(self, ctx: Ctx) -> int:
        raw = ctx.request.query.get("$skiptoken")
        if raw is None:
            return 0
        parts = decode_token(raw, 2)
        if parts[0] != "o" or not parts[1].isdigit():
            raise bad_request("BadRequest", "The $skiptoken is not valid.")
        return int(parts[1])

    @staticmethod
    def _next_link(ctx: Ctx, token: str, extra: dict[str, str] | None = None) -> str:
        query = dict(ctx.request.query)
        query.pop("$skiptoken", None)
        if extra:
            query.update(extra)
        query["$skiptoken"] = token
        qs = "&".join(f"{k}={_quote(v)}" for k, v in query.items())
        return f"{ctx.base}{_subpath(ctx.request.path)}?{qs}"

    def _collection(self, ctx: Ctx, context: str, items: list[dict[str, Any]], next_offset: int | None) -> Result:
        body: dict[str, Any] = {"@odata.context": f"{ctx.base}/$metadata#{context}"}
        if next_offset is not None:
            body["@odata.nextLink"] = self._next_link(ctx, encode_token("o", next_offset))
        body["value"] = items
        return 200, body

    def _page(self, ctx: Ctx, items: list[Any]) -> tuple[list[Any], int | None]:
        offset, top = self._skip(ctx), self._top(ctx)
        nxt = offset + top if offset + top < len(items) else None
        return items[offset : offset + top], nxt

    # ---- restore sessions --------------------------------------------------------------------------------------
    def _session_entity(self, ctx: Ctx, s: Any, context: str) -> dict[str, Any]:
        body = {"@odata.context": f"{ctx.base}/$metadata#{context}"}
        body.update(self.state.session_json(s, ctx.now, ctx.include_unknown))
        return body

    @staticmethod
    def _sessions_name(ctx: Ctx) -> str:
        return "restoreSessions" if ctx.workload is None else ctx.spec.sessions

    def create_session(self, ctx: Ctx) -> Result:
        s = self.state.create_session(ctx.body, ctx.identity, ctx.now, ctx.spec.name)
        return 201, self._session_entity(ctx, s, f"solutions/backupRestore/{ctx.spec.sessions}/$entity")

    def list_sessions(self, ctx: Ctx) -> Result:
        offset, top = self._skip(ctx), self._top(ctx)
        sessions, nxt = self.state.page_sessions(offset, top, ctx.workload)
        status_filter = _eq_filter(ctx.request.query.get("$filter"), "status")
        inc = ctx.include_unknown
        items = [self.state.session_json(s, ctx.now, inc) for s in sessions]
        if status_filter is not None:
            items = [i for i in items if i["status"] == status_filter]
        return self._collection(ctx, f"solutions/backupRestore/{self._sessions_name(ctx)}", items, nxt)

    def get_session(self, ctx: Ctx) -> Result:
        s = self.state.get_session(ctx.match("sid"), ctx.workload)
        return 200, self._session_entity(ctx, s, f"solutions/backupRestore/{self._sessions_name(ctx)}/$entity")

    def patch_session(self, ctx: Ctx) -> Result:
        sid = ctx.match("sid")
        body = self.state.patch_session(sid, ctx.body, ctx.identity, ctx.now, ctx.spec.name)
        return 200, body

    def delete_session(self, ctx: Ctx) -> Result:
        self.state.delete_session(ctx.match("sid"), ctx.workload)
        return 204, None

    def activate(self, ctx: Ctx) -> Result:
        s = self.state.activate(ctx.match("sid"), ctx.identity, ctx.now, ctx.workload)
        return 200, self._session_entity(ctx, s, "microsoft.graph.restoreSessionBase")

    def _artifacts_of(self, ctx: Ctx, kind: str) -> tuple[Session, list[Artifact]]:
        s = self.state.get_session(ctx.match("sid"), ctx.workload)
        return s, [a for a in s.artifacts.values() if a.kind == kind]

    def list_artifacts(self, ctx: Ctx) -> Result:
        s, arts = self._artifacts_of(ctx, "unit")
        status_filter = _eq_filter(ctx.request.query.get("$filter"), "status")
        if status_filter is not None:
            arts = [a for a in arts if a.status(ctx.now) == status_filter]
        page, nxt = self._page(ctx, arts)
        items = [self.state.artifact_json(a, ctx.now) for a in page]
        spec = ctx.spec
        return self._collection(ctx, f"solutions/backupRestore/{spec.sessions}('{s.id}')/{spec.artifacts}", items, nxt)

    def get_artifact(self, ctx: Ctx) -> Result:
        s = self.state.get_session(ctx.match("sid"), ctx.workload)
        aid = ctx.match("aid")
        art = s.artifacts.get(aid)
        if art is None or art.kind != "unit":
            raise GraphError(404, "ArtifactNotFound", f"Restore artifact '{aid}' was not found.")
        body = {"@odata.context": f"{ctx.base}/$metadata#{ctx.spec.artifacts[:-1]}/$entity"}
        body.update(self.state.artifact_json(art, ctx.now))
        return 200, body

    def list_granular(self, ctx: Ctx) -> Result:
        s, arts = self._artifacts_of(ctx, "granular")
        page, nxt = self._page(ctx, arts)
        items = [self.state.artifact_json(a, ctx.now) for a in page]
        spec = ctx.spec
        return self._collection(ctx, f"solutions/backupRestore/{spec.sessions}('{s.id}')/{spec.granular}", items, nxt)

    def get_granular(self, ctx: Ctx) -> Result:
        # A granular artifact's id is its item key (Graph's examples), so it is found by that.
        _, arts = self._artifacts_of(ctx, "granular")
        aid = ctx.match("aid")
        art = next((a for a in arts if a.item_key == aid), None)
        if art is None:
            raise GraphError(404, "ArtifactNotFound", f"Restore artifact '{aid}' was not found.")
        assert ctx.spec.granular is not None
        body = {"@odata.context": f"{ctx.base}/$metadata#{ctx.spec.granular[:-1]}/$entity"}
        body.update(self.state.artifact_json(art, ctx.now))
        return 200, body

    # ---- bulk ----------------------------------------------------------------------------------------------------
    def create_bulk(self, ctx: Ctx) -> Result:
        b = self.state.create_bulk(ctx.match("sid"), ctx.body, ctx.identity, ctx.now, ctx.spec.name)
        body = {"@odata.context": f"{ctx.base}/$metadata#{ctx.spec.bulk[:-1]}/$entity"}
        body.update(self.state.bulk_json(b))
        return 201, body

    def list_bulk(self, ctx: Ctx) -> Result:
        s = self.state.get_session(ctx.match("sid"), ctx.workload)
        items = [self.state.bulk_json(b) for b in s.bulk.values()]
        return self._collection(ctx, ctx.spec.bulk, items, None)

    def get_bulk(self, ctx: Ctx) -> Result:
        b = self.state.get_bulk(ctx.match("sid"), ctx.match("bid"), ctx.spec.name)
        body = {"@odata.context": f"{ctx.base}/$metadata#{ctx.spec.bulk[:-1]}/$entity"}
        body.update(self.state.bulk_json(b))
        return 200, body

    def delete_bulk(self, ctx: Ctx) -> Result:
        self.state.delete_bulk(ctx.match("sid"), ctx.match("bid"), ctx.spec.name)
        return 204, None

    # ---- restore points --------------------------------------------------------------------------------------------
    def search(self, ctx: Ctx) -> Result:
        body = ctx.body
        if not isinstance(body, dict):
            raise bad_request("InvalidSearchRequest", "The request body must be a JSON object.")
        ids = body.get("protectionUnitIds")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise bad_request("InvalidSearchRequest", "protectionUnitIds is required.")
        limit = self.config.max_search_units
        if len(ids) > limit:
            raise bad_request(
                "InvalidSearchRequest", f"A maximum of {limit} protection units can be searched in a single request."
            )
        start, end = time_period(body.get("protectionTimePeriod"), "InvalidSearchRequest", required=True)
        pref = body.get("restorePointPreference") or "latest"
        if pref not in ("latest", "oldest"):
            raise bad_request("InvalidSearchRequest", f"restorePointPreference '{pref}' is not valid.")
        tags = body.get("tags") or "none"
        if tags not in ("none", "fastRestore"):
            raise bad_request("InvalidSearchRequest", f"tags '{tags}' is not valid.")
        if body.get("artifactQuery") is not None:
            # Guess: artifact queries (Exchange messages, for granular mailbox restores) aren't emulated.
            raise bad_request("InvalidSearchRequest", "artifactQuery is supported for Exchange (message) only.")
        tenant = self.state.tenant
        results = []
        none_ids = []
        for puid in ids:
            unit = tenant.units_by_id.get(puid.lower())
            # Guess: unknown (but well-formed) protection unit ids are reported in noResultProtectionUnitIds.
            if unit is None and not is_guid(puid):
                raise bad_request("InvalidProtectionUnitId", f"The protection unit id '{puid}' is not valid.")
            ref = (
                tenant.pick_point(
                    unit, start, end, latest=pref == "latest", fast_only=tags == "fastRestore", now=ctx.now
                )
                if unit is not None
                else None
            )
            if ref is None:
                none_ids.append(puid)
            else:
                results.append({"restorePoint": tenant.point_json(ref)})
        rid = encode_token("search", uuid.uuid4().hex)
        return 200, {
            "@odata.context": f"{ctx.base}/$metadata#microsoft.graph.restorePointSearchResponse",
            "searchResponseId": rid,
            "searchResults": results,
            "noResultProtectionUnitIds": none_ids,
        }

    def list_points(self, ctx: Ctx) -> Result:
        tenant = self.state.tenant
        q = ctx.request.query
        flt = q.get("$filter") or ""
        if len(flt) > 2048:
            raise bad_request("FilterLengthExceeded", "The $filter expression is too long.")
        expand = q.get("$expand") or ""
        unit_id = None
        m = re.search(r"protectionUnit\s*\(\s*\$filter\s*=\s*id\s+eq\s+'([^']*)'\s*\)", expand)
        if m:
            unit_id = m.group(1)
        m2 = re.search(r"protectionUnit/id\s+eq\s+'([^']*)'", flt)
        if m2:
            unit_id = m2.group(1)
        bounds = _time_filter(flt)
        # Every unit in one order (drives, then sites, then mailboxes): a page token is (position, slot).
        units = tenant.all_units()
        first, last = 0, len(units) - 1
        if unit_id is not None:
            unit = tenant.units_by_id.get(unit_id.lower())
            if unit is None:
                raise bad_request("InvalidProtectionUnitId", f"The protection unit id '{unit_id}' is not valid.")
            first = last = _position(tenant, unit)
        top = self._top(ctx)
        raw = q.get("$skiptoken")
        pos, slot = first, 0
        if raw:
            parts = decode_token(raw, 3)
            if parts[0] != "rp":
                raise bad_request("BadRequest", "The $skiptoken is not valid.")
            pos, slot = int(parts[1]), int(parts[2])
        items: list[dict[str, Any]] = []
        nxt: tuple[int, int] | None = None
        while pos <= last and nxt is None:
            unit = units[pos]
            if unit.protected:
                lo, hi = tenant.schedule(unit).slot_range(
                    bounds[0], bounds[1], start_exclusive=bounds[2], end_exclusive=bounds[3]
                )
                k = max(slot, lo)
                while k < hi:
                    if len(items) >= top:
                        nxt = (pos, k)
                        break
                    ref = tenant.unit_point(unit, k)
                    k += 1
                    if not tenant.is_expired(ref, ctx.now):
                        items.append(tenant.point_json(ref, expand_unit=True))
            pos += 1
            slot = 0
        body: dict[str, Any] = {"@odata.context": f"{ctx.base}/$metadata#solutions/backupRestore/restorePoints"}
        if nxt is not None:
            body["@odata.nextLink"] = self._next_link(ctx, encode_token("rp", nxt[0], nxt[1]))
        body["value"] = items
        return 200, body

    def get_point(self, ctx: Ctx) -> Result:
        rpid = ctx.match("rpid")
        ref = self.state.tenant.resolve_point(rpid)
        if ref is None or self.state.tenant.is_expired(ref, ctx.now):
            raise GraphError(404, "RestorePointNotFound", f"Restore point '{rpid}' was not found.")
        body = {"@odata.context": f"{ctx.base}/$metadata#solutions/backupRestore/restorePoints/$entity"}
        # Guess: GET by id is in the SDK, not in restorePoint's documented methods. `protectionUnit` is a
        # relationship, so, as in the list, it comes back only when `$expand` asks for it.
        expand = ctx.request.query.get("$expand") or ""
        wants_unit = re.search(r"(?:^|,)\s*protectionUnit\b", expand) is not None
        body.update(self.state.tenant.point_json(ref, expand_unit=wants_unit))
        return 200, body

    # ---- protection units and policies ---------------------------------------------------------------------------
    def _units_page(self, ctx: Ctx, context: str, workload: str | None) -> Result:
        tenant = self.state.tenant
        flt = ctx.request.query.get("$filter")
        source: list[Any] = tenant.units(workload) if workload is not None else tenant.all_units()
        if flt:
            source = _unit_filter(tenant, flt, workload)
        page, nxt = self._page(ctx, source)
        return self._collection(ctx, context, [tenant.unit_json(u) for u in page], nxt)

    def list_units(self, ctx: Ctx) -> Result:
        name = ctx.spec.units if ctx.workload is not None else "protectionUnits"
        return self._units_page(ctx, f"solutions/backupRestore/{name}", ctx.workload)

    def get_unit(self, ctx: Ctx) -> Result:
        puid = ctx.match("puid")
        if not is_guid(puid):
            raise bad_request("InvalidProtectionUnitId", f"The protection unit id '{puid}' is not valid.")
        unit = self.state.tenant.units_by_id.get(puid.lower())
        if unit is None or (ctx.workload is not None and unit.workload != ctx.workload):
            raise GraphError(404, "ProtectionUnitNotFound", f"Protection unit '{puid}' was not found.")
        body = {"@odata.context": f"{ctx.base}/$metadata#solutions/backupRestore/protectionUnits/$entity"}
        body.update(self.state.tenant.unit_json(unit))
        return 200, body

    def _policy(self, pid: str, workload: str | None) -> str:
        """The workload whose protection policy `pid` is (a typed collection must match)."""
        if not is_guid(pid):
            raise bad_request("InvalidPolicyId", f"The policy id '{pid}' is not valid.")
        for name, policy_id in self.state.tenant.policy_ids.items():
            if policy_id == pid.lower() and workload in (None, name):
                return name
        raise GraphError(404, "PolicyNotFound", f"Protection policy '{pid}' was not found.")

    def list_policies(self, ctx: Ctx) -> Result:
        tenant = self.state.tenant
        if ctx.workload is not None:
            name, items = ctx.spec.policies, [tenant.policy_json(ctx.workload)]
        else:
            name, items = "protectionPolicies", [tenant.policy_json(w) for w in SPECS]
        return self._collection(ctx, f"solutions/backupRestore/{name}", items, None)

    def get_policy(self, ctx: Ctx) -> Result:
        workload = self._policy(ctx.match("pid"), ctx.workload)
        body = {"@odata.context": f"{ctx.base}/$metadata#solutions/backupRestore/protectionPolicies/$entity"}
        body.update(self.state.tenant.policy_json(workload))
        return 200, body

    def list_policy_units(self, ctx: Ctx) -> Result:
        self._policy(ctx.match("pid"), ctx.workload)
        return self._units_page(ctx, ctx.spec.policy_units, ctx.workload)

    # ---- browse ------------------------------------------------------------------------------------------------
    def create_browse_session(self, ctx: Ctx) -> Result:
        bs = self.state.create_browse_session(ctx.body, ctx.identity, ctx.now, ctx.spec.name)
        body = {"@odata.context": f"{ctx.base}/$metadata#solutions/backupRestore/{ctx.spec.browse_sessions}/$entity"}
        body.update(self.state.browse_session_json(bs, ctx.now))
        return 201, body

    def list_browse_sessions(self, ctx: Ctx) -> Result:
        sessions = self.state.live_browse_sessions(ctx.now, ctx.workload)
        page, nxt = self._page(ctx, sessions)
        items = [self.state.browse_session_json(b, ctx.now) for b in page]
        return self._collection(ctx, "solutions/backupRestore/browseSessions", items, nxt)

    def get_browse_session(self, ctx: Ctx) -> Result:
        bs = self.state.get_browse_session(ctx.match("bsid"), ctx.now, ctx.workload)
        body = {"@odata.context": f"{ctx.base}/$metadata#solutions/backupRestore/browseSessions/$entity"}
        body.update(self.state.browse_session_json(bs, ctx.now))
        return 200, body

    def browse(self, ctx: Ctx) -> Result:
        bsid = ctx.match("bsid")
        token = ctx.request.match_info.get("token") or ctx.request.query.get("$skiptoken")
        cfg = self.config
        if token:
            parts = decode_token(token, 6)
            if parts[0] != "b":
                raise bad_request("BadRequest", "The browse continuation token is not valid.")
            key, name_filter, order, offset, top = parts[1], parts[2], parts[3], int(parts[4]), int(parts[5])
        else:
            body = ctx.body if isinstance(ctx.body, dict) else {}
            if ctx.request.method == "GET" and ctx.body is None:
                body = {}
            key = body.get("browseLocationItemKey") or ""
            rtype = body.get("browseResourceType")
            if rtype is not None and rtype not in ("none", "site", "documentLibrary", "folder", "unknownFutureValue"):
                raise bad_request("BadRequest", f"browseResourceType '{rtype}' is not valid.")
            order = body.get("orderBy") or ""
            if order and order not in ("pathAsc", "pathDsc", "nameAsc", "nameDsc"):
                raise bad_request("BadRequest", f"orderBy '{order}' is not valid.")
            name_filter = ""
            raw_filter = body.get("filter")
            if raw_filter:
                m = re.fullmatch(r"\s*\(?\s*name\s+-contains\s+'([^']*)'\s*\)?\s*", str(raw_filter))
                if not m:
                    raise bad_request("BadRequest", "Only filters of the form (name -contains 'x') are supported.")
                name_filter = m.group(1)
            offset = 0
            top = cfg.browse_page_size
            raw_top = ctx.request.query.get("$top")
            if raw_top and raw_top.isdigit():
                top = max(1, min(int(raw_top), cfg.max_page_size))
        items, count, more = self.state.browse(bsid, key, name_filter, order, offset, top, ctx.now, ctx.workload)
        out: dict[str, Any] = {
            "@odata.context": f"{ctx.base}/$metadata#Collection(microsoft.graph.browseQueryResponseItem)",
            "@odata.count": count,
        }
        if more:
            nxt_token = encode_token("b", key, name_filter, order, offset + top, top)
            sub = _subpath(ctx.request.path)
            base_path = sub.split("/browse", 1)[0]
            out["@odata.nextLink"] = f"{ctx.base}{base_path}/browse?$skiptoken={nxt_token}"
        out["value"] = items
        return 200, out

    # ---- admin -------------------------------------------------------------------------------------------------
    def _register_admin_routes(self) -> None:
        a = self.app.router.add_route
        p = "/_emulator"
        a("GET", p + "/health", self.admin_health)
        a("POST", p + "/reset", self.admin_reset)
        a("GET", p + "/config", self.admin_get_config)
        a("PATCH", p + "/config", self.admin_patch_config)
        a("GET", p + "/clock", self.admin_clock)
        a("POST", p + "/clock/advance", self.admin_advance)
        a("POST", p + "/clock/scale", self.admin_scale)
        a("GET", p + "/faults", self.admin_get_faults)
        a("PUT", p + "/faults", self.admin_put_faults)
        a("POST", p + "/faults", self.admin_add_faults)
        a("DELETE", p + "/faults", self.admin_clear_faults)
        a("POST", p + "/faults/fail-next", self.admin_fail_next)
        a("GET", p + "/state", self.admin_state)
        a("GET", p + "/samples", self.admin_samples)
        a("POST", p + "/restore-points/expire", self.admin_expire)
        a("GET", p + "/calls", self.admin_calls)
        a("DELETE", p + "/calls", self.admin_clear_calls)
        a("POST", p + "/seed-sessions", self.admin_seed_sessions)

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        if not request.body_exists:
            return {}
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return data

    @staticmethod
    def _ok(data: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=_dumps(data).encode(), content_type="application/json")

    async def admin_health(self, request: web.Request) -> web.Response:
        return self._ok({"status": "ok", "now": iso(self.clock.now())})

    def reset(self, overrides: dict[str, Any] | None = None) -> None:
        """Drop all sessions, faults and calls; optionally change settings (seed, drives, cap, ...)."""
        if overrides:
            self.config.update(overrides)
        self.clock = Clock(start=self.config.start_time, scale=self.config.clock_scale)
        self.state = EmulatorState(self.config, self.clock.now())
        self.calls = deque(maxlen=self.config.call_log_size)
        self.call_seq = 0

    async def admin_reset(self, request: web.Request) -> web.Response:
        data = await self._json_body(request)
        try:
            self.reset(data)
        except (ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return self._ok({"config": self.config.as_dict(), "now": iso(self.clock.now())})

    async def admin_get_config(self, request: web.Request) -> web.Response:
        return self._ok(self.config.as_dict())

    async def admin_patch_config(self, request: web.Request) -> web.Response:
        data = await self._json_body(request)
        frozen = {"seed", "drives", "sites", "mailboxes", "unprotected_fraction", "expired_points_per_drive",
                  "start_time"}
        try:
            for key in data:
                if key in frozen:
                    raise ValueError(f"{key} needs a reset (POST /_emulator/reset)")
            self.config.update(data)
        except (ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        if "clock_scale" in data or "clockScale" in data:
            self.clock.set_scale(self.config.clock_scale)
        return self._ok(self.config.as_dict())

    def _clock_json(self) -> dict[str, Any]:
        now = self.clock.now()
        return {"now": iso(now), "epoch": now, "scale": self.clock.scale}

    async def admin_clock(self, request: web.Request) -> web.Response:
        return self._ok(self._clock_json())

    async def admin_advance(self, request: web.Request) -> web.Response:
        data = await self._json_body(request)
        seconds = (
            float(data.get("seconds", 0)) + 60 * float(data.get("minutes", 0)) + 3600 * float(data.get("hours", 0))
        )
        seconds += 86400 * float(data.get("days", 0))
        try:
            self.clock.advance(seconds)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        self.state.settle(self.clock.now())
        return self._ok(self._clock_json())

    async def admin_scale(self, request: web.Request) -> web.Response:
        data = await self._json_body(request)
        try:
            self.clock.set_scale(float(data["scale"]))
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        self.config.clock_scale = self.clock.scale
        return self._ok(self._clock_json())

    async def admin_get_faults(self, request: web.Request) -> web.Response:
        return self._ok(self.state.faults.as_json())

    async def _set_faults(self, request: web.Request, replace: bool) -> web.Response:
        data = await self._json_body(request)
        try:
            self.state.faults.configure(data, replace=replace)
        except (ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return self._ok(self.state.faults.as_json())

    async def admin_put_faults(self, request: web.Request) -> web.Response:
        return await self._set_faults(request, True)

    async def admin_add_faults(self, request: web.Request) -> web.Response:
        return await self._set_faults(request, False)

    async def admin_clear_faults(self, request: web.Request) -> web.Response:
        self.state.faults.reset()
        return self._ok(self.state.faults.as_json())

    async def admin_fail_next(self, request: web.Request) -> web.Response:
        data = await self._json_body(request)
        rule = {
            "name": data.get("name") or f"fail-next-{data.get('operation') or data.get('path')}",
            "method": data.get("method", "*"),
            "path": data.get("path"),
            "operation": data.get("operation"),
            "workload": data.get("workload"),
            "failNext": {
                "count": int(data.get("count", 1)),
                "status": int(data.get("status", 503)),
                "code": data.get("code"),
                "message": data.get("message"),
                "retryAfter": data.get("retryAfter"),
            },
        }
        try:
            self.state.faults.configure({"rules": [rule]}, replace=False)
        except (ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return self._ok(self.state.faults.as_json())

    async def admin_state(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        self.state.settle(now)
        with_sessions = request.query.get("sessions", "1") not in ("0", "false")
        return self._ok(self.state.dump(now, with_sessions=with_sessions))

    async def admin_samples(self, request: web.Request) -> web.Response:
        count = int(request.query.get("count", "5"))
        now = self.clock.now()
        tenant = self.state.tenant
        return self._ok(samples(tenant, count, now))

    async def admin_expire(self, request: web.Request) -> web.Response:
        data = await self._json_body(request)
        ids = data.get("ids") or []
        tenant = self.state.tenant
        unknown = [i for i in ids if tenant.resolve_point(i) is None]
        if unknown:
            raise web.HTTPBadRequest(text=f"unknown restore point ids: {unknown}")
        tenant.expired_ids.update(ids)
        return self._ok({"expired": sorted(tenant.expired_ids)})

    async def admin_calls(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        calls = [c for c in self.calls if c["seq"] > since]
        return self._ok({"calls": calls, "lastSeq": self.call_seq})

    async def admin_clear_calls(self, request: web.Request) -> web.Response:
        self.calls.clear()
        return self._ok({"calls": [], "lastSeq": self.call_seq})

    async def admin_seed_sessions(self, request: web.Request) -> web.Response:
        """Create draft sessions directly (for benchmarks): {"count": N, "artifacts": k, "workload": "oneDrive"}."""
        data = await self._json_body(request)
        count = int(data.get("count", 1))
        per = int(data.get("artifacts", 1))
        workload = str(data.get("workload") or ONEDRIVE)
        if workload not in SPECS:
            raise web.HTTPBadRequest(text=f"unknown workload {workload!r}")
        now = self.clock.now()
        tenant = self.state.tenant
        protected = [u for u in tenant.units(workload) if u.protected]
        if not protected:
            raise web.HTTPBadRequest(text=f"no protected {SPECS[workload].label} protection units")
        ids = []
        ident = {"application": {"id": auth.DEFAULT_APP_ID, "displayName": "emulator-seed"}}
        key = SPECS[workload].artifacts
        for i in range(count):
            arts = [
                {
                    "restorePoint": {"id": tenant.point_id(protected[(i * per + j) % len(protected)].index, 1,
                                                           workload)},
                    "destinationType": "new",
                }
                for j in range(min(per, len(protected)))
            ]
            ids.append(self.state.create_session({key: arts}, ident, now, workload).id)
        return self._ok({"created": len(ids), "ids": ids})


def samples(tenant: Tenant, count: int, now: float) -> dict[str, Any]:
    """Protection units and restore points of each workload, for tests and demos (admin `GET /samples`)."""

    def unit(u: Unit) -> dict[str, Any]:
        if isinstance(u, Site):
            return {"id": u.id, "siteId": u.site_id, "siteName": u.name, "siteWebUrl": u.web_url}
        if isinstance(u, Mailbox):
            return {"id": u.id, "email": u.email, "directoryObjectId": u.directory_object_id,
                    "displayName": u.display_name}
        return {"id": u.id, "email": u.email, "directoryObjectId": u.directory_object_id, "webUrl": u.web_url}

    def point(u: Unit, slot: int) -> dict[str, Any]:
        ref = tenant.unit_point(u, slot)
        return {
            "id": ref.id,
            "protectionUnitId": u.id,
            "protectionDateTime": iso(ref.time),
            "tags": "fastRestore" if ref.fast else "none",
            "expired": tenant.is_expired(ref, now),
        }

    def expired(units: list[Any]) -> list[dict[str, Any]]:
        if not units:
            return []
        schedule = tenant.schedule(units[0])
        if len(schedule.times) <= schedule.live_slots:
            return []
        return [point(u, schedule.live_slots) for u in units]

    drives = [d for d in tenant.drives if d.protected][:count]
    sites = [s for s in tenant.sites if s.protected][:count]
    mailboxes = [m for m in tenant.mailboxes if m.protected][:count]
    return {
        "drives": [unit(d) for d in drives],
        "unprotectedDrives": [unit(d) for d in tenant.drives if not d.protected][:count],
        "restorePoints": [point(d, 1) for d in drives],
        "fastRestorePoints": [point(d, 0) for d in drives],
        "expiredRestorePoints": expired(drives),
        "sites": [unit(s) for s in sites],
        "unprotectedSites": [unit(s) for s in tenant.sites if not s.protected][:count],
        "siteRestorePoints": [point(s, 1) for s in sites],
        "siteFastRestorePoints": [point(s, 0) for s in sites],
        "expiredSiteRestorePoints": expired(sites),
        "mailboxes": [unit(m) for m in mailboxes],
        "unprotectedMailboxes": [unit(m) for m in tenant.mailboxes if not m.protected][:count],
        "mailboxRestorePoints": [point(m, 1) for m in mailboxes],
        "expiredMailboxRestorePoints": expired(mailboxes),
    }


def _position(tenant: Tenant, unit: Unit) -> int:
    """The unit's place in `Tenant.all_units()` (drives, then sites, then mailboxes)."""
    if unit.workload == ONEDRIVE:
        return unit.index
    if unit.workload == SHAREPOINT:
        return tenant.drive_count + unit.index
    return tenant.drive_count + tenant.site_count + unit.index


def _subpath(path: str) -> str:
    if path.startswith("/v1.0"):
        return path[5:]
    if path.startswith("/beta"):
        return path[5:]
    return path


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="()'=,$/:-_.~ ")


def _eq_filter(flt: str | None, prop: str) -> str | None:
    if not flt:
        return None
    m = re.fullmatch(rf"\s*{prop}\s+eq\s+'([^']*)'\s*", flt)
    if not m:
        raise bad_request("BadRequest", f"Unsupported $filter '{flt}'.")
    return m.group(1)


def _time_filter(flt: str) -> tuple[float | None, float | None, bool, bool]:
    """protectionDateTime comparisons joined with 'and' -> (start, end, start_exclusive, end_exclusive)."""
    start: float | None = None
    end: float | None = None
    s_ex = e_ex = False
    for m in re.finditer(r"protectionDateTime\s+(lt|le|gt|ge)\s+'?([0-9T:\-.Z+]+)'?", flt):
        op, raw = m.group(1), m.group(2)
        try:
            t = parse_iso(raw)
        except ValueError as exc:
            raise bad_request("BadRequest", f"Invalid date-time '{raw}' in $filter.") from exc
        if op in ("lt", "le"):
            end, e_ex = t, op == "lt"
        else:
            start, s_ex = t, op == "gt"
    return start, end, s_ex, e_ex


# `$filter` on protection units: `<property> eq '<value>'`, answered from the tenant's indexes.
_UNIT_PROPERTIES = {
    ONEDRIVE: ("email", "directoryObjectId", "id", "status"),
    SHAREPOINT: ("siteWebUrl", "siteId", "id", "status"),
    EXCHANGE: ("email", "directoryObjectId", "id", "status"),
    None: ("id", "status"),
}


def _unit_filter(tenant: Tenant, flt: str, workload: str | None = ONEDRIVE) -> list[Any]:
    m = re.fullmatch(r"\s*(\w+)\s+eq\s+'([^']*)'\s*", flt)
    if not m or m.group(1) not in _UNIT_PROPERTIES[workload]:
        raise bad_request("BadRequest", f"Unsupported $filter '{flt}'.")
    prop, value = m.group(1), m.group(2)
    found: Unit | None
    if prop == "status":
        units = tenant.units(workload) if workload is not None else tenant.all_units()
        return [u for u in units if ("protected" if u.protected else "unprotected") == value]
    if prop == "id":
        found = tenant.units_by_id.get(value.lower())
        return [found] if found is not None and workload in (None, found.workload) else []
    key = value.lower()
    if workload == ONEDRIVE:
        found = tenant.by_email.get(key) if prop == "email" else tenant.by_directory_object.get(key)
    elif workload == EXCHANGE:
        found = tenant.mailboxes_by_email.get(key) if prop == "email" else tenant.mailboxes_by_directory_object.get(key)
    else:
        found = tenant.sites_by_url.get(key.rstrip("/")) if prop == "siteWebUrl" else tenant.sites_by_site_id.get(key)
    return [found] if found is not None else []


def build_app(config: EmulatorConfig | None = None) -> GraphEmulatorApp:
    return GraphEmulatorApp(config)
