"""The host runner's "real worker" mode: the app runs inside Microsoft's Python language worker library.

``FunctionsHost(worker="inproc")`` (the default) builds ``func.ServiceBusMessage`` itself and calls the user
function directly. That is quick, but it is our reading of what the host passes: the conversions that turn the
host's data into ``func.ServiceBusMessage`` and ``func.TimerRequest`` in Azure (and every quirk in them) belong
to the worker, not to us. ``FunctionsHost(worker="real")`` hands the app to ``azure_functions_runtime``, the
library the Functions host runs for Python 3.13+ (through a thin proxy worker that only does gRPC): the library
indexes ``function_app.py``, loads each function, and is sent one InvocationRequest per message or timer tick,
with the input data and trigger metadata typed as the host sends them. What the app receives is then decoded by
the same code as in Azure; the response's status settles the message (complete on success, abandon otherwise).

Modules: :mod:`.rpc` (the RPC messages the library reads and builds, as small classes: no protobuf or grpc
needed), :mod:`.host_data` (what the host sends for a Service Bus message, a timer tick, an HTTP request),
:mod:`.worker` (the handler sequence, and the link to the host runner). The library needs Python 3.13+:
``scripts/setup`` creates ``.venv313`` with it. Importing this package needs only the standard library; the worker
library is imported when a worker starts.
"""

from .worker import InvocationFailed, LanguageWorker, RealWorker, WorkerError, runtime_available

__all__ = ["InvocationFailed", "LanguageWorker", "RealWorker", "WorkerError", "runtime_available"]
