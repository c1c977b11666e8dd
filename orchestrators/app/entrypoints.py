"""What each trigger does, one call each: adapt the message, run the orchestrator.

Imports of SDK-heavy modules happen on the first invocation, not when the worker indexes the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrators.app import runtime
from orchestrators.kernel import tracing
from orchestrators.kernel.messages import from_functions_message

if TYPE_CHECKING:
    from orchestrators.browse.orchestrator import BrowseOutcome
    from orchestrators.restore.orchestrator import Outcome


async def handle_restore_request(message: Any) -> Outcome:
    """Returns when the message is settled in our terms; raises (-> abandon, redelivery) otherwise."""
    parts = await runtime.get_runtime()
    inbound = from_functions_message(message)
    with tracing.consumer_span("restore_requests", parts.settings.restore_requests_queue, inbound):
        return await parts.restore_orchestrator().handle(inbound)


async def handle_browse_request(message: Any) -> BrowseOutcome:
    """Returns when every restore point is settled or a retry is scheduled; raises (-> redelivery) otherwise."""
    parts = await runtime.get_runtime()
    inbound = from_functions_message(message)
    with tracing.consumer_span("browse_requests", parts.settings.browse_requests_queue, inbound):
        return await parts.browse_orchestrator().handle(inbound)


async def handle_activation_request(message: Any) -> None:
    """Queue the named draft sessions for activation and fill the free slots."""
    parts = await runtime.get_runtime()
    inbound = from_functions_message(message)
    with tracing.consumer_span("activation_requests", parts.settings.activation_requests_queue, inbound):
        await parts.activation_requests().handle(inbound)


async def run_session_tracker() -> None:
    """One tracker run: poll, publish lifecycle events, free slots, activate the next sessions."""
    parts = await runtime.get_runtime()
    with tracing.span("session_tracker", "internal", {"restore.workload": "oneDrive"}):
        await parts.session_tracker().run()
