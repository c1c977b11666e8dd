"""Trace context and spans, in one place.

W3C `traceparent` values are parsed strictly here (a message's trace context is used for tracing only, and an
invalid one is ignored). Each handled message or tracker run is an `Invocation`: the trace context a request
first seen there records in its ledger row, and the request traces read during it (so a request row is read
once per run). Spans and metrics go through `span`, `count` and `record`, which do nothing and import nothing
unless `enable` was called at start-up (by `orchestrators.app.telemetry`): with telemetry off, tracing costs a
flag test.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.trace import Span, Tracer

#: The property a message's trace context arrives in, and the one the Service Bus SDKs set.
TRACEPARENT_PROPERTY = "traceparent"
DIAGNOSTIC_ID_PROPERTY = "Diagnostic-Id"

#: What we publish (version 00); the event schema's pattern.
TRACEPARENT_PATTERN = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_MAX_HEADER = 512  # a longer value is not a trace context worth reading


@dataclass(frozen=True)
class TraceContext:
    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero: the parent of whatever continues this context
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """The same trace, a new span id (for work done here when no span records it)."""
        return TraceContext(self.trace_id, _new_span_id(), self.flags)


def parse_traceparent(value: Any) -> TraceContext | None:
    """A W3C traceparent (version 00 exactly; a later version's first four fields, as the spec says), or None
    for anything else: wrong length or case, all-zero ids, version ff."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or len(value) > _MAX_HEADER:
        return None
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version == "00" and len(value) != 55:
        return None
    if len(value) > 55 and value[55] != "-":
        return None
    return TraceContext(trace_id, span_id, flags)


def message_trace_context(application_properties: Mapping[str, Any]) -> TraceContext | None:
    """`traceparent`, else `Diagnostic-Id` when it is in W3C form (the legacy `|id.` form is not a trace we
    can continue)."""
    return (parse_traceparent(application_properties.get(TRACEPARENT_PROPERTY))
            or parse_traceparent(application_properties.get(DIAGNOSTIC_ID_PROPERTY)))


def _new_span_id() -> str:
    while (span_id := secrets.token_hex(8)) == _ZERO_SPAN:
        pass
    return span_id


def new_trace_context() -> TraceContext:
    while (trace_id := secrets.token_hex(16)) == _ZERO_TRACE:
        pass
    return TraceContext(trace_id, _new_span_id())


# -- invocations: the trace a request records, and the request traces known in this run ---------------------

@dataclass
class Invocation:
    trace: TraceContext  # what a request first opened here records; events of no known request carry it
    requests: dict[str, str] = field(default_factory=dict)  # request id -> its traceparent (this run)
    span: Span | None = None  # the invocation span, when telemetry is on
    links_requests: bool = False  # an activation: its span links to each request's trace

    def bind(self, request_id: str, traceparent: str) -> None:
        if request_id in self.requests:
            return
        self.requests[request_id] = traceparent
        if self.links_requests and self.span is not None:
            context = parse_traceparent(traceparent)
            if context is not None:
                self.span.add_link(_span_context(context))

    def note_request(self, request_id: str | None, incident_id: str | None) -> None:
        """Name the request on the invocation span (a message invocation handles one request)."""
        if self.span is None or self.links_requests or not request_id:
            return
        self.span.set_attribute("restore.request_id", request_id)
        if incident_id:
            self.span.set_attribute("restore.incident_id", incident_id)


_invocation: ContextVar[Invocation | None] = ContextVar("restore_invocation", default=None)


def current_invocation() -> Invocation | None:
    return _invocation.get()


def invocation_trace() -> TraceContext:
    """The trace context a request first opened now records."""
    current = _invocation.get()
    return current.trace if current is not None else new_trace_context()


@contextlib.contextmanager
def invocation(incoming: TraceContext | None = None, *, links_requests: bool = False) -> Iterator[Invocation]:
    """One message or tracker run. Inside an invocation span (telemetry on) its trace is the span's; otherwise
    the incoming context continued, or a new trace."""
    span = _current_span()
    if span is not None:
        ctx = span.get_span_context()
        trace = TraceContext(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", f"{int(ctx.trace_flags):02x}")
    else:
        trace = incoming.child() if incoming is not None else new_trace_context()
    current = _invocation.get()
    if current is not None and current.span is span and span is not None:
        yield current  # the entry point opened it already
        return
    token = _invocation.set(Invocation(trace, span=span, links_requests=links_requests))
    try:
        yield _invocation.get()  # type: ignore[misc]
    finally:
        _invocation.reset(token)


P = ParamSpec("P")
T = TypeVar("T")


def in_invocation(*, links_requests: bool = False) -> Callable[[Callable[P, Awaitable[T]]],
                                                                Callable[P, Awaitable[T]]]:
    """Run a handler (`handle(self, message)`, or a tracker run) as one invocation, continuing the message's
    trace context when it has one."""
    def wrap(handler: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(handler)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            message = args[1] if len(args) > 1 else kwargs.get("message")
            with invocation(getattr(message, "trace_context", None), links_requests=links_requests):
                return await handler(*args, **kwargs)
        return run
    return wrap


def event_traceparent(stored: str) -> str:
    """A request's stored traceparent as an event carries it: the emitting span's id when a span of that trace
    is current, else the span id the request recorded."""
    span = _current_span()
    if span is None:
        return stored
    ctx = span.get_span_context()
    trace_id = f"{ctx.trace_id:032x}"
    if not stored.startswith(f"00-{trace_id}-"):
        return stored
    return f"00-{trace_id}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


# -- spans and metrics (no-ops unless enabled) -------------------------------------------------------------

NULL = contextlib.nullcontext()
_tracer: Tracer | None = None
_meter: Meter | None = None
_instruments: dict[str, Any] = {}
_gauges: dict[str, float] = {}


def enabled() -> bool:
    return _tracer is not None


def enable(tracer: Tracer | None, meter: Meter | None = None) -> None:
    """Called once at start-up by the telemetry module (and by tests with their own providers)."""
    global _tracer, _meter
    _tracer, _meter = tracer, meter
    _instruments.clear()
    _gauges.clear()
    if meter is not None:
        _register_gauges(meter)


def _current_span() -> Span | None:
    if _tracer is None:
        return None
    from opentelemetry import trace

    span = trace.get_current_span()
    return span if span.get_span_context().is_valid else None


def _span_context(context: TraceContext) -> Any:
    from opentelemetry.trace import SpanContext, TraceFlags

    return SpanContext(int(context.trace_id, 16), int(context.span_id, 16), is_remote=True,
                       trace_flags=TraceFlags(int(context.flags, 16)))


def span(name: str, kind: str = "internal", attributes: Mapping[str, Any] | None = None) -> Any:
    """A child span of the current one (a context manager yielding the span, or None when off)."""
    if _tracer is None:
        return NULL
    from opentelemetry.trace import SpanKind

    return _tracer.start_as_current_span(name, kind=SpanKind[kind.upper()], attributes=dict(attributes or {}))


def invocation_span(name: str, kind: str, attributes: Mapping[str, Any], parent: TraceContext | None = None,
                    link: TraceContext | None = None) -> Any:
    """The span of one function invocation: a child of `parent` (the message's trace context), else a root."""
    if _tracer is None:
        return NULL
    from opentelemetry import trace
    from opentelemetry.trace import Link, NonRecordingSpan, SpanKind

    context = trace.set_span_in_context(NonRecordingSpan(_span_context(parent))) if parent is not None else None
    links = [Link(_span_context(link))] if link is not None else None
    return _tracer.start_as_current_span(name, context=context, kind=SpanKind[kind.upper()],
                                         attributes=dict(attributes), links=links)


def consumer_span(function_name: str, queue: str, message: Any) -> Any:
    """The invocation span of a queue-triggered function: a child of the message's trace context (for an
    activation message too; its request's trace is linked when the request is known)."""
    if _tracer is None:
        return NULL
    attributes = {"messaging.system": "servicebus", "messaging.operation.type": "process",
                  "messaging.operation.name": "process", "messaging.destination.name": queue,
                  "messaging.message.id": message.message_id or "", "restore.workload": "oneDrive",
                  "messaging.servicebus.message.delivery_count": message.delivery_count}
    if message.correlation_id:
        attributes["messaging.message.conversation_id"] = message.correlation_id
    return invocation_span(function_name, "consumer", attributes, parent=message.trace_context)


def set_attributes(target: Any, attributes: Mapping[str, Any]) -> None:
    if target is not None:
        target.set_attributes({k: v for k, v in attributes.items() if v is not None})


#: Counters: name -> (unit, description).
COUNTERS = {
    "restore.sessions.created": ("{session}", "restore sessions created in Graph"),
    "restore.sessions.failed": ("{session}", "batches whose session could not be created"),
    "graph.throttled": ("{response}", "Graph 429 answers"),
    "graph.throttle.wait": ("s", "seconds spent waiting out Graph throttling"),
}
#: Gauges the tracker records on each run: name -> description.
GAUGES = {
    "restore.slots.in_use": "activation slots in use",
    "restore.sessions.waiting": "draft sessions waiting for a slot",
}


def count(name: str, amount: float = 1, attributes: Mapping[str, Any] | None = None) -> None:
    if _meter is None or not amount:
        return
    counter = _instruments.get(name)
    if counter is None:
        unit, description = COUNTERS[name]
        counter = _instruments[name] = _meter.create_counter(name, unit=unit, description=description)
    counter.add(amount, dict(attributes or {}))


def record(name: str, value: float) -> None:
    """The latest value of a gauge (observed when the metrics are next collected)."""
    if _meter is not None:
        _gauges[name] = value


def _register_gauges(meter: Meter) -> None:
    from opentelemetry.metrics import CallbackOptions, Observation

    def observe(name: str) -> Any:
        def callback(options: CallbackOptions) -> list[Observation]:
            return [Observation(_gauges[name])] if name in _gauges else []
        return callback

    for name, description in GAUGES.items():
        meter.create_observable_gauge(name, callbacks=[observe(name)], description=description)
