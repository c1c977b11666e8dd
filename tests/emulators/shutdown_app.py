"""A function app whose invocations run as long as their message says (``sleep:SECONDS``), for the shutdown tests.

Each invocation prints ``invoked <function> <body>`` when it starts, so that a test knows it is in flight.
"""

from __future__ import annotations

import asyncio
import time

import azure.functions as func

app = func.FunctionApp()


def _seconds(body: bytes) -> float:
    return float(body.split(b":", 1)[1]) if body.startswith(b"sleep:") else 0.0


@app.function_name("slow_async")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%ASYNC_QUEUE%", connection="ServiceBusConnection")
async def slow_async(msg: func.ServiceBusMessage) -> None:
    body = msg.get_body()
    print(f"invoked slow_async {body.decode()}", flush=True)
    await asyncio.sleep(_seconds(body))


@app.function_name("slow_sync")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%SYNC_QUEUE%", connection="ServiceBusConnection")
def slow_sync(msg: func.ServiceBusMessage) -> None:
    body = msg.get_body()
    print(f"invoked slow_sync {body.decode()}", flush=True)
    time.sleep(_seconds(body))  # a blocking call: the worker thread cannot be cancelled
