"""What the Functions host puts in an InvocationRequest for a Service Bus message, a timer tick and an HTTP request,
and what it makes of an HTTP function's response.

The host (.NET) gets the binding data from the trigger extension and converts every value to ``TypedData``: a
.NET string becomes ``string``, a double ``double``, a byte array ``bytes``, and anything else (int, long,
DateTime, DateTimeOffset, dictionaries, objects) JSON text written by Json.NET with its default settings. Null
values are not sent. For Service Bus (extension 5.x, ``ServiceBusTriggerBindingStrategy``) that gives:

- ``DeliveryCount`` and ``SequenceNumber`` as JSON numbers (``"1"``);
- ``EnqueuedTimeUtc`` and ``ExpiresAtUtc`` as JSON strings *without* a zone (they are ``DateTimeOffset.DateTime``,
  of unspecified kind), ``EnqueuedTime`` and ``ExpiresAt`` with ``+00:00``;
- ``ApplicationProperties`` and ``UserProperties`` as the same JSON object;
- ``MessageId``, ``LockToken``, ``ContentType``, ``CorrelationId``, ``Subject`` and ``Label``, ``To``, ``ReplyTo``,
  ``SessionId``, ``ReplyToSessionId``, ``PartitionKey``, ``TransactionPartitionKey``, ``DeadLetterSource`` as
  strings, when set;
- the actions and client objects (``MessageReceiver``, ``MessageSession``, ``MessageActions``, ``SessionActions``,
  ``ReceiveActions``, ``Client``) and the built-in ``sys`` entry (``MethodName``, ``UtcNow``, ``RandGuid``) as JSON.

Nothing else: no ``LockedUntil``, ``State``, ``TimeToLive``, ``EnqueuedSequenceNumber``, ``DeadLetterReason``,
``ScheduledEnqueueTimeUtc``, so those read as ``None`` in ``func.ServiceBusMessage`` under the real host.

The message body is bound as a .NET string unless the binding says ``dataType: binary``: UTF-8, decoded strictly
and, when that fails, with replacement characters (``MessageToStringConverter``); an AMQP value body must be a
string, a sequence body cannot be bound.
"""

from __future__ import annotations

import base64
import datetime as dt
import inspect
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from .rpc import ParameterBinding, RpcHttp, RpcHttpCookie, TypedData

#: ``DateTimeOffset.MaxValue`` as Json.NET writes it: what ``ExpiresAt`` is for a message that never expires.
NET_MAX_DATETIME = "9999-12-31T23:59:59.9999999"
#: ``DateTime.MinValue``: a timer schedule status before the first recorded occurrence.
NET_MIN_DATETIME = "0001-01-01T00:00:00"

# The actions and client objects the extension adds for binding to them; Json.NET writes their public properties.
# Their exact shape is not reproduced (neither the worker library nor an app reads them as data).
_OBJECT_ENTRIES = ("MessageReceiver", "MessageSession", "MessageActions", "SessionActions", "ReceiveActions", "Client")


class HostBindingError(Exception):
    """The host could not bind the message to the function's parameter: the invocation fails before the worker
    sees it, and the message is abandoned."""


# --------------------------------------------------------------------------------------------- Json.NET values


def net_datetime(value: dt.datetime, *, zone: str = "") -> str:
    """A DateTime as Json.NET writes it (ISO 8601, up to seven fraction digits, trailing zeros dropped).

    ``zone`` is ``""`` for an unspecified kind, ``"Z"`` for UTC and ``"+00:00"`` for a DateTimeOffset."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{value.microsecond:06d}0".rstrip("0")
    return f"{text}.{fraction}{zone}" if fraction else f"{text}{zone}"


def net_local_datetime(value: dt.datetime) -> str:
    """A local-kind DateTime as Json.NET writes it: with this machine's UTC offset."""
    local = value.astimezone()
    offset = local.strftime("%z")
    text = local.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{local.microsecond:06d}0".rstrip("0")
    return f"{text}{'.' + fraction if fraction else ''}{offset[:3]}:{offset[3:]}"


def _text(value: Any) -> Any:
    return bytes(value).decode("utf-8") if isinstance(value, bytes | bytearray | memoryview) else value


def json_ready(value: Any) -> Any:
    """A Service Bus property value as the .NET SDK would hold it, ready for ``json.dumps`` the way Json.NET
    writes it. The Python SDK returns AMQP strings as bytes: they are text; bytes that are not UTF-8 stand for a
    .NET byte array, which Json.NET writes as base64."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dt.datetime):
        return net_datetime(value, zone="Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(_text(k)): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def net_json(value: Any) -> str:
    """JSON text as Json.NET writes it with ``Formatting.None``."""
    return json.dumps(json_ready(value), separators=(",", ":"), ensure_ascii=False)


def _json(value: Any) -> TypedData:
    return TypedData(json=net_json(value))


def _string(value: Any) -> TypedData:
    return TypedData(string=str(_text(value)))


def system_entry(function_name: str, now: dt.datetime | None = None) -> TypedData:
    """The ``sys`` binding data every invocation carries."""
    now = now or dt.datetime.now(dt.UTC)
    return TypedData(
        json=json.dumps(
            {"MethodName": function_name, "UtcNow": net_datetime(now, zone="Z"), "RandGuid": str(uuid.uuid4())},
            separators=(",", ":"),
        )
    )


# --------------------------------------------------------------------------------------------- Service Bus


def _body_kind(msg: Any) -> str:
    kind = str(getattr(msg, "body_type", "data")).lower()
    if "value" in kind:
        return "value"
    if "sequence" in kind:
        return "sequence"
    return "data"


def message_body(msg: Any, data_type: str | None = None) -> TypedData:
    """The trigger input the host sends for one message, for the binding's ``dataType``."""
    kind = _body_kind(msg)
    body: Any = msg.body
    if kind == "data":
        chunks: Iterable[Any] = body if inspect.isgenerator(body) or isinstance(body, list | tuple) else [body]
        raw = b"".join(bytes(chunk) for chunk in chunks if chunk is not None)
        if str(data_type or "").lower() in ("binary", "stream"):
            return TypedData(bytes=raw)
        try:
            return TypedData(string=raw.decode("utf-8", errors="strict"))
        except UnicodeDecodeError:
            return TypedData(string=raw.decode("utf-8", errors="replace"))
    if kind == "value":
        value = _text(body)
        if isinstance(value, str):
            return TypedData(string=value)
        raise HostBindingError(f"A message with a value type of {type(body).__name__} cannot be bound to a string.")
    raise HostBindingError("A sequence body message cannot be bound to a string.")


def _annotation(msg: Any, key: bytes) -> Any:
    raw = getattr(msg, "raw_amqp_message", None)
    annotations = getattr(raw, "annotations", None) or {}
    return _text(annotations.get(key))


def service_bus_metadata(msg: Any, *, function_name: str, delivery_count: int) -> dict[str, TypedData]:
    """The trigger metadata for one message (single dispatch), as the host sends it to the worker.

    ``delivery_count`` is the host's DeliveryCount (1 on the first delivery), passed in so that one helper
    decides it for both modes."""
    props = {str(_text(k)): v for k, v in (msg.application_properties or {}).items()}
    enqueued: dt.datetime | None = msg.enqueued_time_utc
    expires: dt.datetime | None = msg.expires_at_utc
    strings = {
        "DeadLetterSource": msg.dead_letter_source,
        "LockToken": msg.lock_token,
        "MessageId": msg.message_id,
        "ContentType": msg.content_type,
        "ReplyTo": msg.reply_to,
        "To": msg.to,
        "Subject": msg.subject,
        "Label": msg.subject,
        "CorrelationId": msg.correlation_id,
        "SessionId": msg.session_id,
        "ReplyToSessionId": msg.reply_to_session_id,
        "PartitionKey": msg.partition_key,
        "TransactionPartitionKey": _annotation(msg, b"x-opt-via-partition-key"),
    }
    metadata: dict[str, TypedData] = {name: _json({}) for name in _OBJECT_ENTRIES}
    metadata["DeliveryCount"] = _json(delivery_count)
    if expires is not None:
        metadata["ExpiresAtUtc"] = _json(net_datetime(expires))
        metadata["ExpiresAt"] = _json(net_datetime(expires, zone="+00:00"))
    else:
        metadata["ExpiresAtUtc"] = _json(NET_MAX_DATETIME)
        metadata["ExpiresAt"] = _json(NET_MAX_DATETIME + "+00:00")
    if enqueued is not None:
        metadata["EnqueuedTimeUtc"] = _json(net_datetime(enqueued))
        metadata["EnqueuedTime"] = _json(net_datetime(enqueued, zone="+00:00"))
    if msg.sequence_number is not None:
        metadata["SequenceNumber"] = _json(int(msg.sequence_number))
    metadata["ApplicationProperties"] = _json(props)
    metadata["UserProperties"] = _json(props)
    for name, value in strings.items():
        if value is not None:
            metadata[name] = _string(value)
    metadata["sys"] = system_entry(function_name)
    return metadata


def service_bus_input(
    msg: Any, *, arg_name: str, data_type: str | None, function_name: str, delivery_count: int
) -> tuple[list[ParameterBinding], dict[str, TypedData]]:
    """``input_data`` and ``trigger_metadata`` of the InvocationRequest for one message."""
    body = message_body(msg, data_type)
    metadata = service_bus_metadata(msg, function_name=function_name, delivery_count=delivery_count)
    if body.WhichOneof("data") == "string":
        # The message classes declare their fields at run time, hence getattr for the type checker.
        merge_json_body(getattr(body, "string"), metadata)  # noqa: B009
    return [ParameterBinding(name=arg_name, data=body)], metadata


def merge_json_body(text: str, metadata: dict[str, TypedData]) -> None:
    """What the script host does with a trigger value bound as a string (``ApplyBindingData`` in its worker
    function invoker): when the text is a JSON object, each top-level property that is not an array (nor null)
    becomes binding data, *over* what the extension put there, so it reaches the worker as trigger metadata.
    Objects travel as JSON, every other value as its text (Json.NET's string conversion: ``true`` is "True").
    A body bound as bytes is left alone, and nothing happens when the text is not a JSON object."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return
    try:
        parsed = json.loads(stripped)
    except (ValueError, RecursionError):
        return
    if not isinstance(parsed, dict):
        return
    for key, value in parsed.items():
        if value is None or isinstance(value, list):
            continue
        if isinstance(value, dict):
            metadata[key] = TypedData(json=json.dumps(value, separators=(",", ":")))
        elif isinstance(value, bool):
            metadata[key] = TypedData(string="True" if value else "False")
        else:
            metadata[key] = TypedData(string=value if isinstance(value, str) else json.dumps(value))


# --------------------------------------------------------------------------------------------- timer


def timer_payload(
    *, past_due: bool, adjust_for_dst: bool, status: Mapping[str, dt.datetime | None] | None
) -> TypedData:
    """The TimerInfo the host serialises for a timer trigger: ``Schedule``, ``ScheduleStatus`` (null without the
    schedule monitor), ``IsPastDue``."""
    schedule_status: dict[str, str] | None = None
    if status is not None:
        schedule_status = {
            key: NET_MIN_DATETIME if when is None else net_local_datetime(when)
            for key, when in (("Last", status.get("Last")), ("Next", status.get("Next")),
                              ("LastUpdated", status.get("LastUpdated")))
        }
    info = {"Schedule": {"AdjustForDST": adjust_for_dst}, "ScheduleStatus": schedule_status, "IsPastDue": past_due}
    return TypedData(json=json.dumps(info, separators=(",", ":")))


def timer_input(
    *, arg_name: str, function_name: str, past_due: bool, adjust_for_dst: bool,
    status: Mapping[str, dt.datetime | None] | None,
) -> tuple[list[ParameterBinding], dict[str, TypedData]]:
    data = timer_payload(past_due=past_due, adjust_for_dst=adjust_for_dst, status=status)
    return [ParameterBinding(name=arg_name, data=data)], {"sys": system_entry(function_name)}


__all__ = [
    "NET_MAX_DATETIME",
    "NET_MIN_DATETIME",
    "HostBindingError",
    "json_ready",
    "merge_json_body",
    "message_body",
    "net_datetime",
    "net_json",
    "service_bus_input",
    "service_bus_metadata",
    "system_entry",
    "timer_input",
    "timer_payload",
]


# --------------------------------------------------------------------------------------------- HTTP


def http_input(
    *,
    arg_name: str,
    function_name: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    route_params: Mapping[str, str],
    body: bytes,
) -> tuple[list[ParameterBinding], dict[str, TypedData]]:
    """``input_data`` and ``trigger_metadata`` for an HTTP request.

    The library tells the host on init that it takes the raw body as bytes and no HTTP entries in the trigger
    metadata (``RawHttpBodyBytes``, ``RpcHttpBodyOnly``, ``RpcHttpTriggerMetadataRemoved``), so the request goes
    as one ``RpcHttp`` (the route parameters in ``params``) and the metadata holds ``sys`` only."""
    request = RpcHttp(
        method=method,
        url=url,
        headers=dict(headers),
        query=dict(query),
        params=dict(route_params),
        body=TypedData(bytes=body),
    )
    return [ParameterBinding(name=arg_name, data=TypedData(http=request))], {"sys": system_entry(function_name)}


def _body_bytes(data: Any) -> bytes:
    kind = data.WhichOneof("data") if data is not None else None
    if kind in ("bytes", "stream"):
        return bytes(getattr(data, kind))
    if kind in ("string", "json"):
        return str(getattr(data, kind)).encode("utf-8")
    if kind in ("int", "double"):
        return str(getattr(data, kind)).encode("utf-8")
    return b""


_SAME_SITE = {RpcHttpCookie.SameSite.Lax: "Lax", RpcHttpCookie.SameSite.Strict: "Strict",
              RpcHttpCookie.SameSite.ExplicitNone: "None"}


def cookie_attributes(cookie: Any) -> dict[str, Any]:
    """An ``RpcHttpCookie``'s attributes that are set (name and value always), by their ``Set-Cookie`` meaning."""
    found: dict[str, Any] = {"name": cookie.name, "value": cookie.value}
    if cookie.HasField("domain") and cookie.domain.value:
        found["domain"] = cookie.domain.value
    if cookie.HasField("path") and cookie.path.value:
        found["path"] = cookie.path.value
    if cookie.HasField("expires"):
        found["expires"] = dt.datetime.fromtimestamp(cookie.expires.value.seconds, dt.UTC)
    if cookie.HasField("max_age"):
        found["max_age"] = int(cookie.max_age.value)
    found["secure"] = bool(cookie.HasField("secure") and cookie.secure.value)
    found["http_only"] = bool(cookie.HasField("http_only") and cookie.http_only.value)
    found["same_site"] = _SAME_SITE.get(cookie.same_site)
    return found


def http_answer(return_value: Any) -> tuple[int, list[tuple[str, str]], bytes, list[dict[str, Any]]]:
    """Status, headers, body and cookies (:func:`cookie_attributes`) for an HTTP function's ``$return`` value.

    Guesses, as in-process: nothing returned is a 204, a string a 200 with text/plain."""
    kind = return_value.WhichOneof("data") if return_value is not None else None
    if kind is None:
        return 204, [], b"", []
    if kind != "http":
        return 200, [("Content-Type", "text/plain; charset=utf-8")], _body_bytes(return_value), []
    response = return_value.http
    headers = [(str(name), str(value)) for name, value in response.headers.items()]
    cookies = [cookie_attributes(cookie) for cookie in response.cookies]
    return int(response.status_code or 200), headers, _body_bytes(response.body), cookies
