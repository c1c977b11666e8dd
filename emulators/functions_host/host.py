"""The host runner itself: app settings in the environment, the app loaded and indexed, each trigger kind started,
invocations recorded, and everything stopped within ``stop_timeout``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from azure.functions.timer import TimerRequest
from azure.servicebus.aio import ServiceBusReceiver

from .host_json import HostOptions
from .http_triggers import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, HttpAnswer, HttpCall, HttpTriggers, answer_in_process
from .invoking import Invocation, call_in_process
from .loading import Trigger, index_functions, load_app, resolve_setting_refs
from .messages import to_function_message
from .receiving import ServiceBusReceivers
from .schedule import next_occurrence, run_on_schedule
from .settlement import invoke_and_settle

log = logging.getLogger("emulators.functions_host")


class FunctionsHost:
    """Runs a function app's Service Bus, timer and HTTP functions against Service Bus (or the stand-in).

    ``functions`` optionally restricts the Service Bus and HTTP triggers started to those names. ``run_timers``
    also runs timer functions on their schedule (the CLI does; tests call :meth:`run_timer` instead). HTTP
    functions are served on ``http_host:http_port`` (0: a free port, None: not served) when the app has any;
    ``http_key`` is the key FUNCTION and ADMIN routes ask for (default: a new random one, :attr:`http_key`).
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
        http_host: str = DEFAULT_HTTP_HOST,
        http_port: int | None = DEFAULT_HTTP_PORT,
        http_key: str | None = None,
        method_mismatch_status: int = 405,
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
        self.http_host = http_host
        self.http_port = http_port
        self.http_key = http_key or secrets.token_urlsafe(24)
        self.method_mismatch_status = method_mismatch_status
        self.invocations: list[Invocation] = []
        self.module: ModuleType | None = None
        self.triggers: dict[str, Trigger] = {}
        self.http: HttpTriggers | None = None
        self._saved_env: dict[str, str | None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._receivers: ServiceBusReceivers | None = None
        self._in_flight = 0
        self._started = False

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
        return resolve_setting_refs(value, self.setting)

    @property
    def http_url(self) -> str | None:
        """The base of the HTTP routes (``http://127.0.0.1:7071/api``) while they are served."""
        return self.http.base_url if self.http is not None else None

    def _wanted(self, trig: Trigger) -> bool:
        return self.only is None or trig.name in self.only

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
            self.triggers = index_functions(app, self.setting)
            self._receivers = ServiceBusReceivers(
                self.setting, self.options, self._handle_messages, self._stopping, poll_interval=self.poll_interval
            )
            http_triggers: list[Trigger] = []
            for trig in self.triggers.values():
                if trig.kind == "serviceBus" and self._wanted(trig):
                    self._receivers.start(trig)
                elif trig.kind == "timer" and self.run_timers:
                    schedule = str(self.resolve(str(trig.binding.get("schedule"))))
                    next_occurrence(schedule, dt.datetime.now())  # a schedule the host cannot read fails the start
                    self._tasks.append(asyncio.create_task(self._timer_loop(trig, schedule), name=f"timer:{trig.name}"))
                elif trig.kind == "http" and self._wanted(trig):
                    http_triggers.append(trig)
            if http_triggers and self.http_port is not None:
                await self._serve_http(http_triggers)
        except BaseException:
            await self.stop()
            raise

    async def _serve_http(self, triggers: list[Trigger]) -> None:
        self.http = HttpTriggers(
            triggers,
            self._answer_http,
            self.invocations.append,
            key=self.http_key,
            route_prefix=self.options.route_prefix,
            host=self.http_host,
            port=self.http_port or 0,
            shutdown_timeout=self.stop_timeout,
            method_mismatch_status=self.method_mismatch_status,
        )
        await self.http.start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._stopping.set()
        receivers, self._receivers = self._receivers, None
        http, self.http = self.http, None
        closing = asyncio.ensure_future(receivers.close_peekers() if receivers is not None else asyncio.sleep(0))
        http_stopped = asyncio.ensure_future(http.stop() if http is not None else asyncio.sleep(0))
        tasks = [*self._tasks, *(receivers.tasks if receivers is not None else [])]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.stop_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await http_stopped
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        await closing
        if receivers is not None:
            await receivers.close_clients()
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env.clear()
        self._started = False

    # ------------------------------------------------------------------ invocations

    async def _handle_messages(self, trig: Trigger, receiver: ServiceBusReceiver, messages: list[Any]) -> None:
        async def call() -> None:
            if self._worker is not None:
                await self._worker.invoke_messages(trig, messages, self.options.function_timeout)
            else:
                converted = [to_function_message(m) for m in messages]
                await call_in_process(
                    trig, converted if trig.many else converted[0], self.module, self.options.function_timeout
                )

        self._in_flight += 1
        try:
            self.invocations.append(await invoke_and_settle(trig, receiver, messages, call, self.options))
        finally:
            self._in_flight -= 1

    async def _answer_http(self, trig: Trigger, call: HttpCall) -> HttpAnswer:
        self._in_flight += 1
        try:
            if self._worker is not None:
                status, headers, body = await self._worker.invoke_http(trig, call, self.options.function_timeout)
                return HttpAnswer(status, headers, body)
            return await answer_in_process(trig, call, self.module, self.options.function_timeout)
        finally:
            self._in_flight -= 1

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
                await call_in_process(trig, request, self.module, self.options.function_timeout)
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

    async def _timer_loop(self, trig: Trigger, schedule: str) -> None:
        async def fire() -> None:
            await self.run_timer(trig.name, raise_errors=False)

        await run_on_schedule(schedule, fire, self._stopping, run_on_startup=bool(trig.binding.get("runOnStartup")))

    # ------------------------------------------------------------------ idleness

    async def is_idle(self, *, grace: float = 1.0, include_scheduled: bool = False) -> bool:
        if self._in_flight:
            return False
        if self._receivers is not None and await self._receivers.any_busy(grace, include_scheduled):
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
