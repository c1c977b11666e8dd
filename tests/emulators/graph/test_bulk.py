"""driveRestoreArtifactsBulkAdditionRequests: create, list, get, resolution at activation, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from msgraph.generated.models.artifact_restore_status import ArtifactRestoreStatus as A
from msgraph.generated.models.destination_type import DestinationType
from msgraph.generated.models.drive_restore_artifacts_bulk_addition_request import (
    DriveRestoreArtifactsBulkAdditionRequest,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_artifacts_bulk_request_status import RestoreArtifactsBulkRequestStatus
from msgraph.generated.models.restore_job_type import RestoreJobType
from msgraph.generated.models.restore_point_preference import RestorePointPreference
from msgraph.generated.models.time_period import TimePeriod

from .conftest import BASELINE
from .helpers import delta_body, odata_error, point_ids, session_body, sessions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime.fromtimestamp(BASELINE["start_time"], UTC)


def _bulk(drives=None, dirs=None, **kw):
    return DriveRestoreArtifactsBulkAdditionRequest(
        display_name="bulk",
        drives=drives,
        directory_object_ids=dirs,
        destination_type=kw.get("destination", DestinationType.New),
        protection_time_period=TimePeriod(start_date_time=NOW - timedelta(days=7), end_date_time=NOW),
        restore_point_preference=RestorePointPreference.Latest,
    )


async def _empty_session(br):
    return await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())


async def test_bulk_request_is_active_until_activation_then_resolves_drives(br, emu, samples):
    session = await _empty_session(br)
    emails = [d["email"] for d in samples["drives"][:2]]
    dirs = [samples["drives"][2]["directoryObjectId"]]
    requests = sessions(br, session.id).drive_restore_artifacts_bulk_addition_requests
    created = await requests.post(_bulk(emails, dirs))
    assert created.status == RestoreArtifactsBulkRequestStatus.Active
    assert (await requests.by_drive_restore_artifacts_bulk_addition_request_id(created.id).get()).id == created.id
    assert [r.id for r in (await requests.get()).value] == [created.id]
    activated = await br.restore_sessions.by_restore_session_base_id(session.id).activate.post()
    assert activated.restore_job_type == RestoreJobType.Bulk
    assert activated.restore_session_artifact_count.total == 3
    got = await requests.by_drive_restore_artifacts_bulk_addition_request_id(created.id).get()
    assert got.status == RestoreArtifactsBulkRequestStatus.Completed
    emu.admin.advance(minutes=5)
    arts = (await sessions(br, session.id).drive_restore_artifacts.get()).value
    assert {a.status for a in arts} == {A.Succeeded}


async def test_bulk_with_unknown_and_unprotected_users_completes_with_errors(br, samples):
    session = await _empty_session(br)
    requests = sessions(br, session.id).drive_restore_artifacts_bulk_addition_requests
    emails = [samples["drives"][0]["email"], "nobody@contoso.com", samples["unprotectedDrives"][0]["email"]]
    created = await requests.post(_bulk(emails))
    activated = await br.restore_sessions.by_restore_session_base_id(session.id).activate.post()
    assert activated.restore_session_artifact_count.total == 1
    got = await requests.by_drive_restore_artifacts_bulk_addition_request_id(created.id).get()
    assert got.status == RestoreArtifactsBulkRequestStatus.CompletedWithErrors
    assert "nobody@contoso.com" in got.error.message


async def test_bulk_over_10000_resources_is_refused(br):
    session = await _empty_session(br)
    emails = [f"user{i:05d}@contoso.com" for i in range(10_001)]
    with pytest.raises(ODataError) as info:
        await sessions(br, session.id).drive_restore_artifacts_bulk_addition_requests.post(_bulk(emails))
    assert odata_error(info.value)[:2] == (400, "BulkRestoreRestorationResourcesCountExceedsLimit")


async def test_bulk_with_a_malformed_email_is_refused(br):
    session = await _empty_session(br)
    with pytest.raises(ODataError) as info:
        await sessions(br, session.id).drive_restore_artifacts_bulk_addition_requests.post(_bulk(["not-an-email"]))
    assert odata_error(info.value)[:2] == (400, "BulkRestoreInvalidCreateRequestUserEmail")


async def test_second_bulk_request_and_patch_on_a_bulk_session_are_refused(br, samples):
    session = await _empty_session(br)
    requests = sessions(br, session.id).drive_restore_artifacts_bulk_addition_requests
    await requests.post(_bulk([samples["drives"][0]["email"]]))
    with pytest.raises(ODataError) as info:
        await requests.post(_bulk([samples["drives"][1]["email"]]))
    assert odata_error(info.value)[:2] == (400, "BulkRestoreInvalidCreateRequest")
    with pytest.raises(ODataError) as info:
        await sessions(br, session.id).patch(
            delta_body([{"restorePoint": {"id": samples["restorePoints"][1]["id"]}, "destinationType": "new"}])
        )
    assert odata_error(info.value)[:2] == (400, "InvalidPatchRequest")


async def test_bulk_on_a_session_with_manual_artifacts_is_refused(br, samples):
    session = await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 1)))
    with pytest.raises(ODataError) as info:
        await sessions(br, session.id).drive_restore_artifacts_bulk_addition_requests.post(
            _bulk([samples["drives"][1]["email"]])
        )
    assert odata_error(info.value)[:2] == (400, "BulkRestoreInvalidCreateRequest")


async def test_bulk_request_can_be_deleted_only_when_completed(br, samples):
    session = await _empty_session(br)
    requests = sessions(br, session.id).drive_restore_artifacts_bulk_addition_requests
    created = await requests.post(_bulk([samples["drives"][0]["email"]]))
    item = requests.by_drive_restore_artifacts_bulk_addition_request_id(created.id)
    with pytest.raises(ODataError) as info:
        await item.delete()
    assert odata_error(info.value)[:2] == (403, "InvalidStateForBulkRequestDeletion")
    await br.restore_sessions.by_restore_session_base_id(session.id).activate.post()
    await item.delete()
    with pytest.raises(ODataError) as info:
        await item.get()
    assert odata_error(info.value)[:2] == (404, "BulkRestoreArtifactsNotFound")
