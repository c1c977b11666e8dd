"""Drive ``azure_functions_runtime`` the way the proxy worker does, for the host runner's ``worker="real"`` mode.

The proxy worker receives the host's gRPC messages and calls the library's handlers with a ``WorkerRequest``:
``start_threadpool_executor()``, then ``worker_init_request`` (with ``properties={"protos": ..., "host": ...}``; the
library indexes the app here), ``functions_metadata_request``, one ``function_load_request`` per function, and an
``invocation_request`` per trigger event. :class:`LanguageWorker` does the same in-process with the messages of
:mod:`.rpc`; :class:`RealWorker` connects it to :class:`emulators.functions_host.FunctionsHost`: the host's
triggers come from the worker's function metadata (worker indexing), each message or timer tick becomes an
InvocationRequest built by :mod:`.host_data`, and the response's status decides the settlement (``Success``:
complete, anything else: abandon).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import importlib.util
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from .host_data import http_answer, http_input, service_bus_input, timer_input
from .rpc import (
    PROTOS,
    FunctionLoadRequest,
    FunctionsMetadataRequest,
    InvocationRequest,
    InvocationResponse,
    ParameterBinding,
    RetryContext,
    RpcException,
    RpcFunctionMetadata,
    RpcTraceContext,
    StatusResult,
    StreamingMessage,
    TypedData,
    WorkerInitRequest,
    WorkerRequest,
)

LIBRARY = "azure_functions_runtime"
DEFAULT_SCRIPT_FILE = "function_app.py"
SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"
#: What WorkerInitRequest.host_version says; the library does not read it.
HOST_VERSION = "4.0.0-host-runner"

_SETTING_REF = re.compile(r"%([^%]+)%")


class WorkerError(RuntimeError):
    """The worker answered init, metadata or load with a failure status."""

    def __init__(self, step: str, exception: RpcException) -> None:
        super().__init__(f"{step} failed: {exception.message}\n{exception.stack_trace}".rstrip())
        self.step = step
        self.rpc_exception = exception


class InvocationFailed(Exception):
    """The worker answered an invocation with a failure status (the function raised, or its input could not be
    decoded): the host abandons the message."""

    def __init__(self, response: InvocationResponse) -> None:
        exception = response.result.exception
        super().__init__(exception.message or "Result: Failure")
        self.response = response
        self.stack_trace = exception.stack_trace
        if exception.stack_trace:
            self.add_note(f"in the worker:\n{exception.stack_trace.rstrip()}")


def runtime_available() -> bool:
    """Whether the worker library is importable here (Python 3.13 and later)."""
    return importlib.util.find_spec(LIBRARY) is not None


def _library() -> Any:
    try:
        return importlib.import_module(LIBRARY)
    except ImportError as err:
        raise RuntimeError(
            f"worker='real' needs the {LIBRARY} package (the Python 3.13+ language worker library): "
            "run scripts/setup and use .venv313"
        ) from err


def _request(**content: Any) -> StreamingMessage:
    return StreamingMessage(request_id=str(uuid.uuid4()), **content)


def _trace_context() -> RpcTraceContext:
    return RpcTraceContext(trace_parent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00", trace_state="")


_ACTIVE: list[LanguageWorker] = []


class LanguageWorker:
    """One language worker: the library's module state (registry, protos, thread pool) is per process, as a real
    worker process is per app, so only one may be started at a time."""

    def __init__(self, app_directory: str | os.PathLike[str], script_file: str = DEFAULT_SCRIPT_FILE) -> None:
        self.app_directory = Path(app_directory).resolve()
        self.script_file = script_file
        self.metadata: dict[str, RpcFunctionMetadata] = {}
        self._library: Any = None

    async def start(self) -> list[RpcFunctionMetadata]:
        if _ACTIVE:
            raise RuntimeError("a language worker is already running in this process; stop its host first")
        library = _library()
        directory, module_name = str(self.app_directory), Path(self.script_file).stem
        if directory not in sys.path:
            sys.path.insert(0, directory)
        # A worker process imports the app once. An earlier import (another worker, the tests) is not reused: the
        # app's decorators would register every function a second time, and indexing would refuse the names.
        sys.modules.pop(module_name, None)
        _ACTIVE.append(self)
        self._library = library
        try:
            library.start_threadpool_executor()
            with self._script_file_setting():
                init = await library.worker_init_request(
                    WorkerRequest(
                        name="WorkerInitRequest",
                        request=_request(
                            worker_init_request=WorkerInitRequest(
                                host_version=HOST_VERSION,
                                function_app_directory=str(self.app_directory),
                                worker_directory=str(Path(library.__file__).parent),
                            )
                        ),
                        properties={"protos": PROTOS, "host": "127.0.0.1"},
                    )
                )
                self._check("WorkerInitRequest", init.result)
                listing = await library.functions_metadata_request(
                    WorkerRequest(
                        name="WorkerMetadataRequest",
                        request=_request(
                            functions_metadata_request=FunctionsMetadataRequest(
                                function_app_directory=str(self.app_directory)
                            )
                        ),
                    )
                )
            self._check("FunctionsMetadataRequest", listing.result)
            for metadata in listing.function_metadata_results or []:
                loaded = await library.function_load_request(
                    WorkerRequest(
                        name="FunctionLoadRequest",
                        request=_request(
                            function_load_request=FunctionLoadRequest(
                                function_id=metadata.function_id, metadata=metadata
                            )
                        ),
                    )
                )
                self._check(f"FunctionLoadRequest({metadata.name})", loaded.result)
                self.metadata[metadata.name] = metadata
        except BaseException:
            self.stop()
            raise
        return list(self.metadata.values())

    @contextmanager
    def _script_file_setting(self) -> Iterator[None]:
        """The library finds the app's script through the PYTHON_SCRIPT_FILE_NAME app setting."""
        if self.script_file == DEFAULT_SCRIPT_FILE or os.environ.get(SCRIPT_FILE_SETTING):
            yield
            return
        os.environ[SCRIPT_FILE_SETTING] = self.script_file
        try:
            yield
        finally:
            os.environ.pop(SCRIPT_FILE_SETTING, None)

    @staticmethod
    def _check(step: str, result: StatusResult) -> None:
        if result.status != StatusResult.Success:
            raise WorkerError(step, result.exception)

    async def invoke(
        self,
        function_name: str,
        input_data: list[ParameterBinding],
        trigger_metadata: Mapping[str, TypedData],
        *,
        timeout: float | None = None,
    ) -> InvocationResponse:
        """Send one InvocationRequest and return the worker's InvocationResponse (a failure is a response too)."""
        if self._library is None:
            raise RuntimeError("start() the worker first")
        metadata = self.metadata[function_name]
        request = InvocationRequest(
            invocation_id=str(uuid.uuid4()),
            function_id=metadata.function_id,
            input_data=input_data,
            trigger_metadata=dict(trigger_metadata),
            trace_context=_trace_context(),
            retry_context=RetryContext(),
        )
        call = self._library.invocation_request(
            WorkerRequest(name="FunctionInvocationRequest", request=_request(invocation_request=request))
        )
        response: InvocationResponse = await (call if timeout is None else asyncio.wait_for(call, timeout))
        return response

    def stop(self) -> None:
        if self._library is not None:
            self._library.stop_threadpool_executor()
            self._library = None
        if self in _ACTIVE:
            _ACTIVE.remove(self)


# ------------------------------------------------------------------------------------------- the host's side


class _Binding:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = dict(raw)

    def get_dict_repr(self) -> dict[str, Any]:
        return dict(self._raw)


class _IndexedFunction:
    """A function as the host knows it from the worker's metadata (the shape FunctionsHost indexes)."""

    def __init__(self, metadata: RpcFunctionMetadata) -> None:
        self.metadata = metadata
        self.bindings = [json.loads(raw) for raw in metadata.raw_bindings]

    def get_function_name(self) -> str:
        return self.metadata.name

    def get_trigger(self) -> _Binding | None:
        for binding in self.bindings:
            if str(binding.get("type", "")).lower().endswith("trigger"):
                return _Binding(binding)
        return None

    def get_user_function(self) -> Any:
        name = self.metadata.name

        def through_the_worker(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError(f"{name} runs in the language worker; the host only sends it invocation requests")

        return through_the_worker


class _IndexedApp:
    def __init__(self, functions: list[_IndexedFunction]) -> None:
        self._functions = functions

    def get_functions(self) -> list[_IndexedFunction]:
        return list(self._functions)


def locate_app(app_module_or_path: str | os.PathLike[str] | ModuleType) -> Path:
    """The app's script file, for a module name, a module, a file or a directory (``function_app.py`` in it)."""
    if isinstance(app_module_or_path, ModuleType):
        path = Path(str(app_module_or_path.__file__))
    else:
        target = os.fspath(app_module_or_path)
        if target.endswith(".py") or os.sep in target or "/" in target:
            path = Path(target)
            if path.is_dir():
                path = path / DEFAULT_SCRIPT_FILE
        else:
            spec = importlib.util.find_spec(target)
            if spec is None or not spec.origin:
                raise ImportError(f"cannot find the function app module {target!r}")
            path = Path(spec.origin)
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no function app script at {path}")
    return path


def _resolve(value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        found = os.environ.get(m[1])
        if found is None:
            raise KeyError(f"app setting {m[1]!r} (referenced as %{m[1]}%) is not set")
        return found

    return _SETTING_REF.sub(sub, value)


class RealWorker:
    """The host runner's link to a :class:`LanguageWorker` running the app.

    Like a fresh worker process, it imports the app's script once per start, as a top-level module named after
    the file (``function_app``), from the script's directory; ``reload`` has no other meaning here."""

    def __init__(self, app_module_or_path: str | os.PathLike[str] | ModuleType) -> None:
        self.script = locate_app(app_module_or_path)
        self.worker = LanguageWorker(self.script.parent, self.script.name)
        self._timer_last: dict[str, dt.datetime] = {}

    async def load(self) -> tuple[ModuleType | None, _IndexedApp]:
        metadata = await self.worker.start()
        functions = [_IndexedFunction(m) for m in metadata]
        for fn in functions:
            trigger = fn.get_trigger()
            if trigger is not None and str(trigger.get_dict_repr().get("cardinality", "one")).lower() == "many":
                self.worker.stop()
                raise NotImplementedError(
                    f"{fn.get_function_name()}: cardinality 'many' is not run in real-worker mode"
                )
        return sys.modules.get(self.script.stem), _IndexedApp(functions)

    async def invoke_messages(self, trig: Any, messages: list[Any], timeout: float | None) -> None:
        """Invoke ``trig``'s function for one message; raises when the host would abandon it."""
        from emulators.functions_host.settlement import host_delivery_count

        [message] = messages
        input_data, metadata = service_bus_input(
            message,
            arg_name=trig.arg_name,
            data_type=trig.binding.get("dataType"),
            function_name=trig.name,
            delivery_count=host_delivery_count(message),
        )
        response = await self.worker.invoke(trig.name, input_data, metadata, timeout=timeout)
        if response.result.status != StatusResult.Success:
            raise InvocationFailed(response)

    async def invoke_timer(self, trig: Any, *, past_due: bool, timeout: float | None) -> None:
        """Invoke a timer function once with the TimerInfo the host would send; raises on a failure status."""
        from emulators.functions_host.schedule import next_occurrence

        binding = trig.binding
        schedule = _resolve(str(binding.get("schedule", "")))
        is_interval = len(schedule.split()) == 1 and ":" in schedule
        now = dt.datetime.now(dt.UTC)
        status: dict[str, dt.datetime | None] | None = None
        if binding.get("useMonitor", True) is not False:
            status = {
                "Last": self._timer_last.get(trig.name),
                "Next": next_occurrence(schedule, now),
                "LastUpdated": now,
            }
        input_data, metadata = timer_input(
            arg_name=trig.arg_name,
            function_name=trig.name,
            past_due=past_due,
            adjust_for_dst=not is_interval,
            status=status,
        )
        self._timer_last[trig.name] = now
        response = await self.worker.invoke(trig.name, input_data, metadata, timeout=timeout)
        if response.result.status != StatusResult.Success:
            raise InvocationFailed(response)

    async def invoke_http(
        self, trig: Any, call: Any, timeout: float | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Invoke an HTTP function for one request (``call``: method, url, headers, query, route_params, body);
        return the status, headers and body the host answers. Raises on a failure status (the host's 500)."""
        input_data, metadata = http_input(
            arg_name=trig.arg_name,
            function_name=trig.name,
            method=call.method,
            url=call.url,
            headers=call.headers,
            query=call.query,
            route_params=call.route_params,
            body=call.body,
        )
        response = await self.worker.invoke(trig.name, input_data, metadata, timeout=timeout)
        if response.result.status != StatusResult.Success:
            raise InvocationFailed(response)
        from emulators.functions_host.http_triggers import set_cookie_header

        status, headers, body, cookies = http_answer(response.return_value)
        return status, headers + [("Set-Cookie", set_cookie_header(**cookie)) for cookie in cookies], body

    def stop(self) -> None:
        self.worker.stop()
