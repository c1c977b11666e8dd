"""Run a Python v2 function app's Service Bus, timer and HTTP functions the way the Functions host would.

The runner indexes ``app.get_functions()`` of the module's ``func.FunctionApp``, receives from each Service Bus
trigger's queue (or topic subscription) with PeekLock through the real ``azure.servicebus.aio`` SDK, passes an
``azure.functions.ServiceBusMessage`` to the user function, then completes the message when the function returns
and abandons it when it raises, renewing the lock meanwhile (up to ``maxAutoLockRenewalDuration``). At most
``maxConcurrentCalls`` invocations run per function; ``prefetchCount`` is honoured. Both come from ``host.json``
(``extensions.serviceBus``), with the documented defaults. Timer functions run on their NCRONTAB schedule (the
CLI) or when asked (:meth:`FunctionsHost.run_timer`); HTTP functions answer on ``http://127.0.0.1:7071/api/``.

Settings (``local.settings.json``'s ``Values``, or a dict) are exported to ``os.environ`` from ``start()`` until
``stop()``, when the previous values are restored, because the app reads its configuration from the environment.

Usage::

    async with FunctionsHost("function_app", settings={...}, host_json="host.json") as host:
        ...send with the SDK...
        await host.wait_idle(timeout=30)
        assert host.invocations[-1].outcome == "completed"

With ``worker="real"`` (CLI ``--worker real``, Python 3.13+) the functions are indexed, loaded and invoked
through Microsoft's worker library instead of being called directly: see :mod:`emulators.functions_worker`.

Modules, one job each: :mod:`.loading` (import the app, index its functions), :mod:`.host_json` (the settings
honoured), :mod:`.invoking` (calling a function in-process), :mod:`.messages` (what a Service Bus function
receives), :mod:`.settlement` (lock renewal, complete or abandon, the delivery count), :mod:`.receiving` (receive
loops and concurrency), :mod:`.schedule` (NCRONTAB), :mod:`.http_triggers` (the HTTP server), :mod:`.host` (the
runner that ties them), :mod:`.cli`.

CLI: ``python -m emulators.functions_host --app function_app --settings local.settings.json``.
"""

from .cli import main
from .host import FunctionsHost
from .host_json import HostOptions
from .invoking import Invocation
from .loading import Trigger, load_app
from .messages import to_function_message
from .receiving import close_promptly
from .schedule import NCrontab, next_occurrence
from .settlement import host_delivery_count

__all__ = [
    "FunctionsHost",
    "HostOptions",
    "Invocation",
    "NCrontab",
    "Trigger",
    "close_promptly",
    "host_delivery_count",
    "load_app",
    "main",
    "next_occurrence",
    "to_function_message",
]
