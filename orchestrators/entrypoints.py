"""What each trigger does, one call each: adapt the message, run the orchestrator.

Imports of SDK-heavy modules happen on the first invocation, not when the worker indexes the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import runtime
from .messages import from_functions_message

if TYPE_CHECKING:
    from .restore import Outcome


async def handle_restore_request(message: Any) -> Outcome:
    """Returns when the message is settled in our terms; raises (-> abandon, redelivery) otherwise."""
    parts = await runtime.get_runtime()
    return await parts.restore_orchestrator().handle(from_functions_message(message))
