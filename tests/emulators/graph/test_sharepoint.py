"""SharePoint: site protection units, sharePointRestoreSessions with siteRestoreArtifacts, bulk additions by site
URL, and sharePointBrowseSessions, driven through msgraph-sdk (raw HTTP where the SDK can't say it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.artifact_restore_status import ArtifactRestoreStatus as A
from msgraph.generated.models.browse_query_response_item_type import BrowseQueryResponseItemType as T
from msgraph.generated.models.browse_session_status import BrowseSessionStatus
from msgraph.generated.models.destination_type import DestinationType
from msgraph.generated.models.drive_protection_unit import DriveProtectionUnit
from msgraph.generated.models.mailbox_protection_unit import MailboxProtectionUnit
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_artifacts_bulk_request_status import RestoreArtifactsBulkRequestStatus as B
from msgraph.generated.models.restore_job_type import RestoreJobType
from msgraph.generated.models.restore_point_preference import RestorePointPreference
from msgraph.generated.models.restore_session_status import RestoreSessionStatus as S
from msgraph.generated.models.share_point_browse_session import SharePointBrowseSession
from msgraph.generated.models.share_point_restore_session import SharePointRestoreSession
from msgraph.generated.models.site_protection_unit import SiteProtectionUnit
from msgraph.generated.models.site_restore_artifact import SiteRestoreArtifact
from msgraph.generated.models.site_restore_artifacts_bulk_addition_request import (
    SiteRestoreArtifactsBulkAdditionRequest,
)
from msgraph.generated.models.time_period import TimePeriod
from msgraph.generated.solutions.backup_restore.browse_sessions.item.browse.browse_post_request_body import (
    BrowsePostRequestBody,
)
from msgraph.generated.solutions.backup_restore.site_protection_units.site_protection_units_request_builder import (
    SiteProtectionUnitsRequestBuilder,
)

from .conftest import BASELINE, ODB, SPO, R
from .helpers import (
    IN_PLACE,
    NEW,
    activate,
    delta_body,
    odata_error,
    point_ids,
    sessions,
    site_session_body,
    site_sessions,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime.fromtimestamp(BASELINE["start_time"], UTC)


def _site_points(samples, n: int) -> list[str]:
    return point_ids(samples, n, "siteRestorePoints")


async def _run(br, emu, body) -> str:
    created = await br.share_point_restore_sessions.post(body)
    await activate(br, created.id)
    emu.admin.advance(minutes=5)
    return created.id


# ---- protection units and policies -------------------------------------------------------------------------


async def test_site_protection_units_are_the_users_team_sites(br, samples):
    listed = await br.site_protection_units.get()
    assert len(listed.value) == BASELINE["sites"]
    assert all(isinstance(u, SiteProtectionUnit) for u in listed.value)
    third = next(u for u in listed.value if u.site_name == "User 00003 Team")
    assert third.site_web_url == "https://contoso.sharepoint.com/sites/user00003-team"
    host, collection, web = third.site_id.split(",")
    assert host == "contoso.sharepoint.com" and uuid.UUID(collection) and uuid.UUID(web)
    got = await br.site_protection_units.by_site_protection_unit_id(third.id).get()
    assert (got.site_id, got.policy_id) == (third.site_id, third.policy_id)
    by_url = await br.site_protection_units.get(RequestConfiguration(
        query_parameters=SiteProtectionUnitsRequestBuilder.SiteProtectionUnitsRequestBuilderGetQueryParameters(
            filter=f"siteWebUrl eq '{third.site_web_url}'")))
    assert [u.id for u in by_url.value] == [third.id]


async def test_protection_units_lists_every_workload_with_its_type(br, http, samples):
    first = (await http.get(f"{R}/protectionUnits", params={"$top": "1000"})).json()["value"]
    kinds = {u["@odata.type"] for u in first}
    assert kinds == {"#microsoft.graph.driveProtectionUnit", "#microsoft.graph.siteProtectionUnit",
                     "#microsoft.graph.mailboxProtectionUnit"}
    assert len(first) == BASELINE["drives"] + BASELINE["sites"] + BASELINE["mailboxes"]
    site = samples["sites"][0]
    unit = await br.protection_units.by_protection_unit_base_id(site["id"]).get()
    assert isinstance(unit, SiteProtectionUnit) and unit.site_web_url == site["siteWebUrl"]
    cast = (await http.get(f"{R}/protectionUnits/microsoft.graph.siteProtectionUnit")).json()["value"]
    assert {u["@odata.type"] for u in cast} == {"#microsoft.graph.siteProtectionUnit"}
    # a typed collection holds its own workload only
    wrong = await http.get(f"{R}/siteProtectionUnits/{samples['drives'][0]['id']}")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (404, "ProtectionUnitNotFound")
    sdk_all = await br.protection_units.get()
    assert {type(u) for u in sdk_all.value} == {DriveProtectionUnit, SiteProtectionUnit, MailboxProtectionUnit}


async def test_sharepoint_policy_lists_its_site_units(br, http):
    (policy,) = (await br.share_point_protection_policies.get()).value
    units = (await http.get(f"{R}/sharePointProtectionPolicies/{policy.id}/siteProtectionUnits")).json()["value"]
    assert len(units) == BASELINE["sites"] and all(u["policyId"] == policy.id for u in units)
    every = (await http.get(f"{R}/protectionPolicies")).json()["value"]
    assert {p["@odata.type"] for p in every} == {"#microsoft.graph.oneDriveForBusinessProtectionPolicy",
                                                 "#microsoft.graph.sharePointProtectionPolicy",
                                                 "#microsoft.graph.exchangeProtectionPolicy"}
    other = await http.get(f"{R}/oneDriveForBusinessProtectionPolicies/{policy.id}")
    assert (other.status_code, other.json()["error"]["code"]) == (404, "PolicyNotFound")


# ---- sessions ---------------------------------------------------------------------------------------------


async def test_create_a_sharepoint_session_with_two_sites_and_read_its_artifacts(br, samples):
    ids = _site_points(samples, 2)
    created = await br.share_point_restore_sessions.post(site_session_body(ids))
    assert isinstance(created, SharePointRestoreSession)
    assert (created.status, created.restore_job_type) == (S.Draft, RestoreJobType.Standard)
    assert created.restore_session_artifact_count.total == 2
    item = site_sessions(br, created.id)
    arts = (await item.site_restore_artifacts.get()).value
    assert all(isinstance(a, SiteRestoreArtifact) for a in arts)
    assert sorted(a.restore_point.id for a in arts) == sorted(ids)
    one = await item.site_restore_artifacts.by_site_restore_artifact_id(arts[0].id).get()
    assert (one.id, one.status, one.destination_type) == (arts[0].id, A.Added, NEW)
    generic = await br.restore_sessions.by_restore_session_base_id(created.id).get()
    assert isinstance(generic, SharePointRestoreSession)
    listed = await br.share_point_restore_sessions.get()
    assert [s.id for s in listed.value] == [created.id]


async def test_patch_delta_adds_and_removes_site_artifacts(br, samples):
    a, b, c = _site_points(samples, 3)
    created = await br.share_point_restore_sessions.post(site_session_body([a, b]))
    item = site_sessions(br, created.id)
    remove_id = next(x.id for x in (await item.site_restore_artifacts.get()).value if x.restore_point.id == a)
    result = await item.patch(SharePointRestoreSession(additional_data={"siteRestoreArtifacts@delta": [
        {"restorePoint": {"id": c}, "destinationType": "new"},
        {"@removed": {"reason": "changed"}, "id": remove_id},
    ]}))
    assert {v.get("status") for v in result.additional_data["value"]} >= {"added"}
    remaining = {x.restore_point.id for x in (await item.site_restore_artifacts.get()).value}
    assert remaining == {b, c}


async def test_a_site_restored_to_a_new_url_gets_r_suffixed_urls_r0_then_r1(br, emu, samples):
    (point,) = _site_points(samples, 1)
    site = samples["sites"][0]
    for n in (0, 1):
        sid = await _run(br, emu, site_session_body([point]))
        session = await br.restore_sessions.by_restore_session_base_id(sid).get()
        assert session.status == S.Completed
        (art,) = (await site_sessions(br, sid).site_restore_artifacts.get()).value
        assert art.status == A.Succeeded
        assert art.restored_site_web_url == f"{site['siteWebUrl']}R{n}"
        assert art.restored_site_name == f"user00000-teamR{n}"
        assert art.restored_site_id and art.restored_site_id != site["siteId"]


async def test_a_site_restored_in_place_reports_the_original_site(br, emu, samples):
    (point,) = _site_points(samples, 1)
    sid = await _run(br, emu, site_session_body([point], IN_PLACE))
    (art,) = (await site_sessions(br, sid).site_restore_artifacts.get()).value
    site = samples["sites"][0]
    assert (art.restored_site_id, art.restored_site_name, art.restored_site_web_url) == (
        site["siteId"], site["siteName"], site["siteWebUrl"])


async def test_site_artifact_failures_follow_the_fault_settings(br, emu, samples):
    emu.admin.set_faults(artifact_failure_targets={samples["sites"][1]["id"]: "ArtifactCannotBeRestored"})
    sid = await _run(br, emu, site_session_body(_site_points(samples, 2)))
    assert (await br.restore_sessions.by_restore_session_base_id(sid).get()).status == S.CompletedWithError
    failed = [a for a in (await site_sessions(br, sid).site_restore_artifacts.get()).value if a.error]
    assert [(a.status, a.error.code, a.restored_site_web_url) for a in failed] == [
        (A.Failed, "ArtifactCannotBeRestored", None)]


async def test_sharepoint_session_rules_match_onedrive(br, emu, samples):
    emu.admin.reset(**{**BASELINE, "sites": 60, "unprotected_fraction": 0.0})
    many = point_ids(emu.admin.samples(60), 51, "siteRestorePoints")
    cases = [
        (site_session_body(many), 413, "RestoreArtifactsLimitBreached"),
        (SharePointRestoreSession(site_restore_artifacts=[]), 400, "InvalidArtifactRequest"),
        (SharePointRestoreSession(site_restore_artifacts=[
            *site_session_body([many[0]], NEW).site_restore_artifacts,
            *site_session_body([many[1]], IN_PLACE).site_restore_artifacts]), 400, "DifferentRestoreDestinationType"),
        (site_session_body([many[0], many[0]]), 400, "DuplicateArtifactInList"),
        (site_session_body([str(uuid.uuid4())]), 400, "InvalidRestorePoint"),
        (site_session_body([many[0]], DestinationType.UnknownFutureValue), 400, "InvalidPathType"),
    ]
    for body, status, code in cases:
        with pytest.raises(ODataError) as info:
            await br.share_point_restore_sessions.post(body)
        assert odata_error(info.value)[:2] == (status, code)


async def test_an_expired_site_restore_point_is_refused(br, samples):
    expired = samples["expiredSiteRestorePoints"][0]
    assert expired["expired"] is True
    with pytest.raises(ODataError) as info:
        await br.share_point_restore_sessions.post(site_session_body([expired["id"]]))
    assert odata_error(info.value)[:2] == (400, "InvalidRestorePoint")


async def test_drive_and_mailbox_restore_points_are_refused_in_a_sharepoint_session(br, samples):
    for other in (samples["restorePoints"][0]["id"], samples["mailboxRestorePoints"][0]["id"]):
        with pytest.raises(ODataError) as info:
            await br.share_point_restore_sessions.post(site_session_body([other]))
        status, code, message = odata_error(info.value)
        assert (status, code) == (400, "InvalidRestorePoint")
        assert "SharePoint" in message
    # and the other way round, in a PATCH of a OneDrive session
    empty = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    with pytest.raises(ODataError) as info:
        await sessions(br, empty.id).patch(
            delta_body([{"restorePoint": {"id": samples["siteRestorePoints"][0]["id"]}, "destinationType": "new"}]))
    assert odata_error(info.value)[:2] == (400, "InvalidRestorePoint")


async def test_another_workloads_artifacts_are_not_a_property_of_a_sharepoint_session(http, samples):
    body = {"driveRestoreArtifacts": [{"restorePoint": {"id": samples["restorePoints"][0]["id"]},
                                       "destinationType": "new"}]}
    resp = await http.post(SPO, json=body)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "BadRequest")
    assert "does not exist on type 'microsoft.graph.sharePointRestoreSession'" in resp.json()["error"]["message"]


async def test_typed_collections_hold_their_own_workload_only(br, http, samples):
    site = await br.share_point_restore_sessions.post(site_session_body(_site_points(samples, 1)))
    for call in (http.get(f"{ODB}/{site.id}"), http.delete(f"{ODB}/{site.id}"),
                 http.get(f"{ODB}/{site.id}/driveRestoreArtifacts")):
        resp = await call
        assert (resp.status_code, resp.json()["error"]["code"]) == (404, "RestoreSessionNotFound")
    assert (await http.delete(f"{SPO}/{site.id}")).status_code == 204
    with pytest.raises(ODataError) as info:
        await site_sessions(br, site.id).get()
    assert odata_error(info.value)[:2] == (404, "RestoreSessionNotFound")


async def test_patch_delete_and_activate_outside_draft_are_refused(br, samples):
    a, b = _site_points(samples, 2)
    created = await br.share_point_restore_sessions.post(site_session_body([a]))
    await activate(br, created.id)
    calls = [
        (site_sessions(br, created.id).patch(SharePointRestoreSession(additional_data={
            "siteRestoreArtifacts@delta": [{"restorePoint": {"id": b}, "destinationType": "new"}]})), "patched"),
        (site_sessions(br, created.id).delete(), "deleted"),
        (activate(br, created.id), "activated"),
    ]
    for call, verb in calls:
        with pytest.raises(ODataError) as info:
            await call
        assert odata_error(info.value) == (403, "RestoreSessionActionNotAllowed",
                                           f"Restore session can only be {verb} in Draft state")


# ---- bulk ---------------------------------------------------------------------------------------------------


def _bulk(urls=None, site_ids=None) -> SiteRestoreArtifactsBulkAdditionRequest:
    return SiteRestoreArtifactsBulkAdditionRequest(
        display_name="sites", site_web_urls=urls, site_ids=site_ids, destination_type=NEW,
        protection_time_period=TimePeriod(start_date_time=NOW - timedelta(days=7), end_date_time=NOW),
        restore_point_preference=RestorePointPreference.Latest)


async def test_bulk_by_site_urls_resolves_at_activation(br, emu, samples):
    session = await br.share_point_restore_sessions.post(SharePointRestoreSession())
    requests = site_sessions(br, session.id).site_restore_artifacts_bulk_addition_requests
    urls = [s["siteWebUrl"] for s in samples["sites"][:3]] + ["https://contoso.sharepoint.com/sites/nobody"]
    created = await requests.post(_bulk(urls))
    assert created.status == B.Active and created.site_web_urls == urls
    activated = await activate(br, session.id)
    assert (activated.restore_job_type, activated.restore_session_artifact_count.total) == (RestoreJobType.Bulk, 3)
    got = await requests.by_site_restore_artifacts_bulk_addition_request_id(created.id).get()
    assert got.status == B.CompletedWithErrors and "sites/nobody" in got.error.message
    emu.admin.advance(minutes=5)
    arts = (await site_sessions(br, session.id).site_restore_artifacts.get()).value
    assert {a.status for a in arts} == {A.Succeeded}
    assert {a.restored_site_web_url for a in arts} == {f"{u}R0" for u in urls[:3]}
    await requests.by_site_restore_artifacts_bulk_addition_request_id(created.id).delete()
    assert (await requests.get()).value == []


async def test_bulk_site_ids_are_kept_but_not_implemented_as_graph_documents(br, samples):
    session = await br.share_point_restore_sessions.post(SharePointRestoreSession())
    requests = site_sessions(br, session.id).site_restore_artifacts_bulk_addition_requests
    site_id = samples["sites"][0]["siteId"]
    created = await requests.post(_bulk([samples["sites"][1]["siteWebUrl"]], [site_id]))
    assert created.site_ids == [site_id]
    activated = await activate(br, session.id)
    assert activated.restore_session_artifact_count.total == 1  # the URL only
    got = await requests.by_site_restore_artifacts_bulk_addition_request_id(created.id).get()
    assert got.status == B.CompletedWithErrors
    assert site_id in got.error.message and "siteIds" in got.error.message
    assert "not implemented yet" in got.error.message


async def test_bulk_with_a_malformed_site_url_is_refused(br):
    session = await br.share_point_restore_sessions.post(SharePointRestoreSession())
    with pytest.raises(ODataError) as info:
        await site_sessions(br, session.id).site_restore_artifacts_bulk_addition_requests.post(_bulk(["not a url"]))
    assert odata_error(info.value)[:2] == (400, "BulkRestoreInvalidCreateRequestSiteUrl")


async def test_bulk_request_of_a_sharepoint_session_is_deleted_only_when_completed(br, samples):
    session = await br.share_point_restore_sessions.post(SharePointRestoreSession())
    requests = site_sessions(br, session.id).site_restore_artifacts_bulk_addition_requests
    created = await requests.post(_bulk([samples["sites"][0]["siteWebUrl"]]))
    item = requests.by_site_restore_artifacts_bulk_addition_request_id(created.id)
    with pytest.raises(ODataError) as info:
        await item.delete()
    assert odata_error(info.value)[:2] == (403, "InvalidStateForBulkRequestDeletion")
    with pytest.raises(ODataError) as info:
        await site_sessions(br, session.id).patch(SharePointRestoreSession(additional_data={
            "siteRestoreArtifacts@delta": [{"restorePoint": {"id": samples["siteRestorePoints"][1]["id"]},
                                            "destinationType": "new"}]}))
    assert odata_error(info.value)[:2] == (400, "InvalidPatchRequest")


# ---- browse -------------------------------------------------------------------------------------------------


async def _site_browse_session(br, emu, point_id: str) -> SharePointBrowseSession:
    created = await br.share_point_browse_sessions.post(SharePointBrowseSession(restore_point_id=point_id))
    emu.admin.advance(10)
    return created


async def test_sharepoint_browse_session_names_the_site_and_goes_creating_then_created(br, emu, samples):
    point, site = samples["siteFastRestorePoints"][0], samples["sites"][0]
    created = await br.share_point_browse_sessions.post(SharePointBrowseSession(restore_point_id=point["id"]))
    assert isinstance(created, SharePointBrowseSession)
    assert (created.status, created.site_id) == (BrowseSessionStatus.Creating, site["siteId"])
    assert created.expiration_date_time - created.created_date_time == timedelta(days=3)
    emu.admin.advance(10)
    got = await br.share_point_browse_sessions.by_share_point_browse_session_id(created.id).get()
    assert got.status == BrowseSessionStatus.Created
    assert [b.id for b in (await br.share_point_browse_sessions.get()).value] == [created.id]
    assert (await br.one_drive_for_business_browse_sessions.get()).value == []
    assert [b.id for b in (await br.browse_sessions.get()).value] == [created.id]


async def test_browse_a_site_from_the_site_to_its_libraries_and_a_large_folder(br, emu, samples):
    site = samples["sites"][0]
    bs = await _site_browse_session(br, emu, samples["siteFastRestorePoints"][0]["id"])
    browse = br.browse_sessions.by_browse_session_base_id(bs.id)
    (top,) = (await browse.browse.post(BrowsePostRequestBody())).value
    assert (top.type, top.name, top.web_url) == (T.Site, site["siteName"], site["siteWebUrl"])
    assert top.item_key == ",".join(site["siteId"].split(",")[1:])  # the site collection and web ids
    libraries = (await browse.browse.post(BrowsePostRequestBody(browse_location_item_key=top.item_key))).value
    assert [(i.type, i.name) for i in libraries] == [(T.DocumentLibrary, "Shared Documents"),
                                                     (T.DocumentLibrary, "Site Assets")]
    assert all(len(i.item_key.split(",")) == 3 for i in libraries)
    inside = (await browse.browse.post(BrowsePostRequestBody(browse_location_item_key=libraries[0].item_key))).value
    large = next(i for i in inside if i.name == "Large folder")
    first = await browse.browse.post(BrowsePostRequestBody(browse_location_item_key=large.item_key))
    names = [i.name for i in first.value]
    link = first.odata_next_link or first.additional_data.get("@odata.nextLink")
    while link:
        page = await browse.browse_with_next_fetch_token(link.split("$skiptoken=", 1)[1]).get()
        names += [i.name for i in page.value]
        link = page.odata_next_link or page.additional_data.get("@odata.nextLink")
    assert len(names) == len(set(names)) == large.items_count


async def test_sharepoint_browse_is_served_on_its_own_path_too(http, br, emu, samples):
    bs = await _site_browse_session(br, emu, samples["siteFastRestorePoints"][1]["id"])
    top = (await http.post(f"{R}/sharePointBrowseSessions/{bs.id}/browse", json={})).json()
    assert top["@odata.count"] == 1 and top["value"][0]["type"] == "site"
    # a SharePoint browse session is not one of OneDrive's
    for call in (http.get(f"{R}/oneDriveForBusinessBrowseSessions/{bs.id}"),
                 http.post(f"{R}/oneDriveForBusinessBrowseSessions/{bs.id}/browse", json={})):
        resp = await call
        assert (resp.status_code, resp.json()["error"]["code"]) == (404, "BrowseSessionNotFound")


async def test_sharepoint_browse_needs_a_fast_site_restore_point(br, samples):
    for point, reason in ((samples["siteRestorePoints"][0]["id"], "fastRestore"),
                          (samples["fastRestorePoints"][0]["id"], "SharePoint")):
        with pytest.raises(ODataError) as info:
            await br.share_point_browse_sessions.post(SharePointBrowseSession(restore_point_id=point))
        status, code, message = odata_error(info.value)
        assert (status, code) == (400, "InvalidRestorePoint") and reason in message


async def test_an_expired_sharepoint_browse_session_is_gone(br, emu, samples):
    bs = await _site_browse_session(br, emu, samples["siteFastRestorePoints"][0]["id"])
    emu.admin.advance(days=3)
    with pytest.raises(ODataError) as info:
        await br.share_point_browse_sessions.by_share_point_browse_session_id(bs.id).get()
    assert odata_error(info.value)[:2] == (404, "BrowseSessionNotFound")
