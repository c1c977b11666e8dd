"""Restore session rules, driven through msgraph-sdk (and raw HTTP where the SDK can't say it)."""

from __future__ import annotations

import uuid

import pytest
from msgraph.generated.models.destination_type import DestinationType
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_job_type import RestoreJobType
from msgraph.generated.models.restore_session_status import RestoreSessionStatus

from .conftest import ODB, R
from .helpers import IN_PLACE, NEW, artifact, delta_body, odata_error, point_ids, session_body, sessions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_create_with_two_artifacts_returns_a_draft_standard_session(br, samples):
    created = await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 2)))
    assert isinstance(created, OneDriveForBusinessRestoreSession)
    assert uuid.UUID(created.id)
    assert created.status == RestoreSessionStatus.Draft
    assert created.restore_job_type == RestoreJobType.Standard
    count = created.restore_session_artifact_count
    assert (count.total, count.completed, count.in_progress, count.failed) == (2, 0, 0, 0)
    assert created.created_by.application.display_name == "restore-orchestrator"
    assert created.created_date_time is not None


async def test_create_without_payload_creates_an_empty_standard_session(br):
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    assert created.status == RestoreSessionStatus.Draft
    assert created.restore_job_type == RestoreJobType.Standard
    assert created.restore_session_artifact_count.total == 0


async def test_create_with_51_artifacts_is_refused_with_413(br, emu):
    emu.admin.reset(drives=60, unprotected_fraction=0.0, seed=7, clock_scale=0.0)
    ids = point_ids(emu.admin.samples(60), 51)
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(session_body(ids))
    status, code, message = odata_error(info.value)
    assert (status, code) == (413, "RestoreArtifactsLimitBreached")
    assert "maximum artifacts limit" in message


async def test_create_with_50_artifacts_is_accepted(br, emu):
    emu.admin.reset(drives=60, unprotected_fraction=0.0, seed=7, clock_scale=0.0)
    ids = point_ids(emu.admin.samples(60), 50)
    created = await br.one_drive_for_business_restore_sessions.post(session_body(ids))
    assert created.restore_session_artifact_count.total == 50


async def test_create_with_an_empty_list_is_refused_with_invalid_artifact_request(br):
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(
            OneDriveForBusinessRestoreSession(drive_restore_artifacts=[])
        )
    assert odata_error(info.value)[:2] == (400, "InvalidArtifactRequest")


async def test_create_with_new_and_in_place_destinations_is_refused(br, samples):
    a, b = point_ids(samples, 2)
    body = OneDriveForBusinessRestoreSession(drive_restore_artifacts=[artifact(a, NEW), artifact(b, IN_PLACE)])
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(body)
    assert odata_error(info.value)[:2] == (400, "DifferentRestoreDestinationType")


async def test_create_with_the_same_restore_point_twice_is_refused_as_duplicate(br, samples):
    (a,) = point_ids(samples, 1)
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(session_body([a, a]))
    assert odata_error(info.value)[:2] == (400, "DuplicateArtifactInList")


async def test_create_with_two_points_of_the_same_drive_is_refused_as_duplicate(br, samples):
    same_drive = [samples["restorePoints"][0]["id"], samples["fastRestorePoints"][0]["id"]]
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(session_body(same_drive))
    assert odata_error(info.value)[:2] == (400, "DuplicateArtifactInList")


async def test_create_with_an_unknown_restore_point_is_refused(br):
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(session_body([str(uuid.uuid4())]))
    assert odata_error(info.value)[:2] == (400, "InvalidRestorePoint")


async def test_create_with_an_expired_restore_point_is_refused(br, samples):
    expired = samples["expiredRestorePoints"][0]
    assert expired["expired"] is True
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(session_body([expired["id"]]))
    status, code, message = odata_error(info.value)
    assert (status, code) == (400, "InvalidRestorePoint")
    assert "expired" in message


async def test_create_with_a_restore_point_expired_by_the_admin_is_refused(br, emu, samples):
    (a,) = point_ids(samples, 1)
    emu.admin.expire_restore_points([a])
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(session_body([a]))
    assert odata_error(info.value)[:2] == (400, "InvalidRestorePoint")


async def test_create_with_an_unknown_destination_type_is_refused_with_invalid_path_type(br, samples):
    (a,) = point_ids(samples, 1)
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_restore_sessions.post(
            session_body([a], DestinationType.UnknownFutureValue)
        )
    assert odata_error(info.value)[:2] == (400, "InvalidPathType")


async def test_restore_point_given_as_odata_id_is_accepted(http, samples):
    a, b = point_ids(samples, 2)
    body = {
        "driveRestoreArtifacts": [
            {"restorePoint": {"@odata.id": a}, "destinationType": "new"},
            {"restorePoint": {"@odata.id": f"https://graph.microsoft.com/v1.0{R}/restorePoints/{b}"},
             "destinationType": "new"},
        ]
    }
    resp = await http.post(ODB, json=body)
    assert resp.status_code == 201, resp.text
    sid = resp.json()["id"]
    arts = (await http.get(f"{ODB}/{sid}/driveRestoreArtifacts")).json()["value"]
    assert sorted(x["restorePoint"]["id"] for x in arts) == sorted([a, b])


async def test_patch_delta_adds_and_removes_artifacts(br, samples):
    a, b, c = point_ids(samples, 3)
    created = await br.one_drive_for_business_restore_sessions.post(session_body([a, b]))
    item = sessions(br, created.id)
    arts = (await item.drive_restore_artifacts.get()).value
    remove_id = next(x.id for x in arts if x.restore_point.id == a)
    result = await item.patch(
        delta_body(
            [
                {"restorePoint": {"id": c}, "destinationType": "new"},
                {"@removed": {"reason": "changed"}, "id": remove_id},
            ]
        )
    )
    value = result.additional_data["value"]
    assert any(v.get("status") == "added" for v in value)
    after = await br.restore_sessions.by_restore_session_base_id(created.id).get()
    assert after.restore_session_artifact_count.total == 2
    remaining = {x.restore_point.id for x in (await item.drive_restore_artifacts.get()).value}
    assert remaining == {b, c}


async def test_patch_removing_an_unknown_artifact_reports_the_failed_item_at_200(br, samples):
    created = await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 1)))
    missing = str(uuid.uuid4())
    result = await sessions(br, created.id).patch(delta_body([{"@removed": {"reason": "changed"}, "id": missing}]))
    (failed,) = result.additional_data["value"]
    assert failed["@Core.DataModificationException"]["failedOperation"] == "remove"
    assert failed["@Core.DataModificationException"]["responseCode"] == 409


async def test_patch_with_51_artifacts_is_refused_with_400(br, emu):
    emu.admin.reset(drives=60, unprotected_fraction=0.0, seed=7, clock_scale=0.0)
    ids = point_ids(emu.admin.samples(60), 51)
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    items = [{"restorePoint": {"id": i}, "destinationType": "new"} for i in ids]
    with pytest.raises(ODataError) as info:
        await sessions(br, created.id).patch(delta_body(items))
    status, code, message = odata_error(info.value)
    assert (status, code) == (400, "RestoreArtifactsLimitBreached")
    assert "50" in message


async def test_patch_with_an_empty_delta_is_refused(br):
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    with pytest.raises(ODataError) as info:
        await sessions(br, created.id).patch(delta_body([]))
    assert odata_error(info.value)[:2] == (400, "InvalidArtifactRequest")


async def test_patch_adding_another_destination_type_is_refused(br, samples):
    a, b = point_ids(samples, 2)
    created = await br.one_drive_for_business_restore_sessions.post(session_body([a], NEW))
    with pytest.raises(ODataError) as info:
        await sessions(br, created.id).patch(delta_body([{"restorePoint": {"id": b}, "destinationType": "inPlace"}]))
    assert odata_error(info.value)[:2] == (400, "DifferentRestoreDestinationType")


async def test_patch_adding_a_drive_already_in_the_session_is_refused(br, samples):
    (a,) = point_ids(samples, 1)
    created = await br.one_drive_for_business_restore_sessions.post(session_body([a]))
    with pytest.raises(ODataError) as info:
        await sessions(br, created.id).patch(delta_body([{"restorePoint": {"id": a}, "destinationType": "new"}]))
    assert odata_error(info.value)[:2] == (400, "DuplicateArtifactInList")


async def test_patch_with_an_unknown_restore_point_is_refused(br, samples):
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    with pytest.raises(ODataError) as info:
        await sessions(br, created.id).patch(
            delta_body([{"restorePoint": {"id": str(uuid.uuid4())}, "destinationType": "new"}])
        )
    assert odata_error(info.value)[:2] == (400, "InvalidRestorePoint")


async def test_patch_delete_and_activate_outside_draft_are_refused_with_403(br, samples):
    a, b = point_ids(samples, 2)
    created = await br.one_drive_for_business_restore_sessions.post(session_body([a]))
    generic = br.restore_sessions.by_restore_session_base_id(created.id)
    await generic.activate.post()
    calls = [
        (sessions(br, created.id).patch(delta_body([{"restorePoint": {"id": b}, "destinationType": "new"}])),
         "patched"),
        (generic.delete(), "deleted"),
        (generic.activate.post(), "activated"),
    ]
    for call, verb in calls:
        with pytest.raises(ODataError) as info:
            await call
        status, code, message = odata_error(info.value)
        assert (status, code) == (403, "RestoreSessionActionNotAllowed")
        assert message == f"Restore session can only be {verb} in Draft state"


async def test_unknown_session_is_404_restore_session_not_found(br):
    missing = str(uuid.uuid4())
    for call in (
        br.restore_sessions.by_restore_session_base_id(missing).get(),
        sessions(br, missing).get(),
        br.restore_sessions.by_restore_session_base_id(missing).delete(),
        br.restore_sessions.by_restore_session_base_id(missing).activate.post(),
        sessions(br, missing).drive_restore_artifacts.get(),
    ):
        with pytest.raises(ODataError) as info:
            await call
        assert odata_error(info.value)[:2] == (404, "RestoreSessionNotFound")


async def test_malformed_session_id_is_400_invalid_restore_session_id(br):
    for call in (
        br.restore_sessions.by_restore_session_base_id("not-a-guid").get(),
        sessions(br, "12345").patch(delta_body([{"@removed": {}, "id": "x"}])),
        br.restore_sessions.by_restore_session_base_id("nope").activate.post(),
    ):
        with pytest.raises(ODataError) as info:
            await call
        assert odata_error(info.value)[:2] == (400, "InvalidRestoreSessionId")


async def test_deleting_a_draft_session_returns_204_and_it_is_gone(br, http, samples):
    created = await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 1)))
    resp = await http.delete(f"{R}/restoreSessions/{created.id}")
    assert resp.status_code == 204
    with pytest.raises(ODataError) as info:
        await br.restore_sessions.by_restore_session_base_id(created.id).get()
    assert odata_error(info.value)[0] == 404


async def test_both_session_collections_list_sessions_with_paging(br, http, emu):
    emu.admin.seed_sessions(7)
    first = (await http.get(f"{R}/restoreSessions", params={"$top": "3"})).json()
    assert len(first["value"]) == 3
    assert first["value"][0]["@odata.type"] == "#microsoft.graph.oneDriveForBusinessRestoreSession"
    seen = [s["id"] for s in first["value"]]
    link = first["@odata.nextLink"]
    assert link.startswith(emu.base_url) and "$skiptoken=" in link
    while link:
        page = (await http.get(link)).json()
        seen += [s["id"] for s in page["value"]]
        link = page.get("@odata.nextLink")
    assert len(seen) == len(set(seen)) == 7
    listed = await br.one_drive_for_business_restore_sessions.get()
    assert {s.id for s in listed.value} == set(seen)
    generic = await br.restore_sessions.get()
    assert all(isinstance(s, OneDriveForBusinessRestoreSession) for s in generic.value)


async def test_drive_restore_artifacts_are_paged_with_next_link(br, http, samples):
    created = await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 7)))
    url = f"{ODB}/{created.id}/driveRestoreArtifacts"
    first = (await http.get(url, params={"$top": "5"})).json()
    assert len(first["value"]) == 5
    assert first["value"][0]["restorePoint"]["id"]
    second = (await http.get(first["@odata.nextLink"])).json()
    assert len(second["value"]) == 2 and "@odata.nextLink" not in second


async def test_beta_serves_the_same_endpoints(emu, samples):
    import httpx

    from emulators.graph import make_token

    async with httpx.AsyncClient(base_url=emu.beta_url, headers={"Authorization": f"Bearer {make_token()}"}) as c:
        body = {"driveRestoreArtifacts": [{"restorePoint": {"id": point_ids(samples, 1)[0]}, "destinationType": "new"}]}
        resp = await c.post(ODB, json=body)
        assert resp.status_code == 201
        assert (await c.get(f"{R}/restoreSessions/{resp.json()['id']}")).json()["status"] == "draft"


async def test_every_answer_carries_request_id_and_echoes_client_request_id(http):
    resp = await http.get(f"{R}/restoreSessions", headers={"client-request-id": "abc-123"})
    assert resp.headers["client-request-id"] == "abc-123"
    assert uuid.UUID(resp.headers["request-id"])
    missing = await http.get(f"{R}/restoreSessions/{uuid.uuid4()}", headers={"client-request-id": "xyz"})
    inner = missing.json()["error"]["innerError"]
    assert inner["client-request-id"] == "xyz"
    assert inner["request-id"] == missing.headers["request-id"]
    assert inner["date"].endswith("Z")


async def test_malformed_json_is_400_bad_request(http):
    resp = await http.post(ODB, content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadRequest"


async def test_unknown_segment_is_400_bad_request(http):
    resp = await http.get(f"{R}/nothingHere")
    assert resp.status_code == 400
    assert "Resource not found for the segment" in resp.json()["error"]["message"]
