"""Calling a user function in-process the way the Python worker does: a ``context`` argument for functions that
declare one, sync functions on a bounded pool of threads, ``functionTimeout`` as a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import azure.functions as func

from emulators.stop_signals import start_thread

from .loading import Trigger


@dataclass
class Invocation:
    """One handler invocation: outcome is "completed" | "abandoned" (Service Bus) or "completed" | "failed"
    (timer, HTTP); "lock-lost" when settlement failed because the lock was gone, "not-settled" when
    ``autoCompleteMessages`` is false. ``status_code`` is the HTTP response's."""

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
    status_code: int | None = None


class FunctionContext(func.Context):
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


def _sync_thread_count() -> int:
    # The Python worker's pool: PYTHON_THREADPOOL_THREAD_COUNT, else ThreadPoolExecutor's default size.
    configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else min(32, (os.cpu_count() or 1) + 4)


_SYNC_THREADS = threading.BoundedSemaphore(_sync_thread_count())


def run_sync(fn: Callable[..., Any], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
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


async def call_in_process(trig: Trigger, arg: Any, module: ModuleType | None, timeout: float | None) -> Any:
    """Call ``trig``'s user function with its trigger argument and return what it returns."""
    fn = trig.user_function
    kwargs: dict[str, Any] = {trig.arg_name: arg}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if "context" in params and trig.arg_name != "context":
        directory = os.path.dirname(getattr(module, "__file__", "") or "")
        kwargs["context"] = FunctionContext(trig.name, directory)
    # Sync functions run in a worker thread, as the Python worker does.
    coro = fn(**kwargs) if inspect.iscoroutinefunction(fn) else run_sync(fn, kwargs)
    if timeout is None:
        return await coro
    return await asyncio.wait_for(coro, timeout)
