"""The Functions RPC messages the worker library reads and builds, as small Python classes.

The Functions host and the Python language worker talk gRPC with the messages of ``FunctionRpc.proto``. The proxy
worker owns the wire: it hands ``azure_functions_runtime`` the decoded request message and a ``protos`` namespace
(``WorkerRequest.properties["protos"]`` on the init request), and the library builds its responses only through
that namespace. So the library never imports protobuf or grpc itself, and these classes can stand in for the
generated ones: same message names, same field names, the protobuf behaviours the library relies on (a default
for every unset field, ``WhichOneof`` for oneof groups, enum values as class attributes, unknown field names
refused).

Only the messages the library touches for worker init, function metadata, function load and invocations (HTTP
ones included) are here; field names and enum values follow ``FunctionRpc.proto``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar


def _list() -> list[Any]:
    return []


def _dict() -> dict[str, Any]:
    return {}


def _none() -> None:
    return None


class Message:
    """A protobuf-like message: keyword construction, defaults for unset fields, oneof tracking."""

    FIELDS: ClassVar[Mapping[str, Callable[[], Any]]] = {}
    ONEOFS: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    REPEATED: ClassVar[frozenset[str]] = frozenset()
    MAPS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **fields: Any) -> None:
        unknown = sorted(set(fields) - set(self.FIELDS))
        if unknown:
            raise ValueError(f'Protocol message {type(self).__name__} has no "{unknown[0]}" field.')
        object.__setattr__(self, "_present", set())
        for name, default in self.FIELDS.items():
            object.__setattr__(self, name, default())
        for name, value in fields.items():
            if value is not None:  # protobuf treats None as "leave unset"
                setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.FIELDS:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        if name in self.REPEATED:
            value = list(value)
        elif name in self.MAPS:
            value = dict(value)
        present: set[str] = self._present  # type: ignore[attr-defined]
        for members in self.ONEOFS.values():
            if name in members:
                for other in members:
                    if other != name and other in present:
                        present.discard(other)
                        object.__setattr__(self, other, self.FIELDS[other]())
        present.add(name)
        object.__setattr__(self, name, value)

    def WhichOneof(self, group: str) -> str | None:
        members = self.ONEOFS.get(group)
        if members is None:
            raise ValueError(f'Protocol message has no "{group}" oneof.')
        present: set[str] = self._present  # type: ignore[attr-defined]
        return next((m for m in members if m in present), None)

    def HasField(self, name: str) -> bool:
        return name in self._present  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS if f in self._present)  # type: ignore[attr-defined]
        return f"{type(self).__name__}({shown})"


def _fields(**defaults: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    return defaults


# ------------------------------------------------------------------------------------------- results


class RpcException(Message):
    message: str
    stack_trace: str
    FIELDS = _fields(source=str, stack_trace=str, message=str, is_user_exception=bool, type=str)


class StatusResult(Message):
    status: int
    exception: RpcException
    Failure = 0
    Success = 1
    Cancelled = 2
    FIELDS = _fields(status=int, result=str, exception=RpcException, logs=_list)
    REPEATED = frozenset({"logs"})


# ------------------------------------------------------------------------------------------- worker init


class WorkerInitRequest(Message):
    FIELDS = _fields(
        host_version=str, capabilities=_dict, log_categories=_dict, worker_directory=str, function_app_directory=str
    )
    MAPS = frozenset({"capabilities", "log_categories"})


class WorkerMetadata(Message):
    FIELDS = _fields(
        runtime_name=str, runtime_version=str, worker_version=str, worker_bitness=str, custom_properties=_dict
    )
    MAPS = frozenset({"custom_properties"})


class WorkerInitResponse(Message):
    result: StatusResult
    FIELDS = _fields(worker_version=str, capabilities=_dict, result=StatusResult, worker_metadata=WorkerMetadata)
    MAPS = frozenset({"capabilities"})


# ------------------------------------------------------------------------------------------- metadata, load


class BindingInfo(Message):
    # enum Direction (``in`` is a Python keyword; protobuf exposes it through getattr as well)
    out = 1
    inout = 2
    # enum DataType
    undefined = 0
    string = 1
    binary = 2
    stream = 3
    FIELDS = _fields(type=str, direction=int, data_type=int, properties=_dict)
    MAPS = frozenset({"properties"})


setattr(BindingInfo, "in", 0)


class RpcRetryOptions(Message):
    exponential_backoff = 0
    fixed_delay = 1
    FIELDS = _fields(
        retry_strategy=int, max_retry_count=int, delay_interval=_none, minimum_interval=_none, maximum_interval=_none
    )


class RpcFunctionMetadata(Message):
    name: str
    function_id: str
    raw_bindings: list[str]
    properties: dict[str, str]
    FIELDS = _fields(
        name=str,
        directory=str,
        script_file=str,
        entry_point=str,
        bindings=_dict,
        is_proxy=bool,
        status=StatusResult,
        language=str,
        raw_bindings=_list,
        function_id=str,
        managed_dependency_enabled=bool,
        retry_options=RpcRetryOptions,
        properties=_dict,
    )
    REPEATED = frozenset({"raw_bindings"})
    MAPS = frozenset({"bindings", "properties"})


class FunctionsMetadataRequest(Message):
    FIELDS = _fields(function_app_directory=str)


class FunctionMetadataResponse(Message):
    function_metadata_results: list[RpcFunctionMetadata]
    result: StatusResult
    FIELDS = _fields(function_metadata_results=_list, result=StatusResult, use_default_metadata_indexing=bool)
    REPEATED = frozenset({"function_metadata_results"})


class FunctionLoadRequest(Message):
    FIELDS = _fields(function_id=str, metadata=RpcFunctionMetadata, managed_dependency_enabled=bool)


class FunctionLoadResponse(Message):
    result: StatusResult
    FIELDS = _fields(function_id=str, result=StatusResult, is_dependency_downloaded=bool)


# ------------------------------------------------------------------------------------------- data


class CollectionString(Message):
    FIELDS = _fields(string=_list)
    REPEATED = frozenset({"string"})


class CollectionBytes(Message):
    FIELDS = _fields(bytes=_list)
    REPEATED = frozenset({"bytes"})


class CollectionDouble(Message):
    FIELDS = _fields(double=_list)
    REPEATED = frozenset({"double"})


class CollectionSInt64(Message):
    FIELDS = _fields(sint64=_list)
    REPEATED = frozenset({"sint64"})


class TypedData(Message):
    """``oneof data``: what the host sends for a binding value or a trigger metadata entry."""

    FIELDS = _fields(
        string=str,
        json=str,
        bytes=bytes,
        stream=bytes,
        http=_none,
        int=int,
        double=float,
        collection_bytes=CollectionBytes,
        collection_string=CollectionString,
        collection_double=CollectionDouble,
        collection_sint64=CollectionSInt64,
        model_binding_data=_none,
        collection_model_binding_data=_none,
    )
    ONEOFS = {"data": tuple(FIELDS)}


class NullableString(Message):
    FIELDS = _fields(value=str)


class NullableBool(Message):
    FIELDS = _fields(value=bool)


class NullableDouble(Message):
    FIELDS = _fields(value=float)


class Timestamp(Message):
    """``google.protobuf.Timestamp``; the library looks for it in the namespace before importing protobuf."""

    FIELDS = _fields(seconds=int, nanos=int)


class NullableTimestamp(Message):
    FIELDS = _fields(value=Timestamp)


class RpcHttpCookie(Message):
    class SameSite:
        Lax = 1
        Strict = 2
        ExplicitNone = 3

    FIELDS = _fields(
        name=str,
        value=str,
        domain=NullableString,
        path=NullableString,
        expires=NullableTimestamp,
        secure=NullableBool,
        http_only=NullableBool,
        same_site=int,
        max_age=NullableDouble,
    )


setattr(RpcHttpCookie.SameSite, "None", 0)


class RpcHttp(Message):
    """An HTTP request (host to worker) or response (worker to host)."""

    method: str
    url: str
    headers: dict[str, str]
    body: TypedData
    params: dict[str, str]
    status_code: str
    query: dict[str, str]
    cookies: list[RpcHttpCookie]
    FIELDS = _fields(
        method=str,
        url=str,
        headers=_dict,
        body=TypedData,
        params=_dict,
        status_code=str,
        query=_dict,
        enable_content_negotiation=bool,
        raw_body=TypedData,
        identities=_list,
        cookies=_list,
        nullable_headers=_dict,
        nullable_params=_dict,
        nullable_query=_dict,
    )
    REPEATED = frozenset({"identities", "cookies"})
    MAPS = frozenset({"headers", "params", "query", "nullable_headers", "nullable_params", "nullable_query"})


class ParameterBinding(Message):
    FIELDS = _fields(name=str, data=TypedData, rpc_shared_memory=_none)
    ONEOFS = {"rpc_data": ("data", "rpc_shared_memory")}


# ------------------------------------------------------------------------------------------- invocation


class RpcTraceContext(Message):
    FIELDS = _fields(trace_parent=str, trace_state=str, attributes=_dict)
    MAPS = frozenset({"attributes"})


class RetryContext(Message):
    FIELDS = _fields(retry_count=int, max_retry_count=int, exception=RpcException)


class InvocationRequest(Message):
    FIELDS = _fields(
        invocation_id=str,
        function_id=str,
        input_data=_list,
        trigger_metadata=_dict,
        trace_context=RpcTraceContext,
        retry_context=RetryContext,
    )
    REPEATED = frozenset({"input_data"})
    MAPS = frozenset({"trigger_metadata"})


class InvocationResponse(Message):
    result: StatusResult
    return_value: TypedData | None
    FIELDS = _fields(invocation_id=str, output_data=_list, return_value=_none, result=StatusResult)
    REPEATED = frozenset({"output_data"})


# ------------------------------------------------------------------------------------------- the envelope


class StreamingMessage(Message):
    FIELDS = _fields(
        request_id=str,
        worker_init_request=_none,
        worker_init_response=_none,
        functions_metadata_request=_none,
        function_metadata_response=_none,
        function_load_request=_none,
        function_load_response=_none,
        invocation_request=_none,
        invocation_response=_none,
    )
    ONEOFS = {"content": tuple(f for f in FIELDS if f != "request_id")}


@dataclass
class WorkerRequest:
    """What the proxy worker passes to each library handler: the request message and, for init and environment
    reload, ``properties`` with ``protos`` (the message namespace) and ``host``."""

    name: str
    request: StreamingMessage
    properties: dict[str, Any] | None = None


def _namespace(classes: Iterable[type[Message]]) -> SimpleNamespace:
    return SimpleNamespace(**{cls.__name__: cls for cls in classes})


#: The ``protos`` the library is handed: every message class above under its protobuf name.
PROTOS = _namespace(
    [
        RpcException,
        StatusResult,
        WorkerInitRequest,
        WorkerMetadata,
        WorkerInitResponse,
        BindingInfo,
        RpcRetryOptions,
        RpcFunctionMetadata,
        FunctionsMetadataRequest,
        FunctionMetadataResponse,
        FunctionLoadRequest,
        FunctionLoadResponse,
        CollectionString,
        CollectionBytes,
        CollectionDouble,
        CollectionSInt64,
        TypedData,
        NullableString,
        NullableBool,
        NullableDouble,
        Timestamp,
        NullableTimestamp,
        RpcHttpCookie,
        RpcHttp,
        ParameterBinding,
        RpcTraceContext,
        RetryContext,
        InvocationRequest,
        InvocationResponse,
        StreamingMessage,
    ]
)
