"""Granular restores: files and folders picked in a OneDrive or SharePoint browse session, restored through
granularDriveRestoreArtifacts / granularSiteRestoreArtifacts (restoreJobType granular), via msgraph-sdk."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from msgraph.generated.models.artifact_restore_status import ArtifactRestoreStatus as A
from msgraph.generated.models.granular_drive_restore_artifact import GranularDriveRestoreArtifact
from msgraph.generated.models.granular_site_restore_artifact import GranularSiteRestoreArtifact
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_browse_session import OneDriveForBusinessBrowseSession
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_job_type import RestoreJobType
from msgraph.generated.models.restore_session_status import RestoreSessionStatus as S
from msgraph.generated.models.share_point_browse_session import SharePointBrowseSession
from msgraph.generated.models.share_point_restore_session import SharePointRestoreSession
from msgraph.generated.solutions.backup_restore.browse_sessions.item.browse.browse_post_request_body import (
    BrowsePostRequestBody,
)

from .conftest import BASELINE, ODB, R
from .helpers import activate, delta_body, odata_error, point_ids, session_body, sessions, site_sessions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime.fromtimestamp(BASELINE["start_time"], UTC)


async def _activate_now(br, emu, sid: str) -> str:
    """Activate and return the activation time as the restore folder names it."""
    at = datetime.fromtimestamp(emu.admin.clock()["epoch"], UTC)
    await activate(br, sid)
    return f"{at:%Y%m%d-%H%M%S}"


async def _drive_browse(br, emu, point_id: str) -> str:
    created = await br.one_drive_for_business_browse_sessions.post(
        OneDriveForBusinessBrowseSession(restore_point_id=point_id))
    emu.admin.advance(10)
    return created.id


async def _site_browse(br, emu, point_id: str) -> str:
    created = await br.share_point_browse_sessions.post(SharePointBrowseSession(restore_point_id=point_id))
    emu.admin.advance(10)
    return created.id


async def _children(br, bsid: str, key: str | None = None) -> list[Any]:
    body = BrowsePostRequestBody(browse_location_item_key=key) if key else BrowsePostRequestBody()
    return (await br.browse_sessions.by_browse_session_base_id(bsid).browse.post(body)).value


async def _pick(br, bsid: str, path: list[str]) -> Any:
    """The browse item at `path` (names below the top item), found by browsing down."""
    (item,) = await _children(br, bsid)
    for name in path:
        item = next(i for i in await _children(br, bsid, item.item_key) if i.name == name)
    return item


async def _first_file(br, bsid: str, folder: list[str]) -> Any:
    parent = await _pick(br, bsid, folder)
    return next(i for i in await _children(br, bsid, parent.item_key) if i.type.value == "file")


async def test_files_and_a_folder_from_a_drive_browse_session_are_restored_to_a_new_folder(br, emu, samples):
    drive = samples["drives"][0]
    bsid = await _drive_browse(br, emu, samples["fastRestorePoints"][0]["id"])
    projects = await _pick(br, bsid, ["Projects"])
    file = await _first_file(br, bsid, [])
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession(
        granular_drive_restore_artifacts=[GranularDriveRestoreArtifact(browse_session_id=bsid, id=item.item_key)
                                          for item in (projects, file)]))
    assert (created.restore_job_type, created.restore_session_artifact_count.total) == (RestoreJobType.Granular, 2)
    granular = sessions(br, created.id).granular_drive_restore_artifacts
    arts = (await granular.get()).value
    assert all(isinstance(a, GranularDriveRestoreArtifact) for a in arts)
    assert [(a.id, a.status, a.web_url) for a in arts] == [(projects.item_key, A.Added, projects.web_url),
                                                            (file.item_key, A.Added, file.web_url)]
    assert {a.directory_object_id for a in arts} == {drive["directoryObjectId"]}
    assert all(a.restored_item_path is None for a in arts)
    stamp = await _activate_now(br, emu, created.id)
    emu.admin.advance(minutes=5)
    session = await br.restore_sessions.by_restore_session_base_id(created.id).get()
    assert (session.status, session.restore_job_type) == (S.Completed, RestoreJobType.Granular)
    done = {a.id: a for a in (await granular.get()).value}
    folder_url = f"{drive['webUrl']}/Documents/RestoredItems-{stamp}"
    for item in (projects, file):
        art = done[item.item_key]
        assert art.status == A.Succeeded
        assert art.restored_item_path == folder_url.removeprefix("https://contoso-my.sharepoint.com")
        assert art.restored_item_web_url == f"{folder_url}/{item.name}"
        assert art.restored_item_key.split(",")[:3] == item.item_key.split(",")[:3]
        assert art.completion_date_time > art.start_date_time
    one = await granular.by_granular_drive_restore_artifact_id(file.item_key).get()
    assert one.restored_item_web_url == done[file.item_key].restored_item_web_url


async def test_items_of_a_site_browse_session_are_restored_into_their_library(br, emu, samples):
    site = samples["sites"][1]
    bsid = await _site_browse(br, emu, samples["siteFastRestorePoints"][1]["id"])
    file = await _first_file(br, bsid, ["Shared Documents", "Projects"])
    created = await br.share_point_restore_sessions.post(SharePointRestoreSession(
        granular_site_restore_artifacts=[GranularSiteRestoreArtifact(browse_session_id=bsid, id=file.item_key)]))
    assert created.restore_job_type == RestoreJobType.Granular
    granular = site_sessions(br, created.id).granular_site_restore_artifacts
    (art,) = (await granular.get()).value
    assert isinstance(art, GranularSiteRestoreArtifact) and art.site_id == site["siteId"]
    stamp = await _activate_now(br, emu, created.id)
    emu.admin.advance(minutes=5)
    (art,) = (await granular.get()).value
    library = f"{site['siteWebUrl']}/Shared Documents"
    assert art.status == A.Succeeded
    assert art.restored_item_web_url == f"{library}/RestoredItems-{stamp}/Projects/{file.name}"
    site_path = site["siteWebUrl"].removeprefix("https://contoso.sharepoint.com")
    assert art.restored_item_path == f"{site_path}/Shared Documents/RestoredItems-{stamp}"


async def test_granular_items_are_added_and_removed_by_item_key_with_patch(br, emu, samples):
    bsid = await _drive_browse(br, emu, samples["fastRestorePoints"][1]["id"])
    photos = await _pick(br, bsid, ["Photos"])
    archive = await _pick(br, bsid, ["Archive"])
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession(
        granular_drive_restore_artifacts=[GranularDriveRestoreArtifact(browse_session_id=bsid, id=photos.item_key)]))
    item = sessions(br, created.id)
    result = await item.patch(OneDriveForBusinessRestoreSession(additional_data={
        "granularDriveRestoreArtifacts@delta": [
            {"browseSessionId": bsid, "itemKey": archive.item_key},
            {"@removed": {"reason": "changed"}, "id": photos.item_key},
        ]}))
    assert result.additional_data["@context"] == "#$delta"
    assert [a.id for a in (await item.granular_drive_restore_artifacts.get()).value] == [archive.item_key]


async def test_an_unknown_or_expired_browse_session_and_an_unknown_item_key_are_refused(br, emu, samples):
    bsid = await _drive_browse(br, emu, samples["fastRestorePoints"][0]["id"])
    file = await _first_file(br, bsid, [])
    unknown_key = ",".join([*file.item_key.split(",")[:3], "00000000-0000-4000-8000-000000000000"])

    async def create(browse_session_id: str, key: str) -> tuple[int | None, str | None, str | None]:
        with pytest.raises(ODataError) as info:
            await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession(
                granular_drive_restore_artifacts=[GranularDriveRestoreArtifact(browse_session_id=browse_session_id,
                                                                               id=key)]))
        return odata_error(info.value)

    status, code, message = await create("no-such-browse-session", file.item_key)
    assert (status, code) == (400, "InvalidArtifactRequest") and "not found or has expired" in message
    status, code, message = await create(bsid, unknown_key)
    assert (status, code) == (400, "InvalidArtifactRequest") and "was not found in the browse session" in message
    emu.admin.advance(days=3)
    status, code, message = await create(bsid, file.item_key)
    assert (status, code) == (400, "InvalidArtifactRequest") and "not found or has expired" in message


async def test_an_item_of_another_workloads_browse_session_or_of_another_drive_is_refused(br, emu, samples):
    site_bs = await _site_browse(br, emu, samples["siteFastRestorePoints"][0]["id"])
    site_file = await _first_file(br, site_bs, ["Shared Documents"])
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession(
            granular_drive_restore_artifacts=[GranularDriveRestoreArtifact(browse_session_id=site_bs,
                                                                           id=site_file.item_key)]))
    status, code, message = odata_error(info.value)
    assert (status, code) == (400, "InvalidArtifactRequest") and "SharePoint browse session" in message
    items = []
    for point in samples["fastRestorePoints"][:2]:  # two drives
        bsid = await _drive_browse(br, emu, point["id"])
        file = await _first_file(br, bsid, [])
        items.append(GranularDriveRestoreArtifact(browse_session_id=bsid, id=file.item_key))
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(
            OneDriveForBusinessRestoreSession(granular_drive_restore_artifacts=items))
    assert odata_error(info.value)[:2] == (400, "InvalidArtifactRequest")
    (site_item,) = await _children(br, site_bs)  # the site itself: a whole-site restore, not a granular one
    with pytest.raises(ODataError) as info:
        await br.share_point_restore_sessions.post(SharePointRestoreSession(
            granular_site_restore_artifacts=[GranularSiteRestoreArtifact(browse_session_id=site_bs,
                                                                         id=site_item.item_key)]))
    assert odata_error(info.value)[:2] == (400, "InvalidArtifactRequest")


async def test_granular_and_whole_drive_artifacts_do_not_mix(br, http, emu, samples):
    bsid = await _drive_browse(br, emu, samples["fastRestorePoints"][0]["id"])
    file = await _first_file(br, bsid, [])
    (point,) = point_ids(samples, 1)
    both = {"driveRestoreArtifacts": [{"restorePoint": {"id": point}, "destinationType": "new"}],
            "granularDriveRestoreArtifacts": [{"browseSessionId": bsid, "id": file.item_key}]}
    resp = await http.post(ODB, json=both)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "InvalidArtifactRequest")
    standard = await br.one_drive_for_business_restore_sessions.post(session_body([point]))
    with pytest.raises(ODataError) as info:
        await sessions(br, standard.id).patch(OneDriveForBusinessRestoreSession(additional_data={
            "granularDriveRestoreArtifacts@delta": [{"browseSessionId": bsid, "itemKey": file.item_key}]}))
    assert odata_error(info.value)[:2] == (400, "InvalidPatchRequest")
    granular = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession(
        granular_drive_restore_artifacts=[GranularDriveRestoreArtifact(browse_session_id=bsid, id=file.item_key)]))
    with pytest.raises(ODataError) as info:
        await sessions(br, granular.id).patch(
            delta_body([{"restorePoint": {"id": point}, "destinationType": "new"}]))
    assert odata_error(info.value)[:2] == (400, "InvalidPatchRequest")


async def test_a_granular_item_restored_in_place_goes_back_where_it_was(http, br, emu, samples):
    # The beta resource has destinationType (new, inPlace) on granular artifacts; the v1.0 SDK model does not.
    bsid = await _drive_browse(br, emu, samples["fastRestorePoints"][2]["id"])
    file = await _first_file(br, bsid, ["Projects"])
    body = {"granularDriveRestoreArtifacts": [{"browseSessionId": bsid, "id": file.item_key,
                                               "destinationType": "inPlace"}]}
    created = (await http.post(ODB, json=body)).json()
    assert (await http.post(f"{R}/restoreSessions/{created['id']}/activate")).status_code == 200
    emu.admin.advance(minutes=5)
    (art,) = (await http.get(f"{ODB}/{created['id']}/granularDriveRestoreArtifacts")).json()["value"]
    assert (art["status"], art["destinationType"]) == ("succeeded", "inPlace")
    assert (art["restoredItemKey"], art["restoredItemWebUrl"]) == (file.item_key, file.web_url)


async def test_granular_session_ends_failed_when_its_drive_is_being_restored(br, emu, samples):
    # the drive of the browse session is restored by another active session: the artifact is refused
    whole = await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 1)))
    await activate(br, whole.id)
    bsid = await _drive_browse(br, emu, samples["fastRestorePoints"][0]["id"])
    file = await _first_file(br, bsid, [])
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession(
        granular_drive_restore_artifacts=[GranularDriveRestoreArtifact(browse_session_id=bsid, id=file.item_key)]))
    await activate(br, created.id)
    emu.admin.advance(minutes=5)
    (art,) = (await sessions(br, created.id).granular_drive_restore_artifacts.get()).value
    assert (art.status, art.restored_item_web_url) == (A.Failed, None)
    assert art.additional_data.get("error", {}).get("code") == "DuplicateArtifactRestoreRequest"
