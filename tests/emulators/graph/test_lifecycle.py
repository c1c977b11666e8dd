"""Session and artifact lifecycle on the emulated clock, the active-session cap and per-artifact failures."""

from __future__ import annotations

import asyncio
import time

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.artifact_restore_status import ArtifactRestoreStatus as A
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_session_status import RestoreSessionStatus as S

from .helpers import IN_PLACE, odata_error, point_ids, session_body, sessions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def _create_and_activate(br, ids, destination=None):
    body = session_body(ids) if destination is None else session_body(ids, destination)
    created = await br.one_drive_for_business_restore_sessions.post(body)
    activated = await br.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    return created.id, activated


async def _status(br, sid, prefer_unknown=False):
    config = None
    if prefer_unknown:
        config = RequestConfiguration()
        config.headers.add("Prefer", "include-unknown-enum-members")
    return await br.restore_sessions.by_restore_session_base_id(sid).get(request_configuration=config)


async def _artifacts(br, sid):
    return (await sessions(br, sid).drive_restore_artifacts.get()).value


async def test_session_walks_draft_activating_active_completed_as_the_clock_moves(br, emu, samples):
    ids = point_ids(samples, 2)
    created = await br.one_drive_for_business_restore_sessions.post(session_body(ids))
    assert {a.status for a in await _artifacts(br, created.id)} == {A.Added}

    activated = await br.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    assert activated.status == S.Activating
    assert activated.restore_session_artifact_count.in_progress == 2
    assert {a.status for a in await _artifacts(br, created.id)} == {A.Scheduling}

    emu.admin.advance(30)  # activating 30 s -> active, artifacts scheduled
    assert (await _status(br, created.id)).status == S.Active
    assert {a.status for a in await _artifacts(br, created.id)} == {A.Scheduled}

    emu.admin.advance(30)  # scheduled 30 s -> in progress
    arts = await _artifacts(br, created.id)
    assert {a.status for a in arts} == {A.InProgress}
    assert all(a.start_date_time is not None and a.completion_date_time is None for a in arts)
    session = await _status(br, created.id)
    assert session.status == S.Active and session.completed_date_time is None

    emu.admin.advance(180)  # in progress 180 s -> succeeded
    arts = await _artifacts(br, created.id)
    assert {a.status for a in arts} == {A.Succeeded}
    assert all(a.completion_date_time is not None and a.error is None for a in arts)
    session = await _status(br, created.id)
    assert session.status == S.Completed
    assert session.completed_date_time is not None
    count = session.restore_session_artifact_count
    assert (count.total, count.completed, count.in_progress, count.failed) == (2, 2, 0, 0)


async def test_default_durations_complete_a_session_within_5_emulated_minutes(br, emu, samples):
    sid, _ = await _create_and_activate(br, point_ids(samples, 3))
    emu.admin.advance(minutes=5)
    assert (await _status(br, sid)).status == S.Completed


async def test_clock_scale_runs_the_lifecycle_in_real_time(br, emu, samples):
    emu.admin.set_clock_scale(2000.0)  # 1 real second = 33 emulated minutes
    sid, _ = await _create_and_activate(br, point_ids(samples, 1))
    deadline = time.monotonic() + 5
    while (await _status(br, sid)).status != S.Completed:
        assert time.monotonic() < deadline, "session did not complete under a fast clock"
        await asyncio.sleep(0.05)


async def test_new_destination_gets_r_suffixed_site_urls_r0_then_r1(br, emu, samples):
    (point,) = point_ids(samples, 1)
    drive = samples["drives"][0]
    for n in (0, 1):
        sid, _ = await _create_and_activate(br, [point])
        emu.admin.advance(minutes=5)
        (art,) = await _artifacts(br, sid)
        assert art.status == A.Succeeded
        token = drive["webUrl"].rsplit("/personal/", 1)[1]
        assert art.restored_site_web_url.endswith(f"/sites/{token}R{n}")
        assert art.restored_site_name == f"{token}R{n}"
        assert art.restored_site_id


async def test_in_place_restore_reports_the_original_site(br, emu, samples):
    (point,) = point_ids(samples, 1)
    sid, _ = await _create_and_activate(br, [point], IN_PLACE)
    emu.admin.advance(minutes=5)
    (art,) = await _artifacts(br, sid)
    assert art.restored_site_web_url == samples["drives"][0]["webUrl"]


async def test_activating_beyond_the_cap_is_refused_with_500_until_a_session_completes(br, emu, samples):
    emu.admin.configure(active_cap=3)
    ids = point_ids(samples, 4)
    for point in ids[:3]:
        await _create_and_activate(br, [point])
    last = await br.one_drive_for_business_restore_sessions.post(session_body(ids[3:]))
    with pytest.raises(ODataError) as info:
        await br.restore_sessions.by_restore_session_base_id(last.id).activate.post()
    status, code, message = odata_error(info.value)
    assert (status, code) == (500, "TooManyActiveRestoreSessions")
    assert "more than 3 sessions" in message
    assert (await _status(br, last.id)).status == S.Draft
    emu.admin.advance(minutes=5)
    again = await br.restore_sessions.by_restore_session_base_id(last.id).activate.post()
    assert again.status == S.Activating
    state = emu.admin.state()
    assert state["maxActiveObserved"] == 3
    assert state["activeCount"] == 1
    assert state["rejectedActivations"] == 1


async def test_default_cap_is_25_active_sessions(br, emu):
    emu.admin.reset(drives=60, unprotected_fraction=0.0, seed=7, clock_scale=0.0)
    ids = point_ids(emu.admin.samples(26), 26)
    for point in ids[:25]:
        await _create_and_activate(br, [point])
    last = await br.one_drive_for_business_restore_sessions.post(session_body(ids[25:]))
    with pytest.raises(ODataError) as info:
        await br.restore_sessions.by_restore_session_base_id(last.id).activate.post()
    assert odata_error(info.value)[:2] == (500, "TooManyActiveRestoreSessions")
    assert emu.admin.state(sessions=False)["maxActiveObserved"] == 25


async def test_same_drive_restored_by_two_active_sessions_fails_with_duplicate_artifact_restore_request(
    br, emu, samples
):
    point = samples["restorePoints"][0]["id"]
    other_point_same_drive = samples["fastRestorePoints"][0]["id"]
    first, _ = await _create_and_activate(br, [point])
    second, _ = await _create_and_activate(br, [other_point_same_drive])
    emu.admin.advance(minutes=5)
    (a1,) = await _artifacts(br, first)
    (a2,) = await _artifacts(br, second)
    assert a1.status == A.Succeeded
    assert a2.status == A.Failed
    assert a2.error.code == "DuplicateArtifactRestoreRequest"
    # Once the first restore is over, the drive can be restored again.
    third, _ = await _create_and_activate(br, [other_point_same_drive])
    emu.admin.advance(minutes=5)
    assert (await _artifacts(br, third))[0].status == A.Succeeded


async def test_all_artifacts_failed_is_unknown_future_value_unless_prefer_header_is_sent(br, emu, samples):
    drive = samples["drives"][0]
    emu.admin.set_faults(artifact_failure_targets={drive["id"]: "ArtifactCannotBeRestored"})
    sid, _ = await _create_and_activate(br, point_ids(samples, 1))
    emu.admin.advance(minutes=5)
    assert (await _status(br, sid)).status == S.UnknownFutureValue
    with_header = await _status(br, sid, prefer_unknown=True)
    assert with_header.status == S.Failed
    assert with_header.completed_date_time is not None
    (art,) = await _artifacts(br, sid)
    assert (art.status, art.error.code) == (A.Failed, "ArtifactCannotBeRestored")


async def test_some_failed_artifacts_give_completed_with_error(br, emu, samples):
    emu.admin.set_faults(artifact_failure_targets={samples["drives"][1]["id"]: "ArtifactNotFound"})
    sid, _ = await _create_and_activate(br, point_ids(samples, 3))
    emu.admin.advance(minutes=5)
    session = await _status(br, sid)
    assert session.status == S.CompletedWithError
    count = session.restore_session_artifact_count
    assert (count.completed, count.failed, count.in_progress) == (2, 1, 0)
    codes = {a.error.code for a in await _artifacts(br, sid) if a.error}
    assert codes == {"ArtifactNotFound"}


async def test_restore_point_expiring_after_create_fails_the_artifact_with_invalid_restore_time(br, emu, samples):
    a, b = point_ids(samples, 2)
    created = await br.one_drive_for_business_restore_sessions.post(session_body([a, b]))
    emu.admin.expire_restore_points([a])
    await br.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    emu.admin.advance(minutes=5)
    by_point = {x.restore_point.id: x for x in await _artifacts(br, created.id)}
    assert by_point[a].error.code == "InvalidRestoreTime"
    assert by_point[b].status == A.Succeeded


async def test_artifact_failure_rate_of_one_fails_every_artifact(br, emu, samples):
    emu.admin.set_faults(artifact_failures={"ArtifactNotFound": 1.0})
    sid, _ = await _create_and_activate(br, point_ids(samples, 4))
    emu.admin.advance(minutes=5)
    arts = await _artifacts(br, sid)
    assert {(a.status, a.error.code) for a in arts} == {(A.Failed, "ArtifactNotFound")}


async def test_activating_an_empty_session_is_refused(br):
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    with pytest.raises(ODataError) as info:
        await br.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    assert odata_error(info.value)[:2] == (400, "InvalidArtifactRequest")


async def test_state_dump_reports_statuses_and_counts(br, emu, samples):
    sid, _ = await _create_and_activate(br, point_ids(samples, 1))
    await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 2)[1:]))
    state = emu.admin.state()
    assert state["statusCounts"] == {"activating": 1, "draft": 1}
    assert state["activeCount"] == 1
    assert any(s["id"] == sid and s["status"] == "activating" for s in state["sessions"])
