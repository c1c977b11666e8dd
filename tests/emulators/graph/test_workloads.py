"""What the three workloads share: the generic restoreSessions routes, one 25-session cap, restore point search
and lookup, the seeded tenant, per-workload timing, and faults and throttling on every endpoint."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.drive_protection_unit import DriveProtectionUnit
from msgraph.generated.models.exchange_restore_session import ExchangeRestoreSession
from msgraph.generated.models.mailbox_protection_unit import MailboxProtectionUnit
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_point_preference import RestorePointPreference
from msgraph.generated.models.restore_session_status import RestoreSessionStatus as S
from msgraph.generated.models.share_point_restore_session import SharePointRestoreSession
from msgraph.generated.models.site_protection_unit import SiteProtectionUnit
from msgraph.generated.models.time_period import TimePeriod
from msgraph.generated.solutions.backup_restore.restore_points.item.restore_point_item_request_builder import (
    RestorePointItemRequestBuilder,
)
from msgraph.generated.solutions.backup_restore.restore_points.search.search_post_request_body import (
    SearchPostRequestBody,
)

from emulators.azurite import free_port
from emulators.graph import AdminClient, make_token
from emulators.graph.admin import AdminError

from .conftest import BASELINE, EXO, ODB, SPO, R
from .helpers import (
    activate,
    mailbox_session_body,
    odata_error,
    point_ids,
    session_body,
    site_session_body,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime.fromtimestamp(BASELINE["start_time"], UTC)
ROOT = Path(__file__).resolve().parents[3]


async def _one_of_each(br, samples, offset: int = 0) -> list[str]:
    """A draft session of each workload (one artifact each); their ids."""
    made = [
        await br.one_drive_for_business_restore_sessions.post(session_body([samples["restorePoints"][offset]["id"]])),
        await br.share_point_restore_sessions.post(site_session_body([samples["siteRestorePoints"][offset]["id"]])),
        await br.exchange_restore_sessions.post(mailbox_session_body([samples["mailboxRestorePoints"][offset]["id"]])),
    ]
    return [s.id for s in made]


async def test_the_generic_routes_serve_every_workload(br, http, samples):
    ids = await _one_of_each(br, samples)
    listed = await br.restore_sessions.get()
    assert [type(s) for s in listed.value] == [OneDriveForBusinessRestoreSession, SharePointRestoreSession,
                                              ExchangeRestoreSession]
    assert [s.id for s in listed.value] == ids
    for sid, kind in zip(ids, (OneDriveForBusinessRestoreSession, SharePointRestoreSession, ExchangeRestoreSession),
                         strict=True):
        assert isinstance(await br.restore_sessions.by_restore_session_base_id(sid).get(), kind)
    assert [s.id for s in (await br.exchange_restore_sessions.get()).value] == [ids[2]]
    assert [s.id for s in (await br.one_drive_for_business_restore_sessions.get()).value] == [ids[0]]
    raw = (await http.get(f"{R}/restoreSessions")).json()["value"]
    assert [s["@odata.type"] for s in raw] == ["#microsoft.graph.oneDriveForBusinessRestoreSession",
                                               "#microsoft.graph.sharePointRestoreSession",
                                               "#microsoft.graph.exchangeRestoreSession"]
    for sid in ids:
        assert (await http.delete(f"{R}/restoreSessions/{sid}")).status_code == 204
    assert (await br.restore_sessions.get()).value == []


async def test_the_active_cap_counts_the_sessions_of_every_workload(br, emu, samples):
    emu.admin.configure(active_cap=3)
    for sid in await _one_of_each(br, samples):
        assert (await activate(br, sid)).status == S.Activating
    for sid in await _one_of_each(br, samples, offset=1):
        with pytest.raises(ODataError) as info:
            await activate(br, sid)
        assert odata_error(info.value)[:2] == (500, "TooManyActiveRestoreSessions")
    emu.admin.advance(minutes=5)  # all three are done: the budget is free again
    assert (await activate(br, sid)).status == S.Activating
    state = emu.admin.state()
    assert (state["maxActiveObserved"], state["rejectedActivations"]) == (3, 3)
    assert {s["workload"] for s in state["sessions"]} == {"oneDrive", "sharePoint", "exchange"}


async def test_the_default_cap_of_25_spans_workloads(br, emu, samples):
    made = []
    for i in range(9):
        made.append(await br.one_drive_for_business_restore_sessions.post(
            session_body([samples["restorePoints"][i]["id"]])))
    for i in range(8):
        made.append(await br.share_point_restore_sessions.post(
            site_session_body([samples["siteRestorePoints"][i]["id"]])))
        made.append(await br.exchange_restore_sessions.post(
            mailbox_session_body([samples["mailboxRestorePoints"][i]["id"]])))
    for session in made:
        await activate(br, session.id)
    last = await br.share_point_restore_sessions.post(site_session_body([samples["siteRestorePoints"][9]["id"]]))
    with pytest.raises(ODataError) as info:
        await activate(br, last.id)
    assert odata_error(info.value)[:2] == (500, "TooManyActiveRestoreSessions")
    assert emu.admin.state(sessions=False)["activeCount"] == 25


async def test_search_finds_restore_points_of_drives_sites_and_mailboxes(br, samples):
    drive, site, mailbox = samples["drives"][0], samples["sites"][0], samples["mailboxes"][0]
    unprotected = samples["unprotectedSites"][0]["id"]
    result = await br.restore_points.search.post(SearchPostRequestBody(
        protection_unit_ids=[drive["id"], site["id"], mailbox["id"], unprotected],
        protection_time_period=TimePeriod(start_date_time=NOW - timedelta(days=1), end_date_time=NOW),
        restore_point_preference=RestorePointPreference.Latest))
    units = [r.restore_point.protection_unit for r in result.search_results]
    assert [type(u) for u in units] == [DriveProtectionUnit, SiteProtectionUnit, MailboxProtectionUnit]
    assert [u.id for u in units] == [drive["id"], site["id"], mailbox["id"]]
    assert (units[1].site_id, units[2].email) == (site["siteId"], mailbox["email"])
    assert result.no_result_protection_unit_ids == [unprotected]
    # the latest points: the newest slot of each (fast for the drive and the site; mailboxes have no fast points)
    assert [r.restore_point.id for r in result.search_results[:2]] == [samples["fastRestorePoints"][0]["id"],
                                                                       samples["siteFastRestorePoints"][0]["id"]]
    assert {r.restore_point.protection_date_time for r in result.search_results} == {NOW}


async def test_a_restore_point_expanded_names_its_protection_unit_type(br, http, samples):
    expand = RequestConfiguration(
        query_parameters=RestorePointItemRequestBuilder.RestorePointItemRequestBuilderGetQueryParameters(
            expand=["protectionUnit"]))
    for kind, unit_kind, points in (("#microsoft.graph.siteProtectionUnit", SiteProtectionUnit, "siteRestorePoints"),
                                    ("#microsoft.graph.mailboxProtectionUnit", MailboxProtectionUnit,
                                     "mailboxRestorePoints"),
                                    ("#microsoft.graph.driveProtectionUnit", DriveProtectionUnit, "restorePoints")):
        point = samples[points][0]
        raw = (await http.get(f"{R}/restorePoints/{point['id']}", params={"$expand": "protectionUnit"})).json()
        assert (raw["protectionUnit"]["@odata.type"], raw["protectionUnit"]["id"]) == (kind, point["protectionUnitId"])
        got = await br.restore_points.by_restore_point_id(point["id"]).get(request_configuration=expand)
        assert isinstance(got.protection_unit, unit_kind)


async def test_restore_points_of_a_mailbox_are_listed_every_10_minutes_even_months_ago(http, samples):
    unit = samples["mailboxes"][0]["id"]
    start, end = NOW - timedelta(days=100, hours=1), NOW - timedelta(days=100)
    params = {"$expand": f"protectionUnit($filter=id eq '{unit}')",
              "$filter": f"protectionDateTime ge {start:%Y-%m-%dT%H:%M:%SZ} and protectionDateTime lt "
                         f"{end:%Y-%m-%dT%H:%M:%SZ}"}
    body = (await http.get(f"{R}/restorePoints", params=params)).json()
    assert len(body["value"]) == 6
    assert {p["protectionUnit"]["@odata.type"] for p in body["value"]} == {"#microsoft.graph.mailboxProtectionUnit"}


async def test_sites_and_mailboxes_do_not_change_the_drives_of_a_seed(emu):
    emu.admin.reset(**{**BASELINE, "sites": 0, "mailboxes": 0})
    alone = emu.admin.samples(10)
    emu.admin.reset(**{**BASELINE, "sites": 200, "mailboxes": 300})
    beside = emu.admin.samples(10)
    for key in ("drives", "unprotectedDrives", "restorePoints", "fastRestorePoints", "expiredRestorePoints"):
        assert alone[key] == beside[key], key
    assert alone["sites"] == alone["mailboxes"] == []
    # and the sites and mailboxes of a seed stay the same whatever the other counts
    emu.admin.reset(**{**BASELINE, "drives": 5, "sites": 200, "mailboxes": 300})
    fewer_drives = emu.admin.samples(10)
    assert fewer_drives["sites"] == beside["sites"]
    assert [m["id"] for m in fewer_drives["mailboxes"]] == [m["id"] for m in beside["mailboxes"]]


async def test_one_users_drive_mailbox_and_team_site_belong_together(emu, samples):
    drive = samples["drives"][3]
    user = drive["email"].split("@")[0]
    site = next(s for s in samples["sites"] if s["siteWebUrl"].endswith(f"/sites/{user}-team"))
    mailbox = next(m for m in samples["mailboxes"] if m["email"] == drive["email"])
    assert site["siteName"] == f"User {user[4:]} Team"
    assert mailbox["directoryObjectId"] == drive["directoryObjectId"]


async def test_each_workload_has_its_own_session_timing(br, emu, samples):
    emu.admin.configure(in_progress_seconds=100, sharepoint_in_progress_seconds=1000, exchange_in_progress_seconds=3000,
                        exchangeInProgressPerArtifactSeconds=60, exchange_in_progress_parallelism=1)
    config = emu.admin.config()
    assert (config["exchange_in_progress_per_artifact_seconds"], config["exchange_in_progress_parallelism"]) == (60, 1)
    one = await br.one_drive_for_business_restore_sessions.post(session_body(point_ids(samples, 1)))
    site = await br.share_point_restore_sessions.post(site_session_body(point_ids(samples, 1, "siteRestorePoints")))
    mail = await br.exchange_restore_sessions.post(mailbox_session_body(point_ids(samples, 2, "mailboxRestorePoints")))
    for sid in (one.id, site.id, mail.id):
        await activate(br, sid)
    emu.admin.advance(hours=2)
    durations = []
    for sid in (one.id, site.id, mail.id):
        session = await br.restore_sessions.by_restore_session_base_id(sid).get()
        durations.append((session.completed_date_time - NOW).total_seconds())
    assert durations == [60 + 100, 60 + 1000, 60 + 3000 + 2 * 60]
    with pytest.raises(AdminError, match="400"):
        emu.admin.configure(sharepoint_in_progress_parallelism=0)
    with pytest.raises(AdminError, match="needs a reset"):
        emu.admin.configure(sites=10)


async def test_faults_can_target_one_workload_on_shared_operations(br, emu, samples):
    emu.admin.fail_next(1, status=503, code="serviceNotAvailable", operation="createRestoreSession",
                        workload="sharePoint")
    assert (await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())).id
    with pytest.raises(ODataError) as info:
        await br.share_point_restore_sessions.post(SharePointRestoreSession())
    assert odata_error(info.value)[:2] == (503, "serviceNotAvailable")
    assert (await br.share_point_restore_sessions.post(SharePointRestoreSession())).id
    calls = emu.admin.calls()
    assert [(c["workload"], c["status"]) for c in calls] == [("oneDrive", 201), ("sharePoint", 503),
                                                             ("sharePoint", 201)]


async def test_a_workload_fault_on_a_generic_route_follows_the_session(br, emu, samples):
    ids = await _one_of_each(br, samples)
    emu.admin.add_fault(name="exchange-activations", path="*/restoreSessions/*/activate", workload="exchange",
                        failNext={"count": 1, "status": 500, "code": "TooManyActiveRestoreSessions"})
    await activate(br, ids[0])
    await activate(br, ids[1])
    with pytest.raises(ODataError) as info:
        await activate(br, ids[2])
    assert odata_error(info.value)[:2] == (500, "TooManyActiveRestoreSessions")
    assert (await activate(br, ids[2])).status == S.Activating
    assert [c["fault"] for c in emu.admin.calls()][-4:] == ["", "", "exchange-activations", ""]


async def test_new_endpoints_are_throttled_like_the_others(emu, samples):
    emu.admin.add_fault(name="throttle", operation="listSiteRestoreArtifacts",
                        rateLimit={"requests": 2, "perSeconds": 60, "retryAfter": 4})
    headers = {"Authorization": f"Bearer {make_token()}"}
    async with httpx.AsyncClient(base_url=emu.base_url, headers=headers) as c:
        body = {"siteRestoreArtifacts": [{"restorePoint": {"id": samples["siteRestorePoints"][0]["id"]},
                                          "destinationType": "new"}]}
        sid = (await c.post(SPO, json=body)).json()["id"]
        statuses = [(await c.get(f"{SPO}/{sid}/siteRestoreArtifacts")).status_code for _ in range(3)]
        throttled = await c.get(f"{SPO}/{sid}/siteRestoreArtifacts")
        mailbox_list = await c.get(f"{EXO}")  # other operations are untouched
    assert statuses == [200, 200, 429]
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "4")
    assert mailbox_list.status_code == 200


async def test_a_lost_answer_on_a_sharepoint_browse_session_create(emu, samples):
    emu.admin.lose_next_answer(1, operation="createBrowseSession", workload="sharePoint")
    headers = {"Authorization": f"Bearer {make_token()}"}
    body = {"restorePointId": samples["siteFastRestorePoints"][0]["id"]}
    transport = httpx.AsyncHTTPTransport(retries=0)
    async with httpx.AsyncClient(base_url=emu.base_url, headers=headers, transport=transport) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post(f"{R}/sharePointBrowseSessions", json=body)
        [made] = (await c.get(f"{R}/sharePointBrowseSessions")).json()["value"]
        drive = await c.post(f"{R}/oneDriveForBusinessBrowseSessions",
                             json={"restorePointId": samples["fastRestorePoints"][0]["id"]})
    assert made["siteId"] == samples["sites"][0]["siteId"] and drive.status_code == 201


async def test_admin_seed_sessions_seeds_any_workload(emu, http):
    made = emu.admin.seed_sessions(3, artifacts=2, workload="exchange")
    assert made["created"] == 3
    listed = (await http.get(EXO)).json()["value"]
    assert [s["id"] for s in listed] == made["ids"]
    assert (await http.get(ODB)).json()["value"] == []


def test_the_command_line_takes_sites_and_mailboxes():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.graph", "--port", str(port), "--drives", "5", "--sites", "7",
         "--mailboxes", "9", "--exchange-in-progress-seconds", "11", "--sharepoint-in-progress-parallelism", "4"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        admin = AdminClient(f"http://127.0.0.1:{port}", timeout=2)
        deadline = time.monotonic() + 20
        while True:
            try:
                config = admin.config()
                break
            except (AdminError, OSError):
                assert proc.poll() is None and time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.1)
        assert (config["sites"], config["mailboxes"]) == (7, 9)
        assert (config["exchange_in_progress_seconds"], config["sharepoint_in_progress_parallelism"]) == (11.0, 4)
        samples = admin.samples(20)
        assert (len(samples["sites"]) + len(samples["unprotectedSites"]),
                len(samples["mailboxes"]) + len(samples["unprotectedMailboxes"])) == (7, 9)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
