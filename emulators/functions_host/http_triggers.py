"""HTTP triggers served the way ``func start`` serves them: ``http://127.0.0.1:7071/<routePrefix>/<route>``.

A function declared with ``@app.route(route=..., methods=..., auth_level=...)`` answers requests whose path
matches its route template (``{name}`` parameters become ``req.route_params``; ``{name?}`` may be left out at the
end, ``{*rest}`` takes the rest of the path, ``{id:int}`` and the like constrain a parameter) and whose method it
lists (no list: every method). FUNCTION and ADMIN levels need the host's key in the ``code`` query parameter or
the ``x-functions-key`` header (one local key serves as function, host and master key); ANONYMOUS needs none.
The request reaches the function as the worker builds it (``azure.functions``' own converter) and what the
function returns goes back through the same converter: status, headers, cookies, body.

Answers that are the host's rather than the function's: 404 for a path no route matches, 401 without the key,
500 when the function raises, all with an empty body. Where the path matches but not the method the host answers
404 too (its router does not tell them apart); this runner answers 405 with an ``Allow`` header unless told to
answer like the host (``method_mismatch_status=404``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aiohttp import web
from azure.functions import meta
from azure.functions.http import HttpRequestConverter, HttpResponseConverter

from .invoking import Invocation, call_in_process
from .loading import Trigger

log = logging.getLogger("emulators.functions_host")

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 7071
KEY_QUERY_PARAMETER = "code"
KEY_HEADER = "x-functions-key"
ANONYMOUS = "anonymous"

# Route constraints of ASP.NET routing that narrow what a parameter matches; the others (min, max, length,
# regex, ...) are accepted without being checked.
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?i:true|false)",
    "guid": r"\{?[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\}?",
    "alpha": r"[A-Za-z]+",
    "double": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
    "datetime": r"[^/]+",
}
_PARAMETER = re.compile(r"\{(\*{0,2})([A-Za-z_][A-Za-z0-9_]*)((?::[^}=?]+)*)(\?|=[^}]*)?\}")

Record = Callable[[Invocation], None]


@dataclass(frozen=True)
class HttpCall:
    """A request for one function, as the host hands it to the worker (repeated keys joined with commas)."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    route_params: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpAnswer:
    """What the host answers once the function has returned."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


Answer = Callable[[Trigger, HttpCall], Awaitable[HttpAnswer]]


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template: the pattern, its parameter names in order, their defaults, how specific it is."""

    template: str
    pattern: re.Pattern[str]
    parameters: tuple[str, ...]
    defaults: Mapping[str, str]
    precedence: tuple[int, int]  # fewer parameters, then no catch-all, first

    @classmethod
    def compile(cls, template: str) -> RouteTemplate:
        regex, names, defaults, catch_all = "", [], {}, 0
        for segment in [s for s in template.strip("/").split("/") if s != ""]:
            whole = _PARAMETER.fullmatch(segment)
            if whole is not None and (whole[4] is not None or whole[1]):
                # {name?}, {name=default} and {*rest} may be left out, with the slash before them.
                names.append(whole[2])
                if whole[4] is not None and whole[4].startswith("="):
                    defaults[whole[2]] = whole[4][1:]
                catch_all |= bool(whole[1])
                inner = ".*" if whole[1] else _parameter_pattern(whole[3])
                regex += f"(?:/(?P<p{len(names) - 1}>{inner}))?"
                continue
            regex += "/"
            position = 0
            for m in _PARAMETER.finditer(segment):
                regex += re.escape(segment[position:m.start()])
                names.append(m[2])
                catch_all |= bool(m[1])
                regex += f"(?P<p{len(names) - 1}>{'.*' if m[1] else _parameter_pattern(m[3])})"
                position = m.end()
            regex += re.escape(segment[position:])
        pattern = re.compile(f"(?i:{regex or '/'})/?")
        return cls(template, pattern, tuple(names), defaults, (len(names), int(catch_all)))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        values = dict(self.defaults)
        values.update({name: v for i, name in enumerate(self.parameters) if (v := found[f"p{i}"])})
        return values


def _parameter_pattern(constraints: str) -> str:
    for constraint in filter(None, constraints.split(":")):
        known = _CONSTRAINTS.get(constraint.split("(", 1)[0].lower())
        if known is not None:
            return known
    return r"[^/]+"


def _joined(multi: Any) -> dict[str, str]:
    """A multi-valued mapping as the host sends it: repeated keys' values joined with commas."""
    joined: dict[str, str] = {}
    for key in multi:
        if key not in joined:
            joined[key] = ",".join(multi.getall(key))
    return joined


class HttpTriggers:
    """An aiohttp server for the app's HTTP-triggered functions; ``answer(trigger, call)`` runs one for a request
    and says what to answer (in-process: :func:`answer_in_process`)."""

    def __init__(
        self,
        triggers: list[Trigger],
        answer: Answer,
        record: Record,
        *,
        key: str,
        route_prefix: str = "api",
        host: str = DEFAULT_HTTP_HOST,
        port: int = DEFAULT_HTTP_PORT,
        shutdown_timeout: float = 30.0,
        method_mismatch_status: int = 405,
    ) -> None:
        self.key = key
        self.route_prefix = route_prefix.strip("/")
        self.host = host
        self.port = port
        self._answer = answer
        self._record = record
        self._shutdown_timeout = shutdown_timeout
        self._method_mismatch_status = method_mismatch_status
        routes = [(RouteTemplate.compile(str(t.route)), t) for t in triggers]
        self.routes = sorted(routes, key=lambda pair: pair[0].precedence)
        self._runner: web.ServerRunner | None = None

    @property
    def base_url(self) -> str:
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        return f"http://{self.host}:{self.port}{prefix}"

    def url(self, trig: Trigger) -> str:
        return f"{self.base_url}/{str(trig.route).strip('/')}"

    async def start(self) -> None:
        runner = web.ServerRunner(web.Server(self._handle), shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])  # the one picked when asked for port 0

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _route_path(self, path: str) -> str | None:
        if not self.route_prefix:
            return path
        prefix = f"/{self.route_prefix}"
        if path.lower() == prefix.lower():
            return "/"
        if path[: len(prefix) + 1].lower() == f"{prefix}/".lower():
            return path[len(prefix):]
        return None

    def _authorised(self, trig: Trigger, request: web.BaseRequest) -> bool:
        if trig.auth_level == ANONYMOUS:
            return True
        given = request.query.get(KEY_QUERY_PARAMETER) or request.headers.get(KEY_HEADER) or ""
        return hmac.compare_digest(given.encode(), self.key.encode())

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = self._route_path(request.path)
        matched: list[tuple[Trigger, dict[str, str]]] = []
        if path is not None:
            for template, trig in self.routes:
                params = template.match(path)
                if params is not None:
                    matched.append((trig, params))
        if not matched:
            return web.Response(status=404)
        method = request.method.upper()
        chosen = next(((t, p) for t, p in matched if not t.methods or method in t.methods), None)
        if chosen is None:
            allowed = sorted({m for t, _ in matched for m in t.methods})
            headers = {"Allow": ", ".join(allowed)} if self._method_mismatch_status == 405 else None
            return web.Response(status=self._method_mismatch_status, headers=headers)
        trig, route_params = chosen
        if not self._authorised(trig, request):
            return web.Response(status=401)
        call = HttpCall(
            method=method,
            url=str(request.url),
            headers=_joined(request.headers),
            query=_joined(request.query),
            route_params=route_params,
            body=await request.read(),
        )
        started, t0 = time.time(), time.monotonic()
        error: BaseException | None = None
        try:
            answer = await self._answer(trig, call)
            response = web.Response(status=answer.status, body=answer.body)
            for name, value in answer.headers:
                response.headers.add(name, value)
        except Exception as err:
            error = err
            log.warning("%s: HTTP function failed: %r", trig.name, err, exc_info=err)
            response = web.Response(status=500)
        self._record(
            Invocation(
                function=trig.name,
                message_id=None,
                delivery_count=None,
                outcome="failed" if error is not None else "completed",
                exception=repr(error) if error is not None else None,
                duration=time.monotonic() - t0,
                started_at=started,
                status_code=response.status,
            )
        )
        return response


def function_request(call: HttpCall) -> Any:
    """The ``func.HttpRequest`` the function receives, built by the worker's own converter."""
    datum = meta.Datum(
        type="http",
        value={
            "method": meta.Datum(call.method, "string"),
            "url": meta.Datum(call.url, "string"),
            "headers": {k: meta.Datum(v, "string") for k, v in call.headers.items()},
            "query": {k: meta.Datum(v, "string") for k, v in call.query.items()},
            "params": {k: meta.Datum(v, "string") for k, v in call.route_params.items()},
            "body": meta.Datum(call.body, "bytes"),
        },
    )
    return HttpRequestConverter.decode(datum, trigger_metadata=None)


def answer_for(result: Any) -> HttpAnswer:
    """The function's return value as the host answers it, through the worker's own output converter (anything
    but a ``func.HttpResponse`` or a string fails the invocation, as in the worker)."""
    if result is None:
        # Guess: an HTTP function that returns nothing gets 204 from the host.
        return HttpAnswer(204, [], b"")
    datum = HttpResponseConverter.encode(result, expected_type=None)
    if datum.type == "string":
        # Guess: a string return is the body of a 200 with text/plain, as the host writes a string result.
        return HttpAnswer(200, [("Content-Type", "text/plain; charset=utf-8")], str(datum.value).encode("utf-8"))
    value = datum.value
    headers = [(name, str(header.value)) for name, header in value["headers"].items()]
    for cookie in value.get("cookies") or []:
        headers += [("Set-Cookie", _morsel_header(morsel)) for morsel in cookie.values()]
    return HttpAnswer(int(value["status_code"].value), headers, bytes(value["body"].value or b""))


def set_cookie_header(
    name: str,
    value: str,
    *,
    domain: str | None = None,
    path: str | None = None,
    expires: dt.datetime | None = None,
    max_age: int | None = None,
    secure: bool = False,
    http_only: bool = False,
    same_site: str | None = None,
) -> str:
    """A response cookie as the host writes it (ASP.NET Core's ``Set-Cookie`` format, attributes in its order)."""
    parts = [f"{name}={value}"]
    if expires is not None:
        parts.append("expires=" + expires.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"))
    if max_age is not None:
        parts.append(f"max-age={max_age}")
    if domain:
        parts.append(f"domain={domain}")
    if path:
        parts.append(f"path={path}")
    if secure:
        parts.append("secure")
    if same_site:
        parts.append(f"samesite={same_site.lower()}")
    if http_only:
        parts.append("httponly")
    return "; ".join(parts)


def _morsel_header(morsel: Any) -> str:
    """A cookie the function set (an ``http.cookies`` morsel, as the worker parses ``Set-Cookie``), as the host
    writes it: the worker sends each attribute, the host writes them back."""
    expires = morsel["expires"]
    max_age = morsel["max-age"]
    return set_cookie_header(
        morsel.key,
        morsel.value,
        domain=morsel["domain"] or None,
        path=morsel["path"] or None,
        expires=dt.datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=dt.UTC) if expires else None,
        max_age=int(float(max_age)) if str(max_age).strip() else None,
        secure=bool(morsel["secure"]),
        http_only=bool(morsel["httponly"]),
        same_site=str(morsel["samesite"]) or None,
    )


async def answer_in_process(
    trig: Trigger, call: HttpCall, module: ModuleType | None, timeout: float | None
) -> HttpAnswer:
    """Call ``trig``'s function in-process with the request and say what the host answers."""
    return answer_for(await call_in_process(trig, function_request(call), module, timeout))
