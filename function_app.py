"""Azure Functions entry points (Python v2 programming model). Bindings in, orchestrator call, nothing else."""

import azure.functions as func

from orchestrators import entrypoints, runtime
from orchestrators.settings import Settings

# Fail at start-up, naming the setting, rather than on the first message of an incident.
runtime.configure(Settings.from_env())

app = func.FunctionApp()


@app.function_name("restore_requests")
@app.service_bus_queue_trigger(
    arg_name="message", queue_name="%RESTORE_REQUESTS_QUEUE%", connection="ServiceBusConnection"
)
async def restore_requests(message: func.ServiceBusMessage) -> None:
    await entrypoints.handle_restore_request(message)
