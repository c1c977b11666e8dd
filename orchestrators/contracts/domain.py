"""The validated requests as the service uses them: frozen, plain, built only by the parsers in `requests`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: One browse session is created per restore point, at most this many per request.
MAX_BROWSE_RESTORE_POINTS = 100
#: An activation request names at most this many sessions.
MAX_SESSION_IDS = 1000


@dataclass(frozen=True)
class ValidationPolicy:
    """The operator's settings that decide what a restore request may ask for."""

    max_artifacts_per_request: int
    allowed_destination_types: tuple[str, ...]
    activation_supported: bool = False


@dataclass(frozen=True)
class Artifact:
    restore_point_id: str
    destination_type: str


@dataclass(frozen=True)
class Selection:
    """Restore by point in time: whose OneDrives, and the window their restore point must lie in."""

    users: tuple[str, ...]
    directory_object_ids: tuple[str, ...]
    protection_unit_ids: tuple[str, ...]
    point_in_time: datetime
    not_before: datetime
    strategy: str = "auto"

    @property
    def size(self) -> int:
        return len(self.users) + len(self.directory_object_ids) + len(self.protection_unit_ids)

    def canonical(self) -> dict[str, Any]:
        return {"users": list(self.users), "directoryObjectIds": list(self.directory_object_ids),
                "protectionUnitIds": list(self.protection_unit_ids),
                "pointInTime": self.point_in_time.isoformat(), "notBefore": self.not_before.isoformat(),
                "strategy": self.strategy}


@dataclass(frozen=True)
class RestoreRequest:
    request_id: str
    incident_id: str | None
    requested_by: str | None
    reason: str | None
    artifacts: tuple[Artifact, ...]
    activate: bool
    dry_run: bool
    payload_hash: str
    destination_type: str = "new"
    selection: Selection | None = None

    @property
    def correlation_id(self) -> str:
        return self.incident_id or self.request_id


@dataclass(frozen=True)
class BrowseRequest:
    request_id: str
    incident_id: str | None
    restore_point_ids: tuple[str, ...]

    @property
    def correlation_id(self) -> str:
        return self.incident_id or self.request_id


@dataclass(frozen=True)
class ActivationRequest:
    key: str
    request_id: str | None
    session_ids: tuple[str, ...]


def payload_hash(document: dict[str, Any], artifacts: tuple[Artifact, ...],
                 selection: Selection | None = None) -> str:
    """A fingerprint of what the request asks for, to tell a redelivery from a reused requestId.

    Stored in the ledger: the same request must give the same hash across versions of the service."""
    canonical: dict[str, Any] = {
        "artifacts": [[a.restore_point_id, a.destination_type] for a in artifacts],
        "activate": bool(document.get("activate", False)),
        "incidentId": document.get("incidentId"),
    }
    if selection is not None:
        canonical["selection"] = selection.canonical()
        canonical["destinationType"] = document.get("destinationType", "new")
    raw = json.dumps(canonical, separators=(",", ":"), sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()
