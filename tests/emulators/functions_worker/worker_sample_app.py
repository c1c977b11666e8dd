"""A function app for the real-worker tests: it records what the worker library hands each function.

Loaded by azure-functions-runtime as the top-level module ``worker_sample_app`` (PYTHON_SCRIPT_FILE_NAME), so
the tests read what it saw through ``host.module``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import azure.functions as func

if os.environ.get("SAMPLE_IMPORT_FAILS") == "1":
    raise RuntimeError("SAMPLE_SETTING is not set")  # like an app that checks its settings when it is loaded

app = func.FunctionApp()

SEEN: list[dict[str, Any]] = []
TIMERS: list[func.TimerRequest] = []


def _record(function: str, msg: func.ServiceBusMessage, **extra: Any) -> None:
    SEEN.append(
        {
            "function": function,
            "message": msg,
            "body": msg.get_body(),
            "message_id": msg.message_id,
            "delivery_count": msg.delivery_count,
            "enqueued_time_utc": msg.enqueued_time_utc,
            "expires_at_utc": msg.expires_at_utc,
            "locked_until": msg.locked_until,
            "lock_token": msg.lock_token,
            "sequence_number": msg.sequence_number,
            "application_properties": msg.application_properties,
            "user_properties": msg.user_properties,
            "correlation_id": msg.correlation_id,
            "content_type": msg.content_type,
            "subject": msg.subject,
            "label": msg.label,
            "to": msg.to,
            "reply_to": msg.reply_to,
            "session_id": msg.session_id,
            "metadata": msg.metadata,
            "thread": threading.current_thread().name,
            **extra,
        }
    )


@app.function_name("inspect")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="ServiceBusConnection")
async def inspect(msg: func.ServiceBusMessage) -> None:
    _record("inspect", msg)
    if msg.get_body() == b"fail":
        raise RuntimeError("failed on purpose")


@app.function_name("raw_bytes")
@app.service_bus_queue_trigger(
    arg_name="message",
    queue_name="%SAMPLE_BINARY_QUEUE%",
    connection="ServiceBusConnection",
    data_type=func.DataType.BINARY,
)
def raw_bytes(message: func.ServiceBusMessage, context: func.Context) -> None:
    _record("raw_bytes", message, invocation_id=context.invocation_id, function_name=context.function_name)


@app.function_name("tick")
@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", use_monitor=True)
async def tick(timer: func.TimerRequest) -> None:
    TIMERS.append(timer)
    if os.environ.get("SAMPLE_TICK_FAILS") == "1":
        raise RuntimeError("tick failed on purpose")
