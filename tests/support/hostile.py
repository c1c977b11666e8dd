"""Hostile message bodies for the three queue functions, and the checks every one of them must pass.

Shared by the fuzz tests (a bounded, seeded slice in CI) and `bench/fuzz.py` (tens of thousands of bodies).
A body is delivered the way the Functions host delivers it (an `azure.functions.ServiceBusMessage`, delivery
count 1) to the function app's entry points, with the service wired to real local services: the Graph emulator
over HTTP, Azurite, the Service Bus stand-in. What each body must give:

- the handler returns (no exception reaches the host, so nothing is abandoned and dead-lettered unseen);
- exactly one terminal event of its kind;
- a body that breaks the contract is rejected, with `errors` [{field, message}] and the original body (base64
  when it is not UTF-8, or cut with its size and SHA-256);
- no retry copy is scheduled;
- no Graph token and no storage or Service Bus key in any event, log record or exception text.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import logging
import string
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from azure.functions.servicebus import ServiceBusMessage as FunctionsMessage
from hypothesis import strategies as st

#: The fuzz tenant's limits: small enough that "limit + 1" stays cheap.
MAX_ARTIFACTS = 20
UNIQUE = "{unique}"  # replaced by a fresh id at delivery, so generated requests never collide by accident

KINDS = ("restore", "browse", "activation")
TERMINAL = {
    "restore": {"restore.request.rejected", "restore.request.accepted", "restore.request.planned",
                "restore.request.failed"},
    "browse": {"browse.request.rejected"},
    "activation": {"activation.request.rejected", "activation.request.accepted"},
}


@dataclass(frozen=True)
class Case:
    """One body; `breaks_contract` is True when the contract says it must be rejected, False when it is a
    valid request, None when either answer is right (an activation of an unknown request, say)."""

    kind: str
    body: bytes
    breaks_contract: bool | None
    why: str


def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------------------------------- values

_ID_CHARS = string.ascii_letters + string.digits + "._:-"
request_ids = st.text(_ID_CHARS, min_size=1, max_size=40).map(lambda s: f"{s}-{UNIQUE}")
point_ids = st.uuids().map(str) | st.text(string.ascii_letters + string.digits + "-_=", min_size=1, max_size=64)
json_scalars = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False) | st.text(
    max_size=20)
any_json = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=12)

#: Strings that look harmless until the ledger, Graph or Service Bus sees them.
nasty_text = st.sampled_from([
    "\udfff", "a\ud800b", "x\n", "x\r\n", "abc\x00", "a/b", "a\\b", "a#b", "a?b", "\x7f", "\u0085", " ",
    "\t", "", "\u202e", "\ufeff", "😀", "%", "'", '"', "a" * 129, "a" * 257, "a" * 1025,
]) | st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=30) | st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)

instants_ok = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1),
                           timezones=st.just(dt.UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))
instants_bad = st.sampled_from([
    "2026-11-20T03:00:00.Z", "2026-11-20T03:00:00", "2026-11-20", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z", "2026-11-20T25:00:00Z", "2026-11-20T03:00:00+24:00",
    "20261120T030000Z", "2026-11-20T03:00:00.1234567890Z", "", "now", "2026-11-20T03:00:00Z\n",
])


def contract_allows(where: str, text: str, limit: int = 256) -> bool:
    """The contract's rule for one text field, written from the README independently of the service's code."""
    printable_id = (0 < len(text) <= limit and text.isprintable()
                    and not any(c in text for c in " /\\#?") and text.strip() == text)
    if where == "requestId":
        return 0 < len(text) <= 128 and all(c in _ID_CHARS for c in text)
    if where == "incidentId":
        return 0 < len(text) <= 128 and text.isprintable()
    if where == "restorePointId":
        return printable_id
    if where == "destinationType":
        return text in ("new", "inPlace")
    if where == "users":
        local, _, domain = text.strip().partition("@")
        return (bool(local) and "." in domain[1:-1] and len(text) <= 256 and text.isprintable()
                and not any(c.isspace() or c in "@/\\#?" for c in local + domain))
    raise ValueError(where)


def _wrong_type(value: Any) -> st.SearchStrategy[Any]:
    """Another JSON type; null is not one (an optional field given as null counts as absent)."""
    return any_json.filter(lambda v: v is not None and type(v) is not type(value)
                           and not (isinstance(v, bool) and isinstance(value, bool)))


# ------------------------------------------------------------------------------------------- bodies

@st.composite
def valid_restore_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"requestId": draw(request_ids)}
    if draw(st.booleans()):
        doc["incidentId"] = draw(st.text(string.ascii_letters + string.digits + "- ", min_size=1, max_size=30))
    if draw(st.booleans()):
        doc["reason"] = draw(st.text(max_size=40).filter(lambda s: s != "" and "\x00" not in s
                                                         and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
    if draw(st.booleans()):
        doc["destinationType"] = draw(st.sampled_from(["new", "inPlace"]))
    if draw(st.booleans()):
        doc["selection"] = {"users": draw(st.lists(st.sampled_from(
            ["user00001@contoso.com", "user00002@contoso.com", "nobody@contoso.com"]), min_size=1, max_size=3)),
            "pointInTime": draw(instants_ok), "strategy": draw(st.sampled_from(["auto", "standard"]))}
    else:
        points = draw(st.lists(point_ids, min_size=1, max_size=4, unique=True))
        doc["artifacts"] = [{"restorePointId": p} for p in points]
    doc["dryRun"] = draw(st.booleans())
    return doc


@st.composite
def broken_restore_docs(draw: st.DrawFn) -> tuple[dict[str, Any], str, bool]:
    doc = draw(valid_restore_docs())
    how = draw(st.sampled_from(["wrong type", "unknown field", "limit + 1", "nasty text", "bad instant",
                                "conflicting duplicate", "missing", "both"]))
    if how == "wrong type":
        name = draw(st.sampled_from(sorted(doc)))
        doc[name] = draw(_wrong_type(doc[name]))
    elif how == "unknown field":
        doc[draw(st.text(min_size=1, max_size=12).filter(lambda s: s not in {
            "requestId", "incidentId", "requestedBy", "reason", "destinationType", "artifacts", "activate",
            "dryRun", "selection"}))] = draw(any_json)
    elif how == "limit + 1":
        which = draw(st.sampled_from(["requestId", "incidentId", "requestedBy", "reason", "artifacts",
                                      "restorePointId"]))
        if which == "artifacts":
            doc.pop("selection", None)
            doc["artifacts"] = [{"restorePointId": str(uuid.UUID(int=i))} for i in range(MAX_ARTIFACTS + 1)]
        elif which == "restorePointId":
            doc.pop("selection", None)
            doc["artifacts"] = [{"restorePointId": "p" * 257}]
        else:
            limit = {"requestId": 128, "incidentId": 128, "requestedBy": 256, "reason": 1024}[which]
            doc[which] = "r" * (limit + 1)
    elif how == "nasty text":
        where = draw(st.sampled_from(["requestId", "incidentId", "restorePointId", "users", "destinationType"]))
        text = draw(nasty_text)
        if where == "restorePointId":
            doc.pop("selection", None)
            doc["artifacts"] = [{"restorePointId": text}]
        elif where == "users":
            doc.pop("artifacts", None)
            doc["selection"] = {"users": [text], "pointInTime": "2026-11-20T03:00:00Z"}
        else:
            doc[where] = text
        return doc, how, not contract_allows(where, text)
    elif how == "bad instant":
        doc.pop("artifacts", None)
        doc["selection"] = {"users": ["user00001@contoso.com"], "pointInTime": draw(instants_bad)}
    elif how == "conflicting duplicate":
        doc.pop("selection", None)
        doc["artifacts"] = [{"restorePointId": "dup-1", "destinationType": "new"},
                            {"restorePointId": "dup-1", "destinationType": "inPlace"}]
    elif how == "missing":
        doc.pop("artifacts", None)
        doc.pop("selection", None)
    else:
        doc["artifacts"] = [{"restorePointId": "p-1"}]
        doc["selection"] = {"users": ["user00001@contoso.com"], "pointInTime": "2026-11-20T03:00:00Z"}
    return doc, how, True


@st.composite
def valid_browse_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"requestId": draw(request_ids),
                           "restorePointIds": draw(st.lists(point_ids, min_size=1, max_size=3, unique=True))}
    if draw(st.booleans()):
        doc["incidentId"] = draw(st.text(string.ascii_letters + "-", min_size=1, max_size=20))
    return doc


@st.composite
def broken_browse_docs(draw: st.DrawFn) -> tuple[dict[str, Any], str, bool]:
    doc = draw(valid_browse_docs())
    how = draw(st.sampled_from(["wrong type", "unknown field", "limit + 1", "nasty text", "missing"]))
    if how == "wrong type":
        name = draw(st.sampled_from(sorted(doc)))
        doc[name] = draw(_wrong_type(doc[name]))
    elif how == "unknown field":
        doc["restorePointId"] = "singular"
    elif how == "limit + 1":
        doc["restorePointIds"] = [f"p-{i}" for i in range(101)]
    elif how == "nasty text":
        text = draw(nasty_text)
        doc["restorePointIds"] = [text]
        return doc, how, not contract_allows("restorePointId", text)
    else:
        del doc["restorePointIds"]
    return doc, how, True


@st.composite
def activation_docs(draw: st.DrawFn) -> tuple[dict[str, Any], bool | None, str]:
    shape = draw(st.sampled_from(["requestId", "sessionIds", "both", "neither", "wrong type", "nasty",
                                  "unknown field", "limit + 1"]))
    if shape == "requestId":
        return {"requestId": draw(request_ids)}, None, shape
    if shape == "sessionIds":
        return {"sessionIds": [str(u) for u in draw(st.lists(st.uuids(), min_size=1, max_size=3))]}, None, shape
    if shape == "both":
        return {"requestId": "r-1", "sessionIds": ["s-1"]}, True, shape
    if shape == "neither":
        return {"reason": "approved"}, True, shape
    if shape == "wrong type":
        name = draw(st.sampled_from(["requestId", "sessionIds", "incidentId", "requestedBy", "reason"]))
        doc: dict[str, Any] = {"requestId": "r-1"} if name != "requestId" else {}
        doc[name] = draw(any_json.filter(lambda v: not isinstance(v, str) and v is not None))
        return doc, True, shape
    if shape == "nasty":
        text = draw(nasty_text)
        return {"sessionIds": [text]}, None if contract_allows("restorePointId", text, 128) else True, shape
    if shape == "unknown field":
        return {"requestId": "r-1", "approve": True}, True, shape
    return {"sessionIds": [f"s-{i}" for i in range(101)]}, True, shape


#: Bodies that are no JSON object at all, or that strain the parser; each must be rejected.
_RAW_BODIES = [
    b"", b" ", b"null", b"[]", b"42", b'"text"', b"{", b"\xff\xfe\xfa not text", b"\xc3\x28",
    b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"requestId": ' + b"9" * 5_000 + b"}", b'{"requestId": 1e99999}', b'{"requestId": NaN}',
    b'{"requestId": "x", "reason": "' + b"\\u0001" * 60_000 + b'"}',
    b'{"requestId": "x", "reason": "' + b"\x01" * 60_000 + b'"}',
    b'{"requestId": "\\udfff"}', b'{"\\ud800": 1}', b'{"requestId": "ok-1\\n", "artifacts": [{"restorePointId": "a"}]}',
    b"{" + b" " * 5_000_000 + b"}",
]
raw_bodies = st.sampled_from(_RAW_BODIES) | st.binary(max_size=200)


def _label_raw(body: bytes) -> bool | None:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return True
    return True if not isinstance(doc, dict) else None


def cases(kind: str) -> st.SearchStrategy[Case]:
    """Every hostile body of one kind, with what the contract says about it."""
    raw = raw_bodies.map(lambda b: Case(kind, b, _label_raw(b), "raw bytes"))
    if kind == "restore":
        valid = valid_restore_docs().map(lambda d: Case(kind, _json(d), False, "valid"))
        broken = broken_restore_docs().map(lambda dh: Case(kind, _json(dh[0]), dh[2], dh[1]))
    elif kind == "browse":
        valid = valid_browse_docs().map(lambda d: Case(kind, _json(d), False, "valid"))
        broken = broken_browse_docs().map(lambda dh: Case(kind, _json(dh[0]), dh[2], dh[1]))
    else:
        valid = activation_docs().map(lambda t: Case(kind, _json(t[0]), t[1], t[2]))
        broken = valid
    return st.one_of(raw, valid, broken, broken)


# ------------------------------------------------------------------------------------------- the rig

class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted is itself a finding
            text = f"<unformattable record {record.msg!r}>"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[0].__name__ if record.exc_info[0] else ''}: {record.exc_info[1]}"
        self.texts.append(text)


@dataclass
class Verdict:
    case: Case
    events: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)


def fuzz_settings(graph_url: str, sb_connection: str, ledger_connection: str, token: str) -> dict[str, str]:
    return {
        "ServiceBusConnection": sb_connection,
        "AzureWebJobsStorage": ledger_connection,
        "GRAPH_BASE_URL": graph_url,
        "GRAPH_ACCESS_TOKEN": token,
        "LEDGER_TABLE": f"fuzz{uuid.uuid4().hex[:12]}",
        "MAX_ARTIFACTS_PER_REQUEST": str(MAX_ARTIFACTS),
        "RETRY_BASE_DELAY_SECONDS": "0.5",
        "RETRY_MAX_DELAY_SECONDS": "2",
        "GRAPH_THROTTLE_WAIT_LIMIT_SECONDS": "3",
    }


class _Recording:
    """The real publisher (every event still goes to the topic), keeping what it was given."""

    def __init__(self, inner: Any, sink: list[Any]) -> None:
        self._inner = inner
        self._sink = sink

    async def publish(self, events: Any) -> None:
        await self._inner.publish(events)
        self._sink.extend(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Rig:
    """Delivers cases to the app's entry points on one event loop and checks what came out."""

    def __init__(self, settings_env: dict[str, str], secrets: list[str],
                 scheduled_copies: Callable[[], int]) -> None:
        self.settings_env = settings_env
        self.secrets = [s for s in secrets if s]
        self.scheduled_copies = scheduled_copies
        self.delivered = 0
        self._records = _Records()

    async def __aenter__(self) -> Rig:
        import os

        from orchestrators.adapters.bus import EventPublisher
        from orchestrators.app import runtime
        from orchestrators.app.runtime import Runtime
        from orchestrators.kernel.settings import Settings

        self._saved = {k: os.environ.get(k) for k in self.settings_env}
        os.environ.update(self.settings_env)
        parts = await Runtime.create(Settings.from_env(self.settings_env))
        self._sent: list[Any] = []
        parts.publisher = cast(EventPublisher, _Recording(parts.publisher, self._sent))
        self._parts = parts
        runtime.install(parts)
        logging.getLogger().addHandler(self._records)
        if logging.getLogger().level > logging.INFO:
            logging.getLogger().setLevel(logging.INFO)
        return self

    async def __aexit__(self, *exc: object) -> None:
        import os

        from orchestrators.app import runtime

        logging.getLogger().removeHandler(self._records)
        runtime.install(None)
        await self._parts.aclose()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    async def deliver(self, case: Case) -> Verdict:
        from orchestrators.app import entrypoints

        handlers = {"restore": entrypoints.handle_restore_request, "browse": entrypoints.handle_browse_request,
                    "activation": entrypoints.handle_activation_request}
        unique = uuid.uuid4().hex[:12]
        body = case.body.replace(UNIQUE.encode(), unique.encode())
        message = FunctionsMessage(body=body, message_id=f"fuzz-{unique}", application_properties={},
                                   user_properties={}, delivery_count=1,
                                   enqueued_time_utc=dt.datetime.now(dt.UTC).replace(tzinfo=None))
        self._sent.clear()
        self._records.texts.clear()
        before = self.scheduled_copies()
        problems: list[str] = []
        try:
            await asyncio.wait_for(handlers[case.kind](message), timeout=60)
        except Exception as exc:  # the finding: this would be abandoned and redelivered
            problems.append(f"handler raised {type(exc).__name__}: {str(exc)[:300]}")
            self._records.texts.append(f"{type(exc).__name__}: {exc}")
        self.delivered += 1
        events = [e.to_document() for e in self._sent]
        verdict = Verdict(Case(case.kind, body, case.breaks_contract, case.why), events, problems)
        self._check(verdict, before)
        return verdict

    def _check(self, verdict: Verdict, scheduled_before: int) -> None:
        case, events, problems = verdict.case, verdict.events, verdict.problems
        types = [e["type"] for e in events]
        terminal = [t for t in types if t in TERMINAL[case.kind]]
        if case.kind == "browse":
            sessions = [e for e in events if e["type"] in ("browse.session.created", "browse.session.failed")]
            if len(terminal) > 1 or (not terminal and not sessions):
                problems.append(f"terminal events {types}")
        elif len(terminal) != 1 and not (case.kind == "activation" and 1 <= len(terminal) <= 2
                                         and len(set(terminal)) == len(terminal)):
            problems.append(f"expected one terminal event, got {types}")
        rejected = [e for e in events if e["type"].endswith(".request.rejected")]
        if case.breaks_contract:
            if not rejected:
                problems.append(f"contract-breaking body ({case.why}) not rejected: {types}")
            for event in rejected:
                problems.extend(_rejection_problems(event, case.body))
        elif case.breaks_contract is False and rejected:
            problems.append(f"valid body rejected: {rejected[0]['data'].get('errors')}")
        if self.scheduled_copies() != scheduled_before:
            problems.append("a retry copy was scheduled")
        texts = [json.dumps(e, ensure_ascii=False) for e in events] + self._records.texts
        for secret in self.secrets:
            if any(secret in text for text in texts):
                problems.append("a secret appears in an event or a log record")
                break


def _rejection_problems(event: dict[str, Any], body: bytes) -> Iterator[str]:
    data = event["data"]
    errors = data.get("errors")
    if not (isinstance(errors, list) and errors and all(
            isinstance(e, dict) and set(e) == {"field", "message"} and all(isinstance(v, str) for v in e.values())
            for e in errors)):
        yield f"rejection without field errors: {errors!r}"[:300]
    echoed = data.get("body")
    if not isinstance(echoed, str):
        yield "rejection without the original body"
        return
    raw = base64.b64decode(echoed) if data.get("bodyEncoding") == "base64" else echoed.encode("utf-8")
    if data.get("bodyTruncated"):
        if data.get("bodySize") != len(body) or data.get("bodySha256") != hashlib.sha256(body).hexdigest():
            yield "a cut body without its true size and digest"
        if not body.startswith(raw):
            yield "a cut body that is not a prefix of the original"
    elif raw != body:
        yield "the echoed body differs from the original"


class LoopThread:
    """One event loop in a thread of its own, so synchronous property tests can drive async handlers on the
    same loop (and the same SDK clients) from example to example."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
