"""How long a restore session is in progress: a fixed part plus the work on its artifacts, a bounded number at a
time. Driven through msgraph-sdk (sessions, bulk requests) and the admin API (configuration), on a frozen clock."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from msgraph.generated.models.artifact_restore_status import ArtifactRestoreStatus as A
from msgraph.generated.models.destination_type import DestinationType
from msgraph.generated.models.drive_restore_artifacts_bulk_addition_request import (
    DriveRestoreArtifactsBulkAdditionRequest,
)
from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
from msgraph.generated.models.restore_point_preference import RestorePointPreference
from msgraph.generated.models.restore_session_status import RestoreSessionStatus as S
from msgraph.generated.models.time_period import TimePeriod

from emulators.azurite import free_port
from emulators.graph import AdminClient
from emulators.graph.admin import AdminError
from emulators.graph.config import EmulatorConfig

from .conftest import BASELINE
from .helpers import delta_body, point_ids, session_body, sessions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

START = datetime.fromtimestamp(BASELINE["start_time"], UTC)  # the frozen clock: every activation happens here
ROOT = Path(__file__).resolve().parents[3]


async def _activate(br, ids: list[str]) -> str:
    created = await br.one_drive_for_business_restore_sessions.post(session_body(ids))
    await br.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    return created.id


async def _activate_bulk(br, emails: list[str]) -> str:
    created = await br.one_drive_for_business_restore_sessions.post(OneDriveForBusinessRestoreSession())
    await sessions(br, created.id).drive_restore_artifacts_bulk_addition_requests.post(
        DriveRestoreArtifactsBulkAdditionRequest(
            display_name="timing", drives=emails, destination_type=DestinationType.New,
            protection_time_period=TimePeriod(start_date_time=START - timedelta(days=7), end_date_time=START),
            restore_point_preference=RestorePointPreference.Latest))
    await br.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    return created.id


async def _session(br, sid: str):
    return await br.restore_sessions.by_restore_session_base_id(sid).get()


async def _duration(br, sid: str) -> float:
    """Seconds from activation (the frozen start) to completedDateTime, once the clock has passed it."""
    session = await _session(br, sid)
    assert session.status == S.Completed, session.status
    return (session.completed_date_time - START).total_seconds()


async def _completions(br, sid: str) -> list[float]:
    arts = (await sessions(br, sid).drive_restore_artifacts.get()).value
    assert {a.status for a in arts} == {A.Succeeded}
    return sorted((a.completion_date_time - START).total_seconds() for a in arts)


async def test_a_session_lasts_a_fixed_part_plus_its_artifacts_in_groups(br, emu):
    emu.admin.configure(in_progress_seconds=600, in_progress_per_artifact_seconds=300, in_progress_parallelism=10)
    ids = point_ids(emu.admin.samples(50), 50)
    one, ten, eleven, twenty_eight = (await _activate(br, ids[:1]), await _activate(br, ids[1:11]),
                                      await _activate(br, ids[11:22]), await _activate(br, ids[22:50]))
    emu.admin.advance(hours=2)
    # activating 30 s + scheduled 30 s + fixed 600 s + ceil(n / 10) * 300 s
    assert await _duration(br, one) == 60 + 600 + 300
    assert await _duration(br, ten) == 60 + 600 + 300
    assert await _duration(br, eleven) == 60 + 600 + 2 * 300
    assert await _duration(br, twenty_eight) == 60 + 600 + 3 * 300


async def test_no_more_artifacts_than_the_parallelism_finish_per_round_and_counts_follow(br, emu):
    emu.admin.configure(in_progress_seconds=600, in_progress_per_artifact_seconds=300, in_progress_parallelism=10)
    sid = await _activate(br, point_ids(emu.admin.samples(45), 45))
    start_of_work = 60 + 600
    emu.admin.advance(seconds=start_of_work + 300 - 1)
    count = (await _session(br, sid)).restore_session_artifact_count
    assert (count.completed, count.in_progress) == (0, 45)
    emu.admin.advance(seconds=1)
    count = (await _session(br, sid)).restore_session_artifact_count
    assert (count.completed, count.in_progress) == (10, 35)
    emu.admin.advance(seconds=2 * 300)
    session = await _session(br, sid)
    assert session.status == S.Active
    assert (session.restore_session_artifact_count.completed, session.restore_session_artifact_count.in_progress) \
        == (30, 15)
    emu.admin.advance(seconds=2 * 300)
    finished = await _completions(br, sid)
    rounds = [start_of_work + k * 300 for k in (1, 2, 3, 4, 5)]
    assert finished == [t for t in rounds[:4] for _ in range(10)] + [rounds[4]] * 5
    assert await _duration(br, sid) == rounds[4]


async def test_jitter_delays_the_next_artifact_of_the_same_worker_but_keeps_the_bound(br, emu):
    emu.admin.configure(in_progress_seconds=600, in_progress_per_artifact_seconds=300, in_progress_parallelism=10,
                        in_progress_jitter_seconds=120)
    sid = await _activate(br, point_ids(emu.admin.samples(30), 30))
    emu.admin.advance(hours=2)
    finished = await _completions(br, sid)
    start_of_work = 60 + 600
    assert len(set(finished)) > 3  # spread, not three exact rounds
    for k in range(1, 4):  # by the end of round k at the slowest, 10k artifacts are done; never more than 10k early
        assert sum(t <= start_of_work + k * (300 + 120) for t in finished) >= 10 * k
        assert sum(t <= start_of_work + k * 300 for t in finished) <= 10 * k
    assert start_of_work + 3 * 300 <= await _duration(br, sid) <= start_of_work + 3 * (300 + 120)


async def test_a_session_grown_by_patch_beyond_the_parallelism_takes_another_round(br, emu):
    emu.admin.configure(in_progress_seconds=0, in_progress_per_artifact_seconds=100, in_progress_parallelism=50)
    ids = point_ids(emu.admin.samples(55), 55)
    created = await br.one_drive_for_business_restore_sessions.post(session_body(ids[:50]))
    await sessions(br, created.id).patch(
        delta_body([{"restorePoint": {"id": p}, "destinationType": "new"} for p in ids[50:]]))
    await br.restore_sessions.by_restore_session_base_id(created.id).activate.post()
    emu.admin.advance(hours=1)
    assert await _duration(br, created.id) == 60 + 2 * 100
    assert (await _completions(br, created.id)).count(60 + 100) == 50


async def test_published_defaults_a_bulk_session_of_10000_drives_takes_far_longer_than_one_of_50(br, emu):
    defaults = EmulatorConfig()
    emu.admin.reset(drives=10_050, unprotected_fraction=0.0, activating_seconds=defaults.activating_seconds,
                    scheduled_seconds=defaults.scheduled_seconds, in_progress_seconds=defaults.in_progress_seconds,
                    in_progress_per_artifact_seconds=defaults.in_progress_per_artifact_seconds,
                    in_progress_parallelism=defaults.in_progress_parallelism)
    emails = [d["email"] for d in emu.admin.samples(10_050)["drives"]]
    small = await _activate_bulk(br, emails[:50])
    large = await _activate_bulk(br, emails[50:])
    assert (await _session(br, large)).restore_session_artifact_count.total == 10_000
    emu.admin.advance(days=3)
    three_hours = 3 * 3600.0  # Microsoft: 50 OneDrive accounts in 3 hours
    assert await _duration(br, small) == three_hours
    large_seconds = await _duration(br, large)
    # 200 rounds of 50 at 12 minutes each: 10,000 in 42.8 hours, 250 an hour beyond the first 50
    assert large_seconds == three_hours + 199 * 720
    assert large_seconds > 14 * three_hours


async def test_timing_is_configured_through_the_admin_api_and_applies_from_the_next_activation(br, emu):
    emu.admin.configure(inProgressSeconds=100, inProgressPerArtifactSeconds=50, inProgressParallelism=5)
    config = emu.admin.config()
    assert (config["in_progress_seconds"], config["in_progress_per_artifact_seconds"],
            config["in_progress_parallelism"]) == (100.0, 50.0, 5)
    ids = point_ids(emu.admin.samples(20), 20)
    before = await _activate(br, ids[:10])
    emu.admin.configure(in_progress_parallelism=10)
    after = await _activate(br, ids[10:])
    emu.admin.advance(hours=1)
    assert await _duration(br, before) == 60 + 100 + 2 * 50  # the timing at its activation
    assert await _duration(br, after) == 60 + 100 + 1 * 50
    for bad in ({"in_progress_parallelism": 0}, {"in_progress_per_artifact_seconds": -1}, {"in_progress_seconds": -5}):
        with pytest.raises(AdminError, match="400"):
            emu.admin.configure(**bad)
    assert emu.admin.config()["in_progress_parallelism"] == 10


def test_the_command_line_takes_the_timing_options():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.graph", "--port", str(port), "--drives", "5", "--in-progress-seconds", "7",
         "--in-progress-per-artifact-seconds", "11", "--in-progress-parallelism", "3"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        assert (config["in_progress_seconds"], config["in_progress_per_artifact_seconds"],
                config["in_progress_parallelism"]) == (7.0, 11.0, 3)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    refused = subprocess.run([sys.executable, "-m", "emulators.graph", "--port", str(port),
                              "--in-progress-parallelism", "0"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30, check=False)
    assert refused.returncode != 0 and "in_progress_parallelism must be at least 1" in refused.stderr
