"""Exchange: mailbox protection units, exchangeRestoreSessions with mailboxRestoreArtifacts (restored folders),
bulk additions by address, and the Exchange restore point schedule, driven through msgraph-sdk."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from msgraph.generated.models.artifact_restore_status import ArtifactRestoreStatus as A
from msgraph.generated.models.exchange_restore_session import ExchangeRestoreSession
from msgraph.generated.models.mailbox_protection_unit import MailboxProtectionUnit
from msgraph.generated.models.mailbox_restore_artifact import MailboxRestoreArtifact
from msgraph.generated.models.mailbox_restore_artifacts_bulk_addition_request import (
    MailboxRestoreArtifactsBulkAdditionRequest,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_browse_session import OneDriveForBusinessBrowseSession
from msgraph.generated.models.restore_artifacts_bulk_request_status import RestoreArtifactsBulkRequestStatus as B
from msgraph.generated.models.restore_job_type import RestoreJobType
from msgraph.generated.models.restore_point_preference import RestorePointPreference
from msgraph.generated.models.restore_point_tags import RestorePointTags
from msgraph.generated.models.restore_session_status import RestoreSessionStatus as S
from msgraph.generated.models.time_period import TimePeriod
from msgraph.generated.solutions.backup_restore.restore_points.search.search_post_request_body import (
    SearchPostRequestBody,
)

from .conftest import BASELINE, EXO, R
from .helpers import IN_PLACE, NEW, activate, mailbox_session_body, mailbox_sessions, odata_error, point_ids

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime.fromtimestamp(BASELINE["start_time"], UTC)


def _mailbox_points(samples, n: int) -> list[str]:
    return point_ids(samples, n, "mailboxRestorePoints")


async def _run(br, emu, body) -> str:
    created = await br.exchange_restore_sessions.post(body)
    await activate(br, created.id)
    emu.admin.advance(minutes=5)
    return created.id


def _search(ids, start, end, preference=RestorePointPreference.Latest, tags=None) -> SearchPostRequestBody:
    return SearchPostRequestBody(protection_unit_ids=ids, restore_point_preference=preference, tags=tags,
                                 protection_time_period=TimePeriod(start_date_time=start, end_date_time=end))


async def test_mailbox_protection_units_are_the_users_mailboxes(br, samples):
    listed = await br.mailbox_protection_units.get()
    assert len(listed.value) == BASELINE["mailboxes"]
    assert all(isinstance(u, MailboxProtectionUnit) for u in listed.value)
    drive = samples["drives"][2]
    mailbox = next(m for m in samples["mailboxes"] if m["email"] == "user00002@contoso.com")
    # the same user: the OneDrive owner's address and directory object
    assert mailbox["directoryObjectId"] == drive["directoryObjectId"]
    got = await br.mailbox_protection_units.by_mailbox_protection_unit_id(mailbox["id"]).get()
    assert (got.email, got.directory_object_id, got.display_name) == (
        "user00002@contoso.com", drive["directoryObjectId"], "User 00002")
    (policy,) = (await br.exchange_protection_policies.get()).value
    assert got.policy_id == policy.id


async def test_exchange_session_lifecycle_restores_into_a_new_folder(br, emu, samples):
    ids = _mailbox_points(samples, 2)
    created = await br.exchange_restore_sessions.post(mailbox_session_body(ids))
    assert isinstance(created, ExchangeRestoreSession)
    assert (created.status, created.restore_job_type) == (S.Draft, RestoreJobType.Standard)
    activated = await activate(br, created.id)
    assert activated.status == S.Activating
    arts = (await mailbox_sessions(br, created.id).mailbox_restore_artifacts.get()).value
    assert {a.status for a in arts} == {A.Scheduling}
    assert all(a.restored_folder_id is None for a in arts)
    emu.admin.advance(minutes=5)
    session = await br.restore_sessions.by_restore_session_base_id(created.id).get()
    assert (session.status, session.restore_session_artifact_count.completed) == (S.Completed, 2)
    arts = (await mailbox_sessions(br, created.id).mailbox_restore_artifacts.get()).value
    assert all(isinstance(a, MailboxRestoreArtifact) and a.status == A.Succeeded for a in arts)
    # Microsoft 365 Backup: "a newly created folder named Restored Items YYYY-DD-MM, HH:MM"
    assert {a.restored_folder_name for a in arts} == {f"Restored Items {NOW:%Y-%d-%m, %H:%M}"}
    assert len({a.restored_folder_id for a in arts}) == 2 and all(uuid.UUID(a.restored_folder_id) for a in arts)
    assert all(isinstance(a.restored_item_count, int) and a.restored_item_count >= 0 for a in arts)
    one = await mailbox_sessions(br, created.id).mailbox_restore_artifacts.by_mailbox_restore_artifact_id(
        arts[0].id).get()
    assert one.restored_folder_id == arts[0].restored_folder_id


async def test_exchange_in_place_restore_reports_the_mailbox(br, emu, samples):
    sid = await _run(br, emu, mailbox_session_body(_mailbox_points(samples, 1), IN_PLACE))
    (art,) = (await mailbox_sessions(br, sid).mailbox_restore_artifacts.get()).value
    assert (art.status, art.destination_type, art.restored_folder_name) == (A.Succeeded, IN_PLACE, "user00000")


async def test_patch_delta_and_delete_of_an_exchange_session(br, http, samples):
    a, b = _mailbox_points(samples, 2)
    created = await br.exchange_restore_sessions.post(mailbox_session_body([a]))
    item = mailbox_sessions(br, created.id)
    (first,) = (await item.mailbox_restore_artifacts.get()).value
    await item.patch(ExchangeRestoreSession(additional_data={"mailboxRestoreArtifacts@delta": [
        {"restorePoint": {"id": b}, "destinationType": "new"},
        {"@removed": {"reason": "changed"}, "id": first.id},
    ]}))
    assert [x.restore_point.id for x in (await item.mailbox_restore_artifacts.get()).value] == [b]
    assert (await http.delete(f"{R}/restoreSessions/{created.id}")).status_code == 204
    with pytest.raises(ODataError) as info:
        await item.get()
    assert odata_error(info.value)[:2] == (404, "RestoreSessionNotFound")


async def test_exchange_session_rules(br, samples):
    a = _mailbox_points(samples, 1)[0]
    cases = [
        (mailbox_session_body([a, a]), (400, "DuplicateArtifactInList")),
        (mailbox_session_body([samples["siteRestorePoints"][0]["id"]]), (400, "InvalidRestorePoint")),
        (mailbox_session_body([samples["restorePoints"][0]["id"]]), (400, "InvalidRestorePoint")),
        (mailbox_session_body([samples["expiredMailboxRestorePoints"][0]["id"]]), (400, "InvalidRestorePoint")),
        (ExchangeRestoreSession(mailbox_restore_artifacts=[]), (400, "InvalidArtifactRequest")),
    ]
    for body, expected in cases:
        with pytest.raises(ODataError) as info:
            await br.exchange_restore_sessions.post(body)
        assert odata_error(info.value)[:2] == expected


async def test_granular_mailbox_restores_are_not_emulated(http, samples):
    resp = await http.post(EXO, json={"granularMailboxRestoreArtifacts": [{"restorePoint": {"id": "x"}}]})
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "BadRequest")
    assert "not supported by this emulator" in resp.json()["error"]["message"]


async def test_mailbox_restore_points_are_every_10_minutes_for_a_year_and_never_fast(br, samples):
    unit = samples["mailboxes"][0]["id"]
    start = NOW - timedelta(days=300)
    oldest = (await br.restore_points.search.post(
        _search([unit], start, NOW, RestorePointPreference.Oldest))).search_results[0].restore_point
    assert start <= oldest.protection_date_time < start + timedelta(minutes=10)  # drives: weekly after 14 days
    assert oldest.tags == [RestorePointTags.None_]
    fast = await br.restore_points.search.post(_search([unit], NOW - timedelta(days=3), NOW,
                                                       tags=RestorePointTags.FastRestore))
    assert (fast.search_results, fast.no_result_protection_unit_ids) == ([], [unit])


async def test_exchange_has_no_browse(http, br, samples):
    point = samples["mailboxRestorePoints"][0]["id"]
    resp = await http.post(f"{R}/exchangeBrowseSessions", json={"restorePointId": point})
    assert resp.status_code == 400 and "Resource not found for the segment" in resp.json()["error"]["message"]
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_browse_sessions.post(
            OneDriveForBusinessBrowseSession(restore_point_id=point))
    assert odata_error(info.value)[:2] == (400, "InvalidRestorePoint")


def _bulk(mailboxes=None, directory_object_ids=None) -> MailboxRestoreArtifactsBulkAdditionRequest:
    return MailboxRestoreArtifactsBulkAdditionRequest(
        display_name="mailboxes", mailboxes=mailboxes, directory_object_ids=directory_object_ids, destination_type=NEW,
        protection_time_period=TimePeriod(start_date_time=NOW - timedelta(days=7), end_date_time=NOW),
        restore_point_preference=RestorePointPreference.Latest)


async def test_bulk_by_mailbox_address_resolves_at_activation(br, emu, samples):
    session = await br.exchange_restore_sessions.post(ExchangeRestoreSession())
    requests = mailbox_sessions(br, session.id).mailbox_restore_artifacts_bulk_addition_requests
    emails = [m["email"] for m in samples["mailboxes"][:3]]
    created = await requests.post(_bulk(emails))
    assert (created.status, created.mailboxes) == (B.Active, emails)
    activated = await activate(br, session.id)
    assert (activated.restore_job_type, activated.restore_session_artifact_count.total) == (RestoreJobType.Bulk, 3)
    got = await requests.by_mailbox_restore_artifacts_bulk_addition_request_id(created.id).get()
    assert got.status == B.Completed and got.error is None
    emu.admin.advance(minutes=5)
    arts = (await mailbox_sessions(br, session.id).mailbox_restore_artifacts.get()).value
    assert {a.status for a in arts} == {A.Succeeded}


async def test_bulk_directory_object_ids_are_not_implemented_and_bad_addresses_are_refused(br, samples):
    session = await br.exchange_restore_sessions.post(ExchangeRestoreSession())
    requests = mailbox_sessions(br, session.id).mailbox_restore_artifacts_bulk_addition_requests
    with pytest.raises(ODataError) as info:
        await requests.post(_bulk(["not-an-address"]))
    assert odata_error(info.value)[:2] == (400, "BulkRestoreInvalidCreateRequestUserEmail")
    directory_id = samples["mailboxes"][1]["directoryObjectId"]
    created = await requests.post(_bulk([samples["mailboxes"][0]["email"]], [directory_id]))
    assert created.directory_object_ids == [directory_id]
    activated = await activate(br, session.id)
    assert activated.restore_session_artifact_count.total == 1
    got = await requests.by_mailbox_restore_artifacts_bulk_addition_request_id(created.id).get()
    assert got.status == B.CompletedWithErrors
    assert directory_id in got.error.message and "directoryObjectIds: not implemented yet" in got.error.message


async def test_unprotected_and_unknown_mailboxes_are_unresolved_in_bulk(br, samples):
    session = await br.exchange_restore_sessions.post(ExchangeRestoreSession())
    requests = mailbox_sessions(br, session.id).mailbox_restore_artifacts_bulk_addition_requests
    unprotected = samples["unprotectedMailboxes"][0]["email"]
    created = await requests.post(_bulk([samples["mailboxes"][0]["email"], unprotected, "nobody@contoso.com"]))
    activated = await activate(br, session.id)
    assert activated.restore_session_artifact_count.total == 1
    got = await requests.by_mailbox_restore_artifacts_bulk_addition_request_id(created.id).get()
    assert got.status == B.CompletedWithErrors
    assert unprotected in got.error.message and "nobody@contoso.com" in got.error.message
