"""The parsers the service calls: a decoded message in, a domain object out, or `Rejected` with the contract's
field errors.

The models (and pydantic) are imported on the first call, not when the function app is indexed: a cold worker
that only runs the timer never pays for them.
"""

from __future__ import annotations

from typing import Any

from orchestrators.contracts.domain import ActivationRequest, BrowseRequest, RestoreRequest, ValidationPolicy


def parse_restore_request(document: Any, message_id: str | None, policy: ValidationPolicy) -> RestoreRequest:
    """Validate a decoded restore request against the contract and the operator's policy."""
    from orchestrators.contracts.requests import restore_request

    return restore_request(document, message_id, policy)


def parse_browse_request(document: Any, message_id: str | None) -> BrowseRequest:
    """Validate a decoded browse request; a restore point listed twice gets one browse session."""
    from orchestrators.contracts.requests import browse_request

    return browse_request(document, message_id)


def parse_activation_request(document: Any, message_id: str | None) -> ActivationRequest:
    """Validate a decoded activation request: by requestId (keyed by it) or by sessionIds (keyed by the message);
    a session named twice is activated once."""
    from orchestrators.contracts.requests import activation_request

    return activation_request(document, message_id)
