"""What the caller should do about a failure: retry later, reject the request, or give up on a batch.

Graph's answers are mapped to these in exactly one place (`classify_graph_failure`), so the
orchestrators never look at status codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_SECRETS = re.compile(r"(?i)(SharedAccessKey|AccountKey|client_secret|sig|password)(\s*[=:]\s*)([^;&\s\"']+)")
_BEARER = re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/-]+=*")


def redact(text: str) -> str:
    """Remove anything that looks like a key, signature or token before text reaches logs or events."""
    text = _SECRETS.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)
    return _BEARER.sub("Bearer <redacted>", text)


@dataclass(frozen=True)
class FieldError:
    """One problem with a request, addressed to the field a person has to fix."""

    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass(frozen=True)
class GraphError:
    """Graph's own account of a failed call, as reported in events."""

    status: int | None
    code: str
    message: str
    graph_request_id: str | None = None
    retry_after: float | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "graphRequestId": self.graph_request_id,
        }


class OrchestrationError(Exception):
    """Base of the errors the orchestrators act on."""


class Rejected(OrchestrationError):
    """The request cannot be accepted as it is; retrying will not help."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors[:5]))
        self.errors = errors


class RetryLater(OrchestrationError):
    """A transient failure: try the same work again after `after` seconds (None: use the backoff).

    `outcome_unknown` says a write may have been applied even though no answer came back
    (a timeout or a 5xx on a create), so the next attempt must reconcile before writing again.
    """

    def __init__(self, error: GraphError, after: float | None = None, outcome_unknown: bool = False) -> None:
        super().__init__(f"{error.status} {error.code}: {error.message}")
        self.error = error
        self.after = after
        self.outcome_unknown = outcome_unknown


class GraphRefused(OrchestrationError):
    """Graph refused the call for a reason that retrying will not change."""

    def __init__(self, error: GraphError) -> None:
        super().__init__(f"{error.status} {error.code}: {error.message}")
        self.error = error


class Contended(OrchestrationError):
    """Another worker changed the same ledger record first; the work is retried shortly."""


#: Graph error codes that say the call may succeed later (besides 429 and most 5xx statuses).
TRANSIENT_CODES = frozenset(
    {
        "TooManyActiveRestoreSessions",
        "activityLimitReached",
        "TooManyRequests",
        "serviceNotAvailable",
        "UnknownError",
        "generalException",
        "timeout",
    }
)

#: 5xx answers that are a verdict, not an outage.
PERMANENT_5XX_CODES = frozenset({"IncompleteArtifactDeletion"})

#: Codes that concern individual restore points, which can be isolated from the rest of a batch.
ARTIFACT_CODES = frozenset({"InvalidRestorePoint", "DuplicateArtifactInList", "InvalidArtifactRequest"})


def classify_graph_failure(error: GraphError, write: bool) -> OrchestrationError:
    """Map a failed Graph call to what the caller should do.

    `write` marks calls that change state in Graph: a 5xx or a lost connection on those leaves the
    outcome unknown, and the next attempt must look before writing again.
    """
    status = error.status
    if status == 429 or (error.code in TRANSIENT_CODES and status in (None, 429, 500, 503)):
        return RetryLater(error, after=error.retry_after, outcome_unknown=False)
    if status is None or (status >= 500 and error.code not in PERMANENT_5XX_CODES):
        return RetryLater(error, after=error.retry_after, outcome_unknown=write)
    if status in (401, 403) and error.code in ("InvalidAuthenticationToken", "TokenExpired"):
        # Expired tokens are refreshed by the credential on the next attempt.
        return RetryLater(error, after=error.retry_after, outcome_unknown=False)
    return GraphRefused(error)
