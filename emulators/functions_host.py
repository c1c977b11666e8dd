"""Run a Python v2 function app's Service Bus and timer functions the way the Functions host would.

The runner indexes ``app.get_functions()`` of the module's ``func.FunctionApp``, receives from each Service Bus
trigger's queue (or topic subscription) with PeekLock through the real ``azure.servicebus.aio`` SDK, passes an
``azure.functions.ServiceBusMessage`` to the user function, then completes the message when the function returns
and abandons it when it raises, renewing the lock meanwhile (up to ``maxAutoLockRenewalDuration``). At most
``maxConcurrentCalls`` invocations run per function; ``prefetchCount`` is honoured. Both come from ``host.json``
(``extensions.serviceBus``), with the documented defaults.

Settings (``local.settings.json``'s ``Values``, or a dict) are exported to ``os.environ`` from ``start()`` until
``stop()``, when the previous values are restored, because the app reads its configuration from the environment.

Usage::

    async with FunctionsHost("function_app", settings={...}, host_json="host.json") as host:
        ...send with the SDK...
        await host.wait_idle(timeout=30)
        assert host.invocations[-1].outcome == "completed"

With ``worker="real"`` (CLI ``--worker real``, Python 3.13+) the functions are indexed, loaded and invoked
through Microsoft's worker library instead of being called directly: see :mod:`emulators.functions_worker`.

CLI: ``python -m emulators.functions_host --app function_app --settings local.settings.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import datetime as dt
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage as FuncServiceBusMessage
from azure.functions.timer import TimerRequest
from azure.servicebus import ServiceBusReceivedMessage, ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver

from emulators.stop_signals import start_thread

log = logging.getLogger("emulators.functions_host")

DEFAULT_CONNECTION = "AzureWebJobsServiceBus"
# Documented defaults of extensions.serviceBus (extension 5.x). maxConcurrentCalls: the docs say 16; the
# extension's code multiplies by the processor count. Guess: 16, as documented, so local runs stay small.
DEFAULT_MAX_CONCURRENT_CALLS = 16
DEFAULT_MAX_AUTO_LOCK_RENEWAL = 300.0
DEFAULT_MAX_MESSAGE_BATCH_SIZE = 1000
# The CLI's grace for invocations in flight on SIGTERM/Ctrl-C. Guess: a local run should stop within a few
# seconds when told; how long the Functions host drains is not modelled. FunctionsHost's stop_timeout stays 30 s.
DEFAULT_CLI_STOP_TIMEOUT = 2.0
INFINITE = float("inf")


# ---------------------------------------------------------------------------------------------- host.json


def _timespan(value: Any) -> float:
    """Seconds from a host.json TimeSpan (``00:05:00``, ``1.00:00:00``) or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    m = re.fullmatch(r"(-)?(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if not m:
        raise ValueError(f"not a TimeSpan: {value!r}")
    seconds = int(m[2] or 0) * 86400 + int(m[3]) * 3600 + int(m[4]) * 60 + float(m[5])
    return -seconds if m[1] else seconds


@dataclass(frozen=True)
class HostOptions:
    """The ``host.json`` settings the runner honours."""

    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS
    prefetch_count: int = 0
    max_auto_lock_renewal_duration: float = DEFAULT_MAX_AUTO_LOCK_RENEWAL
    auto_complete_messages: bool = True
    max_message_batch_size: int = DEFAULT_MAX_MESSAGE_BATCH_SIZE
    function_timeout: float | None = None

    @classmethod
    def load(cls, host_json: str | os.PathLike[str] | Mapping[str, Any] | None) -> HostOptions:
        if host_json is None:
            return cls()
        if isinstance(host_json, Mapping):
            doc: Mapping[str, Any] = host_json
        else:
            path = Path(host_json)
            if not path.exists():
                log.warning("host.json %s not found; using defaults", path)
                return cls()
            doc = json.loads(path.read_text(encoding="utf-8"))
        sb = {k.lower(): v for k, v in ((doc.get("extensions") or {}).get("serviceBus") or {}).items()}
        renewal = sb.get("maxautolockrenewalduration")
        renewal_s = DEFAULT_MAX_AUTO_LOCK_RENEWAL if renewal is None else _timespan(renewal)
        timeout = doc.get("functionTimeout")
        timeout_s = None if timeout in (None, "") else _timespan(timeout)
        return cls(
            max_concurrent_calls=int(sb.get("maxconcurrentcalls") or DEFAULT_MAX_CONCURRENT_CALLS),
            prefetch_count=int(sb.get("prefetchcount") or 0),
            # A negative TimeSpan (-00:00:00.001) means "renew for as long as the function runs".
            max_auto_lock_renewal_duration=INFINITE if renewal_s < 0 else renewal_s,
            auto_complete_messages=bool(sb.get("autocompletemessages", True)),
            max_message_batch_size=int(sb.get("maxmessagebatchsize") or DEFAULT_MAX_MESSAGE_BATCH_SIZE),
            function_timeout=None if timeout_s is None or timeout_s < 0 else timeout_s,
        )


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Invocation:
    """One handler invocation: outcome is "completed" | "abandoned" (Service Bus) or "completed" | "failed"
    (timer); "lock-lost" when settlement failed because the lock was gone, "not-settled" when
    ``autoCompleteMessages`` is false."""

    function: str
    message_id: str | None
    delivery_count: int | None
    outcome: str
    exception: str | None
    duration: float
    started_at: float = field(default_factory=time.time)
    sequence_number: int | None = None
    message_ids: list[str] = field(default_factory=list)
    settle_error: str | None = None


@dataclass
class _Trigger:
    name: str
    kind: str  # "serviceBus" | "timer"
    arg_name: str
    user_function: Callable[..., Any]
    binding: dict[str, Any]
    queue: str | None = None
    topic: str | None = None
    subscription: str | None = None
    connection: str = DEFAULT_CONNECTION
    many: bool = False
    auto_complete: bool | None = None

    @property
    def entity(self) -> str:
        if self.queue:
            return self.queue
        return f"{self.topic}/Subscriptions/{self.subscription}"


class _Context(func.Context):
    """The ``context`` argument, for functions that declare one."""

    def __init__(self, function_name: str, function_directory: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._tls = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


# ---------------------------------------------------------------------------------------------- helpers


def _text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def _body_bytes(msg: ServiceBusReceivedMessage) -> bytes:
    body: Any = msg.body
    kind = str(getattr(msg, "body_type", "data")).lower()
    if "data" in kind or inspect.isgenerator(body):
        return b"".join(bytes(chunk) for chunk in body)
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    # Guess: the host serialises value/sequence bodies as JSON text.
    return json.dumps(body, default=str).encode("utf-8")


def host_delivery_count(msg: ServiceBusReceivedMessage) -> int:
    """The ``DeliveryCount`` the host's Service Bus extension reports: 1 on the first delivery.

    Service Bus sends the number of earlier deliveries and the Python SDK passes it through (0 first); the
    extension, like the .NET SDK it is built on, adds 1."""
    return int(msg.delivery_count or 0) + 1


def to_function_message(msg: ServiceBusReceivedMessage) -> FuncServiceBusMessage:
    """The ``azure.functions.ServiceBusMessage`` the host would pass for an SDK message."""
    props = {str(_text(k)): _text(v) for k, v in (msg.application_properties or {}).items()}
    state = getattr(msg, "state", None)
    return FuncServiceBusMessage(
        body=_body_bytes(msg),
        trigger_metadata=None,
        application_properties=dict(props),
        content_type=msg.content_type,
        correlation_id=msg.correlation_id,
        dead_letter_error_description=msg.dead_letter_error_description,
        dead_letter_reason=msg.dead_letter_reason,
        dead_letter_source=msg.dead_letter_source,
        delivery_count=host_delivery_count(msg),
        enqueued_sequence_number=msg.enqueued_sequence_number,
        enqueued_time_utc=msg.enqueued_time_utc,
        expires_at_utc=msg.expires_at_utc,
        label=msg.subject,
        locked_until=msg.locked_until_utc,
        lock_token=str(msg.lock_token) if msg.lock_token is not None else None,
        message_id=str(msg.message_id) if msg.message_id is not None else "",
        partition_key=msg.partition_key,
        reply_to=msg.reply_to,
        reply_to_session_id=msg.reply_to_session_id,
        scheduled_enqueue_time_utc=msg.scheduled_enqueue_time_utc,
        sequence_number=msg.sequence_number,
        session_id=msg.session_id,
        state=int(state) if state is not None else None,
        subject=msg.subject,
        time_to_live=msg.time_to_live,
        to=msg.to,
        transaction_partition_key=None,
        user_properties=dict(props),
    )


def load_app(app_module_or_path: str | os.PathLike[str] | ModuleType, *, reload: bool = True) -> tuple[ModuleType, Any]:
    """Import the app module (by name, by file path, or given) and return it with its FunctionApp.

    With ``reload`` an already imported module is executed again, so its module-level code sees the current
    settings (each test may point it at another Service Bus)."""
    if isinstance(app_module_or_path, ModuleType):
        module = app_module_or_path
    else:
        target = os.fspath(app_module_or_path)
        if target.endswith(".py") or os.sep in target or "/" in target:
            path = Path(target).resolve()
            if path.is_dir():
                path = path / "function_app.py"
            # The app's directory is the script root, as with the Functions host.
            root = str(path.parent)
            if root not in sys.path:
                sys.path.insert(0, root)
            mod_name = path.stem
            existing = sys.modules.get(mod_name)
            if not reload and existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == path:
                module = existing
            else:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)
        elif reload and target in sys.modules:
            module = importlib.reload(sys.modules[target])
        else:
            module = importlib.import_module(target)
    from azure.functions.decorators.function_app import FunctionRegister

    app = getattr(module, "app", None)
    if not isinstance(app, FunctionRegister):
        apps = [v for v in vars(module).values() if isinstance(v, FunctionRegister)]
        if len(apps) != 1:
            raise ValueError(f"{module.__name__} must define exactly one func.FunctionApp (found {len(apps)})")
        app = apps[0]
    return module, app


_SETTING_REF = re.compile(r"%([^%]+)%")
_INDEXED: dict[int, tuple[Any, list[Any]]] = {}


# ---------------------------------------------------------------------------------------------- shutdown helpers


async def close_promptly(handler: Any) -> None:
    """Close an ``azure.servicebus.aio`` sender or receiver without sitting out its keep-alive tick.

    Each aio handler runs a keep-alive task that sleeps in one-second steps and is awaited at the very end of
    ``close()``, after the links, the session and the connection are closed: up to a second of nothing per close.
    Cancelling that task first changes nothing else; the SDK still drains the link, releases buffered messages
    and closes the connection. (The attribute is the SDK's own; if it is absent, this is a plain ``close()``.)"""
    amqp = getattr(handler, "_handler", None)
    keep_alive = getattr(amqp, "_keep_alive_thread", None)
    if isinstance(keep_alive, asyncio.Future) and not keep_alive.done():
        keep_alive.cancel()
        amqp._keep_alive_thread = None  # type: ignore[union-attr]
    await handler.close()


@contextlib.asynccontextmanager
async def _opened(handler: Any) -> Any:
    """``async with handler`` that closes with :func:`close_promptly`."""
    await handler.__aenter__()
    try:
        yield handler
    finally:
        await close_promptly(handler)


def _sync_thread_count() -> int:
    # The Python worker's pool: PYTHON_THREADPOOL_THREAD_COUNT, else ThreadPoolExecutor's default size.
    configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else min(32, (os.cpu_count() or 1) + 4)


_SYNC_THREADS = threading.BoundedSemaphore(_sync_thread_count())


def _run_sync(fn: Callable[..., Any], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
    """Run a sync function on a daemon thread (at most ``_sync_thread_count()`` at a time) and return a future.

    Like ``asyncio.to_thread`` (context copied, cancelling the future does not stop the function), except that a
    function still running when the host stops does not keep the process alive: the interpreter joins the default
    executor's threads at exit, while the Python worker's threads die with its process."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():  # the invocation was cancelled meanwhile
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        with _SYNC_THREADS:
            try:
                ok, value = True, context.run(fn, **kwargs)
            except BaseException as exc:  # handed to the awaiting invocation
                ok, value = False, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(deliver, ok, value)

    start_thread(threading.Thread(target=run, name=f"function:{getattr(fn, '__name__', 'sync')}", daemon=True))
    return future


# ---------------------------------------------------------------------------------------------- NCRONTAB


def _cron_field(spec: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        step = 1
        if "/" in part:
            part, step_s = part.split("/", 1)
            step = int(step_s)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = int(part)
            end = high if step > 1 else start
        values.update(range(start, end + 1, step))
    return values


def next_occurrence(schedule: str, after: dt.datetime) -> dt.datetime:
    """Next time matching an NCRONTAB expression (6 fields with seconds, or 5) or a TimeSpan interval."""
    fields = schedule.split()
    if len(fields) == 1 and ":" in schedule:
        return after + dt.timedelta(seconds=_timespan(schedule))
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(f"not an NCRONTAB expression: {schedule!r}")
    names = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
    dow_spec = fields[5].lower()
    for k, v in names.items():
        dow_spec = dow_spec.replace(k, str(v))
    secs = _cron_field(fields[0], 0, 59)
    mins = _cron_field(fields[1], 0, 59)
    hours = _cron_field(fields[2], 0, 23)
    days = _cron_field(fields[3], 1, 31)
    months = _cron_field(fields[4], 1, 12)
    dows = {d % 7 for d in _cron_field(dow_spec, 0, 7)}
    t = (after + dt.timedelta(seconds=1)).replace(microsecond=0)
    minute = t.replace(second=0)
    for _ in range(60 * 24 * 370):
        if (
            minute.month in months
            and minute.day in days
            and (minute.weekday() + 1) % 7 in dows
            and minute.hour in hours
            and minute.minute in mins
        ):
            for s in sorted(secs):
                candidate = minute.replace(second=s)
                if candidate >= t:
                    return candidate
        minute += dt.timedelta(minutes=1)
    raise ValueError(f"no occurrence of {schedule!r} within a year")


# ---------------------------------------------------------------------------------------------- the host


class FunctionsHost:
    """Runs a function app's Service Bus-triggered functions against Service Bus (or the stand-in).

    ``functions`` optionally restricts the Service Bus triggers started to those names. ``run_timers`` also
    runs timer functions on their schedule (the CLI does; tests call :meth:`run_timer` instead).
    """

    def __init__(
        self,
        app_module_or_path: str | os.PathLike[str] | ModuleType = "function_app",
        settings: Mapping[str, str] | None = None,
        host_json: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        functions: list[str] | None = None,
        run_timers: bool = False,
        poll_interval: float = 0.5,
        stop_timeout: float = 30.0,
        reload: bool = True,
        worker: str = "inproc",
    ) -> None:
        if worker not in ("inproc", "real"):
            raise ValueError(f"worker must be 'inproc' or 'real', not {worker!r}")
        self.worker = worker
        self._worker: Any = None  # the emulators.functions_worker.RealWorker in "real" mode
        self.app_module_or_path = app_module_or_path
        self.settings = {str(k): str(v) for k, v in (settings or {}).items()}
        self.options = HostOptions.load(host_json)
        self.only = set(functions) if functions else None
        self.run_timers = run_timers
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.reload = reload
        self.invocations: list[Invocation] = []
        self.module: ModuleType | None = None
        self.triggers: dict[str, _Trigger] = {}
        self._saved_env: dict[str, str | None] = {}
        self._clients: dict[str, ServiceBusClient] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._in_flight = 0
        self._slots: dict[str, int] = {}
        self._busy: dict[str, int] = {}
        self._started = False
        self._peekers: dict[str, ServiceBusReceiver] = {}
        self._sem: dict[str, asyncio.Semaphore] = {}

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FunctionsHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def setting(self, name: str) -> str | None:
        if name in self.settings:
            return self.settings[name]
        return os.environ.get(name)

    def resolve(self, value: str | None) -> str | None:
        """Replace ``%NAME%`` with the app setting, as the host does for binding expressions."""
        if value is None:
            return None

        def sub(m: re.Match[str]) -> str:
            found = self.setting(m[1])
            if found is None:
                raise KeyError(f"app setting {m[1]!r} (referenced as %{m[1]}%) is not set")
            return found

        return _SETTING_REF.sub(sub, value)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._stopping = asyncio.Event()
        for key, value in self.settings.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        try:
            if self.worker == "real":
                from emulators.functions_worker import RealWorker

                self._worker = RealWorker(self.app_module_or_path)
                self.module, app = await self._worker.load()
            else:
                self.module, app = load_app(self.app_module_or_path, reload=self.reload)
            self._index(app)
            for trig in self.triggers.values():
                if trig.kind == "serviceBus" and (self.only is None or trig.name in self.only):
                    self._sem[trig.name] = asyncio.Semaphore(self.options.max_concurrent_calls)
                    self._slots[trig.name] = 0
                    self._busy[trig.name] = 0
                    self._spawn_slot(trig)
                elif trig.kind == "timer" and self.run_timers:
                    self._tasks.append(asyncio.create_task(self._timer_loop(trig), name=f"timer:{trig.name}"))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if not self._started:
            return
        self._stopping.set()
        # The peekers (wait_idle's) are not in use any more: close them while the receive loops wind down.
        peekers, self._peekers = list(self._peekers.values()), {}
        closing = asyncio.ensure_future(
            asyncio.gather(*(close_promptly(peeker) for peeker in peekers), return_exceptions=True)
        )
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=self.stop_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        await closing
        await asyncio.gather(*(client.close() for client in self._clients.values()), return_exceptions=True)
        self._clients.clear()
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env.clear()
        self._started = False

    def _index(self, app: Any) -> None:
        self.triggers.clear()
        # FunctionApp.get_functions() refuses to run twice on one app (it sees its own names as duplicates).
        functions = _INDEXED.get(id(app))
        if functions is None or functions[0] is not app:
            functions = (app, list(app.get_functions()))
            _INDEXED[id(app)] = functions
        for fn in functions[1]:
            trigger = fn.get_trigger()
            if trigger is None:
                continue
            binding = {k: v for k, v in trigger.get_dict_repr().items()}
            kind = str(binding.get("type"))
            name = fn.get_function_name()
            user_function = fn.get_user_function()
            if kind == "serviceBusTrigger":
                t = _Trigger(
                    name=name,
                    kind="serviceBus",
                    arg_name=str(binding["name"]),
                    user_function=user_function,
                    binding=binding,
                    queue=self.resolve(binding.get("queueName")),
                    topic=self.resolve(binding.get("topicName")),
                    subscription=self.resolve(binding.get("subscriptionName")),
                    connection=str(binding.get("connection") or DEFAULT_CONNECTION),
                    many=str(binding.get("cardinality") or "one").lower() == "many",
                    auto_complete=binding.get("autoCompleteMessages"),
                )
                if binding.get("isSessionsEnabled"):
                    log.warning("%s: sessions are not supported by the runner; receiving without a session", name)
                self.triggers[name] = t
            elif kind == "timerTrigger":
                self.triggers[name] = _Trigger(
                    name=name, kind="timer", arg_name=str(binding["name"]), user_function=user_function, binding=binding
                )
            else:
                log.info("%s: trigger type %s is not run by this host", name, kind)

    def _client(self, connection: str) -> ServiceBusClient:
        client = self._clients.get(connection)
        if client is not None:
            return client
        conn = self.setting(connection)
        if conn is None and not connection.startswith("AzureWebJobs"):
            conn = self.setting("AzureWebJobs" + connection)
        if conn is not None:
            client = ServiceBusClient.from_connection_string(conn)
        else:
            fqns = self.setting(f"{connection}__fullyQualifiedNamespace")
            if not fqns:
                raise KeyError(f"app setting {connection!r} (Service Bus connection) is not set")
            from azure.identity.aio import DefaultAzureCredential

            client_id = self.setting(f"{connection}__clientId")
            credential = DefaultAzureCredential(managed_identity_client_id=client_id)
            client = ServiceBusClient(fqns, credential)
        self._clients[connection] = client
        return client

    def _receiver(self, trig: _Trigger, *, prefetch: int) -> ServiceBusReceiver:
        client = self._client(trig.connection)
        if trig.queue:
            return client.get_queue_receiver(
                trig.queue, receive_mode=ServiceBusReceiveMode.PEEK_LOCK, prefetch_count=prefetch
            )
        return client.get_subscription_receiver(
            str(trig.topic),
            str(trig.subscription),
            receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
            prefetch_count=prefetch,
        )

    # ------------------------------------------------------------------ receive loops

    def _spawn_slot(self, trig: _Trigger) -> None:
        index = self._slots[trig.name]
        self._slots[trig.name] = index + 1
        task = asyncio.create_task(self._slot(trig, index), name=f"servicebus:{trig.name}:{index}")
        self._tasks.append(task)

    async def _slot(self, trig: _Trigger, index: int) -> None:
        """One receiver handling one message (or batch) at a time; slots are added while all are busy, up to
        maxConcurrentCalls (the host's processor has that many concurrent receive-and-handle calls)."""
        batch = self.options.max_message_batch_size if trig.many else 1
        while not self._stopping.is_set():
            try:
                async with _opened(self._receiver(trig, prefetch=self.options.prefetch_count)) as receiver:
                    while not self._stopping.is_set():
                        messages = await receiver.receive_messages(
                            max_message_count=batch, max_wait_time=self.poll_interval
                        )
                        if not messages:
                            continue
                        self._busy[trig.name] += 1
                        if (
                            self._busy[trig.name] >= self._slots[trig.name]
                            and self._slots[trig.name] < self.options.max_concurrent_calls
                            and not self._stopping.is_set()
                        ):
                            self._spawn_slot(trig)
                        try:
                            await self._invoke(trig, receiver, messages)
                        finally:
                            self._busy[trig.name] -= 1
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self._stopping.is_set():
                    return
                log.warning("%s[%d]: receiver failed (%r); reconnecting", trig.name, index, err)
                await asyncio.sleep(0.5)

    async def _invoke(self, trig: _Trigger, receiver: ServiceBusReceiver, messages: list[Any]) -> None:
        self._in_flight += 1
        started = time.time()
        t0 = time.monotonic()
        first = messages[0]
        renewal: asyncio.Task[None] | None = None
        try:
            if self.options.max_auto_lock_renewal_duration > 0 and not trig.many:
                # Batches are not renewed (the extension documents renewal for single messages only).
                renewal = asyncio.create_task(self._renew_while_running(trig, receiver, first))
            converted = [to_function_message(m) for m in messages]
            arg: Any = converted if trig.many else converted[0]
            error: BaseException | None = None
            try:
                if self._worker is not None:
                    await self._worker.invoke_messages(trig, messages, self.options.function_timeout)
                else:
                    await self._call(trig, arg)
            except Exception as err:
                error = err
                log.warning(
                    "%s: function failed for message %s (delivery %s): %r",
                    trig.name,
                    first.message_id,
                    host_delivery_count(first),
                    err,
                    exc_info=err,
                )
            auto_complete = self.options.auto_complete_messages if trig.auto_complete is None else trig.auto_complete
            outcome = "abandoned" if error is not None else "completed"
            settle_error: str | None = None
            if not auto_complete:
                outcome = "not-settled"
            else:
                for m in messages:
                    try:
                        if error is None:
                            await receiver.complete_message(m)
                        else:
                            await receiver.abandon_message(m)
                    except Exception as err:
                        settle_error = repr(err)
                        outcome = "lock-lost"
                        log.warning("%s: settling message %s failed: %r", trig.name, m.message_id, err)
            self.invocations.append(
                Invocation(
                    function=trig.name,
                    message_id=str(first.message_id) if first.message_id is not None else None,
                    delivery_count=host_delivery_count(first),
                    outcome=outcome,
                    exception=repr(error) if error is not None else None,
                    duration=time.monotonic() - t0,
                    started_at=started,
                    sequence_number=first.sequence_number,
                    message_ids=[str(m.message_id) for m in messages],
                    settle_error=settle_error,
                )
            )
        finally:
            if renewal is not None:
                renewal.cancel()
                with contextlib.suppress(BaseException):
                    await renewal
            self._in_flight -= 1

    async def _renew_while_running(self, trig: _Trigger, receiver: ServiceBusReceiver, msg: Any) -> None:
        """Renew the message lock until cancelled or maxAutoLockRenewalDuration has passed.

        Guess: the host's processor renews shortly before expiry; this renews at half the remaining lock time,
        which also works for the short LockDurations used in tests (the SDK's AutoLockRenewer polls once a
        second and lets locks of 2 s or less lapse)."""
        deadline = time.monotonic() + self.options.max_auto_lock_renewal_duration
        while True:
            until = msg.locked_until_utc
            if until is None:
                return
            remaining = (until - dt.datetime.now(dt.UTC)).total_seconds()
            await asyncio.sleep(max(0.05, remaining / 2))
            if time.monotonic() >= deadline:
                return
            try:
                await receiver.renew_message_lock(msg)
            except Exception as err:
                log.warning("%s: renewing the lock of %s failed: %r", trig.name, msg.message_id, err)
                return

    async def _call(self, trig: _Trigger, arg: Any) -> Any:
        fn = trig.user_function
        kwargs: dict[str, Any] = {trig.arg_name: arg}
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        if "context" in params and trig.arg_name != "context":
            directory = os.path.dirname(getattr(self.module, "__file__", "") or "")
            kwargs["context"] = _Context(trig.name, directory)
        timeout = self.options.function_timeout
        # Sync functions run in a worker thread, as the Python worker does.
        coro = fn(**kwargs) if inspect.iscoroutinefunction(fn) else _run_sync(fn, kwargs)
        if timeout is None:
            return await coro
        return await asyncio.wait_for(coro, timeout)

    # ------------------------------------------------------------------ timers

    async def run_timer(self, name: str, *, past_due: bool = False, raise_errors: bool = True) -> Invocation:
        """Invoke a timer-triggered function once. Its exception is re-raised unless ``raise_errors`` is false;
        either way the invocation is recorded with outcome "failed"."""
        if not self._started:
            raise RuntimeError("start() the host first")
        trig = self.triggers.get(name)
        if trig is None or trig.kind != "timer":
            raise KeyError(f"no timer-triggered function named {name!r}")
        request = TimerRequest(
            past_due=past_due,
            schedule_status={"Last": None, "Next": None, "LastUpdated": None},
            schedule={"AdjustForDST": True},
        )
        self._in_flight += 1
        started, t0 = time.time(), time.monotonic()
        error: BaseException | None = None
        try:
            if self._worker is not None:
                await self._worker.invoke_timer(trig, past_due=past_due, timeout=self.options.function_timeout)
            else:
                await self._call(trig, request)
        except Exception as err:
            error = err
            log.warning("%s: timer function failed: %r", name, err, exc_info=err)
        finally:
            self._in_flight -= 1
        record = Invocation(
            function=name,
            message_id=None,
            delivery_count=None,
            outcome="failed" if error else "completed",
            exception=repr(error) if error else None,
            duration=time.monotonic() - t0,
            started_at=started,
        )
        self.invocations.append(record)
        if error is not None and raise_errors:
            raise error
        return record

    async def _timer_loop(self, trig: _Trigger) -> None:
        schedule = str(self.resolve(str(trig.binding.get("schedule"))))
        if trig.binding.get("runOnStartup"):
            await self.run_timer(trig.name, raise_errors=False)
        while not self._stopping.is_set():
            now = dt.datetime.now()
            due = next_occurrence(schedule, now)
            delay = max(0.0, (due - dt.datetime.now()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            await self.run_timer(trig.name, raise_errors=False)

    # ------------------------------------------------------------------ idleness

    async def _entity_busy(self, trig: _Trigger, grace: float, include_scheduled: bool) -> bool:
        peeker = self._peekers.get(trig.name)
        if peeker is None:
            peeker = self._receiver(trig, prefetch=0)
            await peeker.__aenter__()
            self._peekers[trig.name] = peeker
        horizon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
        seq = 1  # explicit: with 0 the SDK continues after the last peeked message
        while True:
            batch = await peeker.peek_messages(max_message_count=100, sequence_number=seq)
            for m in batch:
                state = int(getattr(m, "state", 0) or 0)
                if state == 1:  # deferred: nobody receives it without its sequence number
                    continue
                if state == 2 and not include_scheduled:
                    when = m.scheduled_enqueue_time_utc
                    if when is not None and when > horizon:
                        continue
                return True
            if len(batch) < 100:
                return False
            seq = int(batch[-1].sequence_number or 0) + 1

    async def is_idle(self, *, grace: float = 1.0, include_scheduled: bool = False) -> bool:
        if self._in_flight:
            return False
        for trig in self.triggers.values():
            if trig.kind != "serviceBus" or trig.name not in self._slots:
                continue
            if await self._entity_busy(trig, grace, include_scheduled):
                return False
        return self._in_flight == 0

    async def wait_idle(
        self, timeout: float = 30.0, *, grace: float = 1.0, include_scheduled: bool = False, interval: float = 0.1
    ) -> None:
        """Return once every trigger entity is empty: no active or locked message, none scheduled within
        ``grace`` seconds (any scheduled one if ``include_scheduled``), no handler running. Deferred and
        dead-lettered messages do not count. Raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while True:
            if await self.is_idle(grace=grace, include_scheduled=include_scheduled):
                quiet += 1
                if quiet >= 2:
                    return
            else:
                quiet = 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"function host not idle after {timeout}s ({self._in_flight} invocations in flight)")
            await asyncio.sleep(interval)


# ---------------------------------------------------------------------------------------------- CLI


def _read_settings(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    values = doc.get("Values", doc)
    return {str(k): str(v) for k, v in values.items()}


async def _run_cli(args: argparse.Namespace) -> None:
    import signal

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
        stop_timeout=args.stop_timeout,
    )
    try:
        async with host:
            names = ", ".join(
                f"{t.name} ({t.entity if t.kind == 'serviceBus' else t.binding.get('schedule')})"
                for t in host.triggers.values()
            )
            print(f"Functions: {names}", flush=True)
            await stop.wait()
            log.info("stopping: invocations in flight get %.1f s, then they are cancelled", args.stop_timeout)
    finally:
        if standin is not None:
            standin.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a function app's Service Bus and timer functions locally.")
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
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    import signal

    # Until the loop installs its handlers, SIGTERM interrupts like Ctrl-C does (and ends the run cleanly).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_cli(args))


if __name__ == "__main__":
    main()
