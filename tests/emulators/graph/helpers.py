"""Small builders shared by the scenario tests (SDK models only)."""

from __future__ import annotations

from typing import Any

from msgraph.generated.models.destination_type import DestinationType
from msgraph.generated.models.drive_restore_artifact import DriveRestoreArtifact
from msgraph.generated.models.exchange_restore_session import ExchangeRestoreSession
from msgraph.generated.models.mailbox_restore_artifact import MailboxRestoreArtifact
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_point import RestorePoint
from msgraph.generated.models.share_point_restore_session import SharePointRestoreSession
from msgraph.generated.models.site_restore_artifact import SiteRestoreArtifact

NEW = DestinationType.New
IN_PLACE = DestinationType.InPlace


def artifact(point_id: str, destination: DestinationType = NEW) -> DriveRestoreArtifact:
    return DriveRestoreArtifact(restore_point=RestorePoint(id=point_id), destination_type=destination)


def session_body(point_ids: list[str], destination: DestinationType = NEW) -> OneDriveForBusinessRestoreSession:
    return OneDriveForBusinessRestoreSession(drive_restore_artifacts=[artifact(p, destination) for p in point_ids])


def delta_body(items: list[dict[str, Any]]) -> OneDriveForBusinessRestoreSession:
    return OneDriveForBusinessRestoreSession(additional_data={"driveRestoreArtifacts@delta": items})


def point_ids(samples: dict[str, Any], n: int, kind: str = "restorePoints") -> list[str]:
    ids = [p["id"] for p in samples[kind][:n]]
    assert len(ids) == n, "not enough sample restore points"
    return ids


def odata_error(exc: BaseException) -> tuple[int | None, str | None, str | None]:
    assert isinstance(exc, ODataError), exc
    err = exc.error
    return exc.response_status_code, err.code if err else None, err.message if err else None


def sessions(br: Any, sid: str) -> Any:
    return br.one_drive_for_business_restore_sessions.by_one_drive_for_business_restore_session_id(sid)


def site_session_body(point_ids: list[str], destination: DestinationType = NEW) -> SharePointRestoreSession:
    return SharePointRestoreSession(
        site_restore_artifacts=[
            SiteRestoreArtifact(restore_point=RestorePoint(id=p), destination_type=destination) for p in point_ids
        ]
    )


def mailbox_session_body(point_ids: list[str], destination: DestinationType = NEW) -> ExchangeRestoreSession:
    return ExchangeRestoreSession(
        mailbox_restore_artifacts=[
            MailboxRestoreArtifact(restore_point=RestorePoint(id=p), destination_type=destination) for p in point_ids
        ]
    )


def site_sessions(br: Any, sid: str) -> Any:
    return br.share_point_restore_sessions.by_share_point_restore_session_id(sid)


def mailbox_sessions(br: Any, sid: str) -> Any:
    return br.exchange_restore_sessions.by_exchange_restore_session_id(sid)


async def activate(br: Any, sid: str) -> Any:
    """Activate any workload's session through the generic restoreSessions/{id}/activate."""
    return await br.restore_sessions.by_restore_session_base_id(sid).activate.post()
