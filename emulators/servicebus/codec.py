"""AMQP 1.0 message sections: split raw transfer bytes, rebuild a message for delivery.

The broker keeps the client's properties, application properties and body sections byte for byte and only
rewrites the header and message annotations (broker annotations such as ``x-opt-sequence-number``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from proton import UNDESCRIBED, Array, Data, Described, symbol, timestamp, ubyte, uint, ulong

HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
AMQP_SEQUENCE = 0x76
AMQP_VALUE = 0x77
FOOTER = 0x78

# Message format of a batch: one Data section per encoded message (Microsoft's batching format).
BATCH_FORMAT = 0x80013700

_PROPERTY_NAMES = (
    "message_id",
    "user_id",
    "to",
    "subject",
    "reply_to",
    "correlation_id",
    "content_type",
    "content_encoding",
    "absolute_expiry_time",
    "creation_time",
    "group_id",
    "group_sequence",
    "reply_to_group_id",
)


def plain(value: Any) -> Any:
    """Turn proton's decoded values into plain Python (memoryview -> bytes, recursively)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Array):
        return [plain(v) for v in value.elements]
    return value


def split_sections(raw: bytes) -> list[tuple[int, bytes, Any]]:
    """Split an encoded message into ``(descriptor code, raw bytes, decoded value)`` triples."""
    sections = []
    offset = 0
    data = Data()
    view = memoryview(raw)
    while offset < len(raw):
        data.clear()
        consumed = data.decode(bytes(view[offset:]))
        if consumed <= 0:
            raise ValueError("undecodable AMQP section")
        data.rewind()
        data.next()
        obj = data.get_object()
        if not isinstance(obj, Described):
            raise ValueError("AMQP section is not a described type")
        descriptor: Any = obj.descriptor
        code = int(descriptor) if not isinstance(descriptor, symbol) else -1
        sections.append((code, bytes(view[offset : offset + consumed]), plain(obj.value)))
        offset += consumed
    return sections


def encode_described(code: int, value: Any) -> bytes:
    data = Data()
    data.put_object(Described(ulong(code), value))
    return bytes(data.encode())


def to_timestamp(value: float) -> timestamp:
    """AMQP timestamp (milliseconds since the epoch) from seconds since the epoch."""
    return timestamp(round(value * 1000))


def datetime_from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000.0, tz=dt.UTC)


@dataclass
class AmqpMessage:
    """A message as the broker stores it."""

    header: list[Any] = field(default_factory=list)
    annotations: dict[Any, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    properties_raw: bytes = b""
    application_properties: dict[Any, Any] | None = None
    application_properties_raw: bytes = b""
    body_raw: bytes = b""
    footer_raw: bytes = b""

    @classmethod
    def decode(cls, raw: bytes) -> AmqpMessage:
        msg = cls()
        for code, chunk, value in split_sections(raw):
            if code == HEADER:
                msg.header = list(value or [])
            elif code == DELIVERY_ANNOTATIONS:
                continue  # delivery annotations are for the next hop only
            elif code == MESSAGE_ANNOTATIONS:
                msg.annotations = dict(value or {})
            elif code == PROPERTIES:
                msg.properties_raw = chunk
                fields = list(value or [])
                msg.properties = {name: fields[i] for i, name in enumerate(_PROPERTY_NAMES) if i < len(fields)}
            elif code == APPLICATION_PROPERTIES:
                msg.application_properties_raw = chunk
                msg.application_properties = dict(value or {})
            elif code in (DATA, AMQP_SEQUENCE, AMQP_VALUE):
                msg.body_raw += chunk
            elif code == FOOTER:
                msg.footer_raw = chunk
        return msg

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("message_id")
        if value is None:
            return None
        if isinstance(value, bytes):
            return value.hex()
        return str(value)

    def header_ttl(self) -> float | None:
        """Time to live in seconds from the header, if the sender set one."""
        if len(self.header) > 2 and self.header[2] is not None:
            return int(self.header[2]) / 1000.0
        return None

    def annotation(self, name: str) -> Any:
        for key, value in self.annotations.items():
            if str(key) == name:
                return value
        return None

    def with_application_properties(self, extra: dict[str, Any]) -> AmqpMessage:
        props = dict(self.application_properties or {})
        props.update(extra)
        return AmqpMessage(
            header=list(self.header),
            annotations=dict(self.annotations),
            properties=dict(self.properties),
            properties_raw=self.properties_raw,
            application_properties=props,
            application_properties_raw=encode_described(APPLICATION_PROPERTIES, props),
            body_raw=self.body_raw,
            footer_raw=self.footer_raw,
        )

    def encode(self, *, delivery_count: int, annotations: dict[str, Any], ttl: float | None = None) -> bytes:
        """Encode for delivery with the broker's header and annotations merged over the client's."""
        header = list(self.header) + [None] * (5 - len(self.header))
        durable = bool(header[0]) if header[0] is not None else False
        priority = ubyte(int(header[1]) if header[1] is not None else 4)
        ttl_ms = int(header[2]) if header[2] is not None else None
        if ttl is not None:
            ttl_ms = min(int(ttl * 1000), 0xFFFFFFFF)
        # The header is always written explicitly: the SDK reads delivery-count from it.
        ttl_value = None if ttl_ms is None else uint(ttl_ms)
        header_bytes = encode_described(HEADER, [durable, priority, ttl_value, False, uint(delivery_count)])
        merged: dict[Any, Any] = {}
        for key, value in self.annotations.items():
            merged[symbol(str(key))] = value
        for key, value in annotations.items():
            merged[symbol(key)] = value
        annotation_bytes = encode_described(MESSAGE_ANNOTATIONS, merged) if merged else b""
        return b"".join(
            (
                header_bytes,
                annotation_bytes,
                self.properties_raw,
                self.application_properties_raw,
                self.body_raw,
                self.footer_raw,
            )
        )


def split_batch(raw: bytes) -> list[bytes]:
    """The encoded messages inside a batch transfer (message format 0x80013700)."""
    return [bytes(value) for code, _chunk, value in split_sections(raw) if code == DATA]


def build_reply(
    *,
    correlation_id: Any,
    status_code: int,
    description: str,
    body: Any = None,
    code_key: str = "statusCode",
    description_key: str = "statusDescription",
    error_condition: str | None = None,
    to: str | None = None,
) -> bytes:
    """Encode a request-response reply ($cbs or $management)."""
    app_props: dict[str, Any] = {code_key: status_code, description_key: description}
    if error_condition:
        app_props["errorCondition"] = symbol(error_condition)
        app_props["error-condition"] = symbol(error_condition)
    properties = [str(uuid.uuid4()), None, to, None, None, correlation_id]
    parts = [
        encode_described(PROPERTIES, properties),
        encode_described(APPLICATION_PROPERTIES, app_props),
        encode_described(AMQP_VALUE, body),
    ]
    return b"".join(parts)


def long_array(values: list[int]) -> Array:
    undescribed: Any = UNDESCRIBED
    return Array(undescribed, Data.LONG, *[int(v) for v in values])


def timestamp_array(values: list[float]) -> Array:
    undescribed: Any = UNDESCRIBED
    return Array(undescribed, Data.TIMESTAMP, *[to_timestamp(v) for v in values])
