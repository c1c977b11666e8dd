"""Restore points, search, protection units and policies; browse sessions and browsing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.browse_query_order import BrowseQueryOrder
from msgraph.generated.models.browse_query_response_item_type import BrowseQueryResponseItemType as T
from msgraph.generated.models.browse_session_status import BrowseSessionStatus
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_browse_session import OneDriveForBusinessBrowseSession
from msgraph.generated.models.restore_point_preference import RestorePointPreference
from msgraph.generated.models.restore_point_tags import RestorePointTags
from msgraph.generated.models.time_period import TimePeriod
from msgraph.generated.solutions.backup_restore.browse_sessions.item.browse.browse_post_request_body import (
    BrowsePostRequestBody,
)
from msgraph.generated.solutions.backup_restore.restore_points.restore_points_request_builder import (
    RestorePointsRequestBuilder,
)
from msgraph.generated.solutions.backup_restore.restore_points.search.search_post_request_body import (
    SearchPostRequestBody,
)

from .conftest import BASELINE, R
from .helpers import odata_error

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime.fromtimestamp(BASELINE["start_time"], UTC)


def _search(ids, start=None, end=None, preference=RestorePointPreference.Latest, tags=None):
    return SearchPostRequestBody(
        protection_unit_ids=ids,
        protection_time_period=TimePeriod(start_date_time=start, end_date_time=end),
        restore_point_preference=preference,
        tags=tags,
    )


async def test_search_returns_the_latest_point_per_unit(br, samples):
    ids = [d["id"] for d in samples["drives"][:3]]
    result = await br.restore_points.search.post(_search(ids, NOW - timedelta(days=30), NOW))
    assert result.search_response_id
    assert [r.restore_point.protection_unit.id for r in result.search_results] == ids
    for r in result.search_results:
        assert NOW - timedelta(minutes=10) < r.restore_point.protection_date_time <= NOW
        assert r.restore_point.expiration_date_time - r.restore_point.protection_date_time == timedelta(days=365)
    assert result.no_result_protection_unit_ids == []


async def test_search_oldest_within_the_period(br, samples):
    (unit,) = [d["id"] for d in samples["drives"][:1]]
    start, end = NOW - timedelta(days=2), NOW - timedelta(days=1)
    result = await br.restore_points.search.post(_search([unit], start, end, RestorePointPreference.Oldest))
    (hit,) = result.search_results
    assert start <= hit.restore_point.protection_date_time < start + timedelta(minutes=10)


async def test_search_older_than_14_days_finds_weekly_points(br, samples):
    unit = samples["drives"][0]["id"]
    start, end = NOW - timedelta(days=60), NOW - timedelta(days=20)
    latest = (await br.restore_points.search.post(_search([unit], start, end))).search_results[0]
    oldest = (
        await br.restore_points.search.post(_search([unit], start, end, RestorePointPreference.Oldest))
    ).search_results[0]
    gap = latest.restore_point.protection_date_time - oldest.restore_point.protection_date_time
    assert gap.total_seconds() % (7 * 86400) == 0 and gap >= timedelta(days=28)


async def test_search_with_fast_restore_tag_returns_fast_points(br, samples):
    ids = [d["id"] for d in samples["drives"][:2]]
    result = await br.restore_points.search.post(
        _search(ids, NOW - timedelta(days=3), NOW, tags=RestorePointTags.FastRestore)
    )
    assert all(r.restore_point.tags == [RestorePointTags.FastRestore] for r in result.search_results)
    assert len(result.search_results) == 2


async def test_search_with_21_units_is_refused_with_invalid_search_request(br, emu):
    ids = [d["id"] for d in emu.admin.samples(25)["drives"]][:21]
    with pytest.raises(ODataError) as info:
        await br.restore_points.search.post(_search(ids, NOW - timedelta(days=1), NOW))
    assert odata_error(info.value)[:2] == (400, "InvalidSearchRequest")
    ok = await br.restore_points.search.post(_search(ids[:20], NOW - timedelta(days=1), NOW))
    assert len(ok.search_results) == 20


async def test_search_lists_unprotected_and_unknown_units_in_no_result_ids(br, samples):
    unprotected = samples["unprotectedDrives"][0]["id"]
    unknown = str(uuid.uuid4())
    protected = samples["drives"][0]["id"]
    result = await br.restore_points.search.post(_search([protected, unprotected, unknown], None, NOW))
    assert [r.restore_point.protection_unit.id for r in result.search_results] == [protected]
    assert result.no_result_protection_unit_ids == [unprotected, unknown]


async def test_search_with_start_after_end_is_refused(br, samples):
    with pytest.raises(ODataError) as info:
        await br.restore_points.search.post(_search([samples["drives"][0]["id"]], NOW, NOW - timedelta(days=1)))
    assert odata_error(info.value)[:2] == (400, "InvalidSearchRequest")


async def test_restore_points_of_one_unit_are_listed_filtered_and_paged(br, samples):
    unit = samples["drives"][0]["id"]
    cutoff = NOW - timedelta(hours=1)
    config = RequestConfiguration(
        query_parameters=RestorePointsRequestBuilder.RestorePointsRequestBuilderGetQueryParameters(
            expand=[f"protectionUnit($filter=id eq '{unit}')"],
            filter=f"protectionDateTime lt {cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            top=50,
        )
    )
    page = await br.restore_points.get(request_configuration=config)
    assert len(page.value) == 50
    assert all(p.protection_unit.id == unit and p.protection_date_time < cutoff for p in page.value)
    assert page.odata_next_link
    times = [p.protection_date_time for p in page.value]
    assert times == sorted(times, reverse=True)
    got = await br.restore_points.by_restore_point_id(page.value[0].id).get()
    assert got.protection_date_time == page.value[0].protection_date_time


async def test_restore_point_listing_follows_next_links_to_the_end(http, samples):
    unit = samples["drives"][0]["id"]
    start = (NOW - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    params = {
        "$expand": f"protectionUnit($filter=id eq '{unit}')",
        "$filter": f"protectionDateTime ge {start}",
        "$top": "7",
    }
    body = (await http.get(f"{R}/restorePoints", params=params)).json()
    ids = [p["id"] for p in body["value"]]
    while "@odata.nextLink" in body:
        body = (await http.get(body["@odata.nextLink"])).json()
        ids += [p["id"] for p in body["value"]]
    assert len(ids) == len(set(ids)) == 31  # every 10 minutes over 5 hours, both ends included


async def test_drive_protection_units_are_paged_and_gettable(br, http, emu):
    first = (await http.get(f"{R}/driveProtectionUnits", params={"$top": "25"})).json()
    assert len(first["value"]) == 25
    total = len(first["value"])
    body = first
    while "@odata.nextLink" in body:
        body = (await http.get(body["@odata.nextLink"])).json()
        total += len(body["value"])
    assert total == BASELINE["drives"]
    unit = first["value"][3]
    assert unit["email"] == "user00003@contoso.com"
    assert uuid.UUID(unit["directoryObjectId"])
    got = await br.protection_units.by_protection_unit_base_id(unit["id"]).get()
    assert got.id == unit["id"]
    sdk_page = await br.drive_protection_units.get()
    assert len(sdk_page.value) == BASELINE["drives"]


async def test_protection_policies_list_and_their_units(br, http):
    policies = await br.one_drive_for_business_protection_policies.get()
    (policy,) = policies.value
    units = (await http.get(f"{R}/oneDriveForBusinessProtectionPolicies/{policy.id}/driveProtectionUnits")).json()
    assert all(u["policyId"] == policy.id for u in units["value"])
    missing = await http.get(f"{R}/oneDriveForBusinessProtectionPolicies/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "PolicyNotFound")


async def _browse_session(br, emu, point_id):
    created = await br.one_drive_for_business_browse_sessions.post(
        OneDriveForBusinessBrowseSession(restore_point_id=point_id)
    )
    emu.admin.advance(10)
    return created


async def test_browse_session_goes_creating_then_created(br, emu, samples):
    point = samples["fastRestorePoints"][0]
    created = await br.one_drive_for_business_browse_sessions.post(
        OneDriveForBusinessBrowseSession(restore_point_id=point["id"])
    )
    assert created.status == BrowseSessionStatus.Creating
    assert created.directory_object_id == samples["drives"][0]["directoryObjectId"]
    assert created.expiration_date_time - created.created_date_time == timedelta(days=3)
    emu.admin.advance(10)
    got = await br.one_drive_for_business_browse_sessions.by_one_drive_for_business_browse_session_id(created.id).get()
    assert got.status == BrowseSessionStatus.Created
    listed = await br.one_drive_for_business_browse_sessions.get()
    assert [b.id for b in listed.value] == [created.id]


BROWSE_READ_PROPERTIES = {"@odata.type", "id", "status", "createdDateTime", "expirationDateTime",
                          "restorePointDateTime", "backupSizeInBytes", "directoryObjectId", "error"}


async def test_browse_session_reads_name_the_drive_and_time_never_the_restore_point_id(http, emu, samples):
    point, drive = samples["fastRestorePoints"][2], samples["drives"][2]
    created = await http.post(f"{R}/oneDriveForBusinessBrowseSessions", json={"restorePointId": point["id"]})
    assert created.status_code == 201
    emu.admin.advance(10)
    bid = created.json()["id"]
    got = (await http.get(f"{R}/oneDriveForBusinessBrowseSessions/{bid}")).json()
    listed = (await http.get(f"{R}/oneDriveForBusinessBrowseSessions")).json()["value"]
    listed_base = (await http.get(f"{R}/browseSessions")).json()["value"]
    for body in (created.json(), got, listed[0], listed_base[0]):
        # The create answer, the get and both lists: the documented properties, and no restorePointId.
        assert set(body) - {"@odata.context"} == BROWSE_READ_PROPERTIES
        assert body["id"] == bid and body["directoryObjectId"] == drive["directoryObjectId"]
        assert _instant(body["restorePointDateTime"]) == _instant(point["protectionDateTime"])
        assert _instant(body["expirationDateTime"]) - _instant(body["createdDateTime"]) == timedelta(days=3)
    assert _instant(created.json()["createdDateTime"]) == NOW
    assert (created.json()["status"], got["status"]) == ("creating", "created")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_restore_point_get_carries_its_protection_unit_only_when_expanded(http, samples):
    point, drive = samples["fastRestorePoints"][0], samples["drives"][0]
    plain = (await http.get(f"{R}/restorePoints/{point['id']}")).json()
    assert "protectionUnit" not in plain
    assert _instant(plain["protectionDateTime"]) == _instant(point["protectionDateTime"])
    expanded = (await http.get(f"{R}/restorePoints/{point['id']}", params={"$expand": "protectionUnit"})).json()
    unit = expanded["protectionUnit"]
    assert (unit["id"], unit["directoryObjectId"]) == (drive["id"], drive["directoryObjectId"])


async def test_browse_session_on_a_non_fast_restore_point_is_refused(br, samples):
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_browse_sessions.post(
            OneDriveForBusinessBrowseSession(restore_point_id=samples["restorePoints"][0]["id"])
        )
    status, code, message = odata_error(info.value)
    assert (status, code) == (400, "InvalidRestorePoint")
    assert "fastRestore" in message


async def test_browse_walks_library_folders_and_pages_a_large_folder(br, emu, samples):
    bs = await _browse_session(br, emu, samples["fastRestorePoints"][0]["id"])
    browse = br.browse_sessions.by_browse_session_base_id(bs.id)
    top = await browse.browse.post(BrowsePostRequestBody())
    (library,) = top.value
    assert library.type == T.DocumentLibrary and library.name == "Documents"
    assert len(library.item_key.split(",")) == 3
    inside = await browse.browse.post(BrowsePostRequestBody(browse_location_item_key=library.item_key))
    large = next(i for i in inside.value if i.name == "Large folder")
    assert large.type == T.Folder and large.items_count > 1000
    assert len(large.item_key.split(",")) == 4
    first = await browse.browse.post(BrowsePostRequestBody(browse_location_item_key=large.item_key))
    names = [i.name for i in first.value]
    link = first.additional_data.get("@odata.nextLink") or first.odata_next_link
    assert link and "$skiptoken=" in link
    while link:
        token = link.split("$skiptoken=", 1)[1]
        page = await browse.browse_with_next_fetch_token(token).get()
        names += [i.name for i in page.value]
        link = page.additional_data.get("@odata.nextLink") or getattr(page, "odata_next_link", None)
    assert len(names) == len(set(names)) == large.items_count
    assert all(i.size_in_bytes and int(i.size_in_bytes) > 0 for i in first.value)


async def test_browse_is_served_on_both_session_paths_with_skiptoken_paging(http, br, emu, samples):
    bs = await _browse_session(br, emu, samples["fastRestorePoints"][1]["id"])
    top = (await http.post(f"{R}/oneDriveForBusinessBrowseSessions/{bs.id}/browse", json={})).json()
    assert top["@odata.count"] == 1
    lib_key = top["value"][0]["itemKey"]
    inside = (await http.post(f"{R}/browseSessions/{bs.id}/browse", json={"browseLocationItemKey": lib_key})).json()
    large = next(i for i in inside["value"] if i["name"] == "Large folder")
    body = (await http.post(f"{R}/oneDriveForBusinessBrowseSessions/{bs.id}/browse",
                            json={"browseLocationItemKey": large["itemKey"]})).json()
    seen = len(body["value"])
    while "@odata.nextLink" in body:
        body = (await http.get(body["@odata.nextLink"])).json()
        seen += len(body["value"])
    assert seen == large["itemsCount"]


async def test_browse_tree_is_deterministic_per_restore_point(br, emu, samples):
    point = samples["fastRestorePoints"][2]["id"]
    keys = []
    for _ in range(2):
        bs = await _browse_session(br, emu, point)
        browse = br.browse_sessions.by_browse_session_base_id(bs.id)
        lib = (await browse.browse.post(BrowsePostRequestBody())).value[0]
        inside = await browse.browse.post(BrowsePostRequestBody(browse_location_item_key=lib.item_key))
        keys.append([(i.item_key, i.name) for i in inside.value])
    assert keys[0] == keys[1]


async def test_browse_filter_by_name_and_order(br, emu, samples):
    bs = await _browse_session(br, emu, samples["fastRestorePoints"][0]["id"])
    browse = br.browse_sessions.by_browse_session_base_id(bs.id)
    lib = (await browse.browse.post(BrowsePostRequestBody())).value[0]
    found = await browse.browse.post(
        BrowsePostRequestBody(browse_location_item_key=lib.item_key, filter="(name -contains 'photo')")
    )
    assert [i.name for i in found.value] == ["Photos"]
    ordered = await browse.browse.post(
        BrowsePostRequestBody(browse_location_item_key=lib.item_key, order_by=BrowseQueryOrder.NameDsc)
    )
    names = [i.name.lower() for i in ordered.value]
    assert names == sorted(names, reverse=True)


async def test_browse_before_the_session_is_created_is_refused(br, samples):
    created = await br.one_drive_for_business_browse_sessions.post(
        OneDriveForBusinessBrowseSession(restore_point_id=samples["fastRestorePoints"][0]["id"])
    )
    with pytest.raises(ODataError) as info:
        await br.browse_sessions.by_browse_session_base_id(created.id).browse.post(BrowsePostRequestBody())
    assert odata_error(info.value)[:2] == (400, "BrowseSessionNotReady")


async def test_expired_browse_session_is_404_for_get_and_browse(br, emu, samples):
    bs = await _browse_session(br, emu, samples["fastRestorePoints"][0]["id"])
    emu.admin.advance(days=3)
    with pytest.raises(ODataError) as info:
        await br.one_drive_for_business_browse_sessions.by_one_drive_for_business_browse_session_id(bs.id).get()
    assert odata_error(info.value)[:2] == (404, "BrowseSessionNotFound")
    with pytest.raises(ODataError) as info:
        await br.browse_sessions.by_browse_session_base_id(bs.id).browse.post(BrowsePostRequestBody())
    assert odata_error(info.value)[:2] == (404, "BrowseSessionNotFound")
    assert (await br.browse_sessions.get()).value == []


async def test_granular_session_restores_items_picked_from_a_browse_session(http, br, emu, samples):
    bs = await _browse_session(br, emu, samples["fastRestorePoints"][0]["id"])
    lib = (await http.post(f"{R}/browseSessions/{bs.id}/browse", json={})).json()["value"][0]
    items = (await http.post(f"{R}/browseSessions/{bs.id}/browse", json={"browseLocationItemKey": lib["itemKey"]}))
    key = next(i["itemKey"] for i in items.json()["value"] if i["type"] == "file")
    created = await http.post(
        f"{R}/oneDriveForBusinessRestoreSessions",
        json={"granularDriveRestoreArtifacts": [{"browseSessionId": bs.id, "id": key}]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["restoreJobType"] == "granular"
    sid = created.json()["id"]
    assert (await http.post(f"{R}/restoreSessions/{sid}/activate")).status_code == 200
    emu.admin.advance(minutes=5)
    (art,) = (await http.get(f"{R}/oneDriveForBusinessRestoreSessions/{sid}/granularDriveRestoreArtifacts")).json()[
        "value"
    ]
    assert (art["id"], art["status"]) == (key, "succeeded")
