"""Azure Functions entry points (Python v2 programming model). Bindings in, orchestrator call, nothing else."""

import azure.functions as func

from orchestrators.app import entrypoints, runtime
from orchestrators.kernel.settings import Settings
from orchestrators.status import http as status_http

# Fail at start-up, naming the setting, rather than on the first message of an incident.
settings = Settings.from_env()
runtime.configure(settings)
runtime.prewarm()  # the SDK imports of the first invocation overlap the host's own start-up

app = func.FunctionApp()

# Bodies are bound as bytes: the host then passes them untouched (a string binding would decode them, replacing
# invalid UTF-8, and would merge a JSON body's top-level properties into the trigger metadata, so a body with a
# "DeliveryCount" or "UserProperties" key would overwrite what the host reports about the message).
BODY = func.DataType.BINARY


@app.function_name("restore_requests")
@app.service_bus_queue_trigger(
    arg_name="message", queue_name="%RESTORE_REQUESTS_QUEUE%", connection="ServiceBusConnection",
    data_type=BODY,
)
async def restore_requests(message: func.ServiceBusMessage) -> None:
    await entrypoints.handle_restore_request(message)


@app.function_name("browse_requests")
@app.service_bus_queue_trigger(
    arg_name="message", queue_name="%BROWSE_REQUESTS_QUEUE%", connection="ServiceBusConnection",
    data_type=BODY,
)
async def browse_requests(message: func.ServiceBusMessage) -> None:
    await entrypoints.handle_browse_request(message)


@app.function_name("activation_requests")
@app.service_bus_queue_trigger(
    arg_name="message", queue_name="%ACTIVATION_REQUESTS_QUEUE%", connection="ServiceBusConnection",
    data_type=BODY,
)
async def activation_requests(message: func.ServiceBusMessage) -> None:
    await entrypoints.handle_activation_request(message)


@app.function_name("session_tracker")
@app.timer_trigger(arg_name="timer", schedule=settings.session_tracker_schedule, use_monitor=True)
async def session_tracker(timer: func.TimerRequest) -> None:
    await entrypoints.run_session_tracker()


# -- status over HTTP (read-only views of the ledger; see orchestrators/status) -------------------------------


def _http(answer: status_http.Answer) -> func.HttpResponse:
    return func.HttpResponse(answer.body, status_code=answer.status, headers=answer.headers)


@app.function_name("restore_status")
@app.route(route="restores/{requestId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def restore_status(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await status_http.answer("restore", dict(req.route_params)))


@app.function_name("incident_status")
@app.route(route="incidents/{incidentId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def incident_status(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await status_http.answer("incident", dict(req.route_params)))


@app.function_name("incidents_list")
@app.route(route="incidents", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def incidents_list(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await status_http.answer("incidents", {}))


@app.function_name("capacity_status")
@app.route(route="capacity", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def capacity_status(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await status_http.answer("capacity", {}))


@app.function_name("status_page")
@app.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def status_page(req: func.HttpRequest) -> func.HttpResponse:
    return _http(await status_http.answer("dashboard", {}))
