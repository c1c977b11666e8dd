"""What differs between the OneDrive, SharePoint and Exchange restore endpoints: names, types and bulk fields.

The rules and the lifecycle are the same for every workload (see state.py); the routes are generated from
these descriptions (see app.py), so a new endpoint of one workload is one more field here, not a new handler.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import EXCHANGE, ONEDRIVE, SHAREPOINT


@dataclass(frozen=True)
class Workload:
    name: str  # oneDrive | sharePoint | exchange (the contract's names)
    label: str  # for messages: "OneDrive", "SharePoint", "Exchange"
    sessions: str  # the restore session collection under /solutions/backupRestore
    session_type: str
    artifacts: str  # the (whole protection unit) restore artifacts of a session
    artifact_type: str
    bulk: str  # the bulk addition requests of a session
    bulk_type: str
    bulk_resources: str  # the bulk field Graph resolves (emails or site URLs)
    bulk_ids: str  # the bulk field of ids (drives: implemented; sites, mailboxes: "isn't implemented yet")
    bulk_ids_implemented: bool
    unit_type: str  # the protection unit's @odata.type
    units: str  # the protection unit collection under /solutions/backupRestore
    policies: str  # the protection policy collection
    policy_type: str
    policy_units: str  # the policy's protection unit navigation
    granular: str | None = None  # granular restore artifacts (from a browse session)
    granular_type: str | None = None
    browse_sessions: str | None = None  # browse session collection (OneDrive and SharePoint only)
    browse_type: str | None = None

    @property
    def artifact_op(self) -> str:
        """The operation-name stem of the artifacts, e.g. ``DriveRestoreArtifact``."""
        return self.artifacts[0].upper() + self.artifacts[1:-1]

    @property
    def granular_op(self) -> str:
        assert self.granular is not None
        return self.granular[0].upper() + self.granular[1:-1]


ONEDRIVE_WORKLOAD = Workload(
    name=ONEDRIVE,
    label="OneDrive",
    sessions="oneDriveForBusinessRestoreSessions",
    session_type="#microsoft.graph.oneDriveForBusinessRestoreSession",
    artifacts="driveRestoreArtifacts",
    artifact_type="#microsoft.graph.driveRestoreArtifact",
    bulk="driveRestoreArtifactsBulkAdditionRequests",
    bulk_type="#microsoft.graph.driveRestoreArtifactsBulkAdditionRequest",
    bulk_resources="drives",
    bulk_ids="directoryObjectIds",
    bulk_ids_implemented=True,
    unit_type="#microsoft.graph.driveProtectionUnit",
    units="driveProtectionUnits",
    policies="oneDriveForBusinessProtectionPolicies",
    policy_type="#microsoft.graph.oneDriveForBusinessProtectionPolicy",
    policy_units="driveProtectionUnits",
    granular="granularDriveRestoreArtifacts",
    granular_type="#microsoft.graph.granularDriveRestoreArtifact",
    browse_sessions="oneDriveForBusinessBrowseSessions",
    browse_type="#microsoft.graph.oneDriveForBusinessBrowseSession",
)

SHAREPOINT_WORKLOAD = Workload(
    name=SHAREPOINT,
    label="SharePoint",
    sessions="sharePointRestoreSessions",
    session_type="#microsoft.graph.sharePointRestoreSession",
    artifacts="siteRestoreArtifacts",
    artifact_type="#microsoft.graph.siteRestoreArtifact",
    bulk="siteRestoreArtifactsBulkAdditionRequests",
    bulk_type="#microsoft.graph.siteRestoreArtifactsBulkAdditionRequest",
    bulk_resources="siteWebUrls",
    bulk_ids="siteIds",
    bulk_ids_implemented=False,
    unit_type="#microsoft.graph.siteProtectionUnit",
    units="siteProtectionUnits",
    policies="sharePointProtectionPolicies",
    policy_type="#microsoft.graph.sharePointProtectionPolicy",
    policy_units="siteProtectionUnits",
    granular="granularSiteRestoreArtifacts",
    granular_type="#microsoft.graph.granularSiteRestoreArtifact",
    browse_sessions="sharePointBrowseSessions",
    browse_type="#microsoft.graph.sharePointBrowseSession",
)

EXCHANGE_WORKLOAD = Workload(
    name=EXCHANGE,
    label="Exchange",
    sessions="exchangeRestoreSessions",
    session_type="#microsoft.graph.exchangeRestoreSession",
    artifacts="mailboxRestoreArtifacts",
    artifact_type="#microsoft.graph.mailboxRestoreArtifact",
    bulk="mailboxRestoreArtifactsBulkAdditionRequests",
    bulk_type="#microsoft.graph.mailboxRestoreArtifactsBulkAdditionRequest",
    bulk_resources="mailboxes",
    bulk_ids="directoryObjectIds",
    bulk_ids_implemented=False,
    unit_type="#microsoft.graph.mailboxProtectionUnit",
    units="mailboxProtectionUnits",
    policies="exchangeProtectionPolicies",
    policy_type="#microsoft.graph.exchangeProtectionPolicy",
    policy_units="mailboxProtectionUnits",
)

SPECS: dict[str, Workload] = {w.name: w for w in (ONEDRIVE_WORKLOAD, SHAREPOINT_WORKLOAD, EXCHANGE_WORKLOAD)}
#: The artifact collection names of every workload, to refuse another workload's in a create or PATCH body.
ARTIFACT_KEYS: dict[str, str] = {
    key: w.name
    for w in SPECS.values()
    for key in (w.artifacts, w.granular, "granularMailboxRestoreArtifacts" if w.name == EXCHANGE else None)
    if key
}
