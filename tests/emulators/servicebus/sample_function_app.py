"""A tiny function app for the host runner's tests (real azure.functions v2 decorators)."""

from __future__ import annotations

import asyncio
import os
import time

import azure.functions as func

app = func.FunctionApp()

# What the handlers saw, for the tests: (function, message_id, delivery_count, body, queue setting).
CALLS: list[tuple[str, str, int | None, bytes, str | None]] = []
TIMER_CALLS: list[bool] = []
ACTIVE = {"now": 0, "max": 0}


@app.function_name("handler")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%Q%", connection="ServiceBusConnection")
async def handler(msg: func.ServiceBusMessage) -> None:
    body = msg.get_body()
    CALLS.append(("handler", msg.message_id, msg.delivery_count, body, os.environ.get("Q")))
    ACTIVE["now"] += 1
    ACTIVE["max"] = max(ACTIVE["max"], ACTIVE["now"])
    try:
        if body.startswith(b"sleep:"):
            await asyncio.sleep(float(body.split(b":", 1)[1]))
        if body == b"fail":
            raise RuntimeError("handler failed on purpose")
    finally:
        ACTIVE["now"] -= 1


@app.function_name("sync_handler")
@app.service_bus_queue_trigger(arg_name="message", queue_name="%Q2%", connection="ServiceBusConnection")
def sync_handler(message: func.ServiceBusMessage) -> None:
    CALLS.append(("sync_handler", message.message_id, message.delivery_count, message.get_body(), None))
    time.sleep(0.01)


@app.function_name("tick")
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
async def tick(timer: func.TimerRequest) -> None:
    TIMER_CALLS.append(timer.past_due)
