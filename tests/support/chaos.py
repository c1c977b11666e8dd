"""A chaos rig: the function app in real worker processes, killed and raced on one restore request.

What the service promises (at most one Graph session per planned batch across redeliveries, crashes and
concurrent workers; every message ends in events; with `activate: true` every session ends activated) is checked
here the way production breaks it: a worker process SIGKILLed part-way, and two live processes handed the same
message because a lock lapsed.

The rig starts Azurite, the Graph emulator and, per round, the Service Bus stand-in as processes on free ports
(stopped by PID), with Graph answering in 30-80 ms and creates in 150-300 ms. Each worker is the local Functions
host runner (`python -m emulators.functions_host`) in a process of its own, with settings for quick recovery
(short leases, waits, retry delays and tracker interval). A round:

1. submits one restore request of N restore points with azure-servicebus, optionally `activate: true`;
2. kill round: starts worker A alone, SIGKILLs it at a seeded moment between its first create and its last
   Graph write (the emulator's call log says where A is), then starts worker B, a fresh process, which gets the
   message once A's lock expires;
   race round: starts A, and B a second or so later, both with lock renewal off, one call at a time and a lock
   shorter than the work; once both are up and warm (their first tracker run has loaded the SDKs) the request
   is sent, and Service Bus hands it to the other process while the first still works on it. The process that
   created first is A. Sometimes (seeded) A is also SIGKILLed part-way;
3. waits until the request queue holds nothing (scheduled copies included), and the session tracker has run
   past the reserved-slot grace at least twice (with `activate: true`, until no draft is left or none changed
   for as long);
4. counts, from the Graph emulator (its admin API, the sessions' artifacts, its call log) and a subscription
   that receives every event: duplicate sessions, missing restore points, double activations, sessions left
   unactivated, the terminal event, and the recovery calls (session listings and artifact listings of drafts:
   what a worker reads to reconcile a batch it found marked by another).

One process reaches Graph under `/v1.0`, the other under `/beta` (the emulator serves both alike): that is how
the call log tells their calls apart. Nothing in the service is patched; every fault is a process dying, a lock
lapsing or Graph being slow.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiver

from emulators.azurite import Azurite, free_port, start_azurite
from emulators.graph import AdminClient, make_token

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "11111111-2222-3333-4444-555555555555"
ROLES = ("BackupRestore-Restore.ReadWrite.All", "BackupRestore-Search.Read.All",
         "BackupRestore-Configuration.Read.All")
SERVICE_BUS_CONNECTION = ("Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
                          "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;")
QUEUE = "restore-requests"
TOPIC = "restore-events"
SUBSCRIPTION = "all"
PER_SESSION = 50  # the contract's plan: at most 50 restore points a session, in request order
ACTIVE_CAP = 25
PAGE_SIZE = 100  # the emulator's default page of a session listing
TERMINAL_TYPES = ("restore.request.accepted", "restore.request.failed")
WRITES = ("createRestoreSession", "activateRestoreSession")

# Graph as a loaded tenant answers: 30-80 ms a call, creates 150-300 ms (each matching rule adds its latency).
GRAPH_LATENCY = [
    {"name": "latency", "latencyMs": 30, "jitterMs": 50},
    {"name": "slow-creates", "method": "POST", "operation": "createRestoreSession", "latencyMs": 120,
     "jitterMs": 100},
]
# Sessions end 5 s after activation, so slots free up within a round and later waves are activated too.
GRAPH_LIFECYCLE = {"activating_seconds": 1.0, "scheduled_seconds": 1.0, "in_progress_seconds": 3.0,
                   "in_progress_per_artifact_seconds": 0.0, "in_progress_jitter_seconds": 0.0,
                   "in_progress_parallelism": 50, "active_cap": ACTIVE_CAP, "clock_scale": 1.0,
                   "unprotected_fraction": 0.0}

TRACKER_PERIOD_SECONDS = 2
RESERVED_SLOT_GRACE_SECONDS = 3
STEP_LEASE_SECONDS = 10  # the least the settings accept; above GRAPH_TIMEOUT + THROTTLE_WAIT_LIMIT = 7
TRACKER_TIME_BUDGET_SECONDS = 5
#: A tracker run holds its lease for its time budget plus a minute (orchestrators/tracking/tracker.py): a worker
#: killed during a run keeps every other worker's tracker out that long.
TRACKER_LEASE_SECONDS = TRACKER_TIME_BUDGET_SECONDS + 60
KILL_ROUND_LOCK_SECONDS = 3.0
MAX_DELIVERY_COUNT = 30  # in a race, every lapsed lock counts as a delivery
#: Settings for quick recovery; the queue's lock is set per round (Config.json), its renewal by host.json.
RECOVERY_SETTINGS = {
    "GRAPH_TIMEOUT_SECONDS": "5",
    "GRAPH_THROTTLE_WAIT_LIMIT_SECONDS": "2",
    "STEP_LEASE_SECONDS": str(STEP_LEASE_SECONDS),
    "STEP_WAIT_SECONDS": "2",
    "RETRY_BASE_DELAY_SECONDS": "0.5",
    "RETRY_MAX_DELAY_SECONDS": "2",
    "RETRY_MAX_ATTEMPTS": "20",
    "MESSAGE_MAX_DELIVERY_COUNT": str(MAX_DELIVERY_COUNT),
    "SESSION_TRACKER_SCHEDULE": f"*/{TRACKER_PERIOD_SECONDS} * * * * *",
    "RESERVED_SLOT_GRACE_SECONDS": str(RESERVED_SLOT_GRACE_SECONDS),
    "TRACKER_TIME_BUDGET_SECONDS": str(TRACKER_TIME_BUDGET_SECONDS),
    "ACTIVATION_BACKOFF_SECONDS": "2",
    "MAX_ACTIVE_SESSIONS": str(ACTIVE_CAP),
}

_SESSION_PATH = re.compile(r"^/(?:v1\.0|beta)/solutions/backupRestore/"
                           r"(?:oneDriveForBusinessRestoreSessions|restoreSessions)/([^/]+)")
_PREFIXES = {"A": "/v1.0", "B": "/beta"}


# ---------------------------------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class RoundPlan:
    """One round, all of it decided by the seed: what is sent, who runs, when A dies."""

    name: str
    seed: int
    points: int
    activate: bool
    race: bool  # two live processes on one message: lock renewal off, a lock shorter than the work
    kill: bool  # SIGKILL A at a seeded moment
    kill_after_writes: int = 1  # A's accepted Graph writes (creates, then activations) seen in the call log
    kill_delay: float = 0.0  # and then this long
    b_delay: float = 1.0  # race: B starts this long after A
    create_concurrency: int = 8
    lock_seconds: float = KILL_ROUND_LOCK_SECONDS

    @property
    def batches(self) -> int:
        return math.ceil(self.points / PER_SESSION)

    @property
    def kind(self) -> str:
        return "+".join([*(["race"] if self.race else []), *(["kill"] if self.kill else []),
                         *(["activate"] if self.activate else [])]) or "plain"


def plan_round(name: str, seed: int, points: int, *, activate: bool, race: bool, kill: bool = True,
               kill_writes: tuple[float, float] = (0.0, 1.0), concurrency: int | None = None) -> RoundPlan:
    """A seeded round: where A dies (a fraction of its Graph writes, drawn within `kill_writes`), when B starts,
    how many creates A runs at once, the lock.

    In a race A creates one session at a time (about 0.25 s each), so its work outlasts the lock: half a second
    for up to 8 batches, else a quarter of the create time within 1-2.5 s; never shorter than what a delivery
    that finds everything done needs (it republishes the events), or the message would never be completed."""
    rng = random.Random(f"chaos:{seed}")
    batches = math.ceil(points / PER_SESSION)
    writes = batches + (min(batches, ACTIVE_CAP) if activate else 0)
    low, high = kill_writes
    kill_after = max(1, min(writes, math.ceil(writes * rng.uniform(low, high))))
    kill_delay = round(rng.uniform(0.0, 0.12), 3)
    b_delay = round(rng.uniform(0.8, 1.4), 2)
    drawn = rng.choice((2, 4, 8))
    if race:
        creates, lock = 1, 0.5 if batches <= 8 else min(2.5, max(1.0, round(batches * 0.25 / 4, 1)))
    else:
        creates, lock = concurrency or drawn, KILL_ROUND_LOCK_SECONDS
    return RoundPlan(name=name, seed=seed, points=points, activate=activate, race=race, kill=kill,
                     kill_after_writes=kill_after, kill_delay=kill_delay, b_delay=b_delay,
                     create_concurrency=creates, lock_seconds=lock)


# ---------------------------------------------------------------------------------------------------- results


@dataclass
class RoundResult:
    plan: RoundPlan
    request_id: str
    sessions: int = 0
    duplicate_sessions: int = 0  # sessions beyond one per planned batch
    points_in_two_sessions: int = 0
    missing_points: int = 0  # planned, in no session, not reported failed
    failed_points: int = 0  # reported in restore.session.failed
    double_activations: int = 0  # sessions whose /activate Graph accepted more than once
    unactivated: int = 0  # `activate: true`: drafts at the end while slots were free
    drafts_left: int = 0
    terminal_event: str | None = None  # the last restore.request.accepted / .failed, None if neither
    recovery_calls: int = 0  # session listings and artifact listings of drafts, by either worker
    recovery_calls_second: int = 0  # of which by the worker that got the message second
    reconciles: int = 0  # listings started (first pages)
    recovery_bound: int = 0
    creates: int = 0  # creates Graph accepted, both workers
    creates_second: int = 0
    first: str = "A"  # the worker that created first
    killed_at: str = "-"  # where A was when it died
    killed_after: tuple[int, int] | None = None  # (creates, activations) A had made when it died
    #: the message came back (a lapsed lock) to the second worker while the first was still creating
    raced: bool = False
    settled: bool = True  # the queue emptied in time
    queue_emptied_at: float = 0.0  # wall time
    #: `activate: true`: the last accepted activation came this long after the request queue emptied
    activation_late_seconds: float = 0.0
    wall_seconds: float = 0.0
    logs: list[str] = field(default_factory=list)
    #: (wall time, times the request's message had come back) from peeks at the queue during the round
    redeliveries: list[tuple[float, int]] = field(default_factory=list, repr=False)

    def peeked(self, messages: Iterable[Any]) -> None:
        for message in messages:
            if message.message_id == self.request_id:
                self.redeliveries.append((time.time(), int(message.delivery_count or 0)))

    @property
    def ended_in_events(self) -> bool:
        return self.terminal_event in TERMINAL_TYPES

    @property
    def problems(self) -> list[str]:
        """What broke a promise in this round (empty when every one held)."""
        found = []
        if self.duplicate_sessions or self.points_in_two_sessions:
            found.append(f"{self.duplicate_sessions} duplicate sessions ({self.points_in_two_sessions} restore "
                         "points in two sessions)")
        if self.missing_points:
            found.append(f"{self.missing_points} restore points missing")
        if self.double_activations:
            found.append(f"{self.double_activations} sessions activated twice")
        if self.unactivated:
            found.append(f"{self.unactivated} sessions left draft with free slots")
        if not self.ended_in_events:
            found.append("no terminal event")
        if self.recovery_calls > self.recovery_bound:
            found.append(f"{self.recovery_calls} recovery calls, above the bound {self.recovery_bound}")
        if not self.settled:
            found.append("the queue did not empty in time")
        return found

    def describe(self) -> str:
        """One line for a failure message: the round, its seed and every count."""
        p = self.plan
        return (f"round {p.name} (seed {p.seed}, {p.kind}, {p.points} points, {p.batches} batches, "
                f"{p.create_concurrency} creates at once, lock {p.lock_seconds:g} s): {self.sessions} sessions, "
                f"{self.duplicate_sessions} duplicates, {self.points_in_two_sessions} points in two sessions, "
                f"{self.missing_points} missing, {self.failed_points} failed, {self.double_activations} double "
                f"activations, {self.unactivated} unactivated ({self.drafts_left} drafts left, the last "
                f"activation {self.activation_late_seconds:.1f} s after the queue emptied), terminal event "
                f"{self.terminal_event}, {self.creates} creates ({self.creates_second} by the second worker), "
                f"{self.recovery_calls} recovery calls ({self.recovery_calls_second} by the second) in "
                f"{self.reconciles} reconciles "
                f"(bound {self.recovery_bound}), A killed at {self.killed_at}, first {self.first}, "
                f"raced {self.raced}, settled {self.settled}; logs {self.logs}")


COLUMNS = ("round", "seed", "kind", "points", "sess", "dup", "miss", "dblact", "unact", "late s", "events",
           "recov", "bound", "killed at", "raced", "wall s")


def table_row(r: RoundResult) -> tuple[str, ...]:
    events = {"restore.request.accepted": "accepted", "restore.request.failed": "failed"}.get(
        r.terminal_event or "", "NONE")
    raced = ("yes" if r.raced else "no") if r.plan.race else "-"
    return (r.plan.name, str(r.plan.seed), r.plan.kind, str(r.plan.points), str(r.sessions),
            str(r.duplicate_sessions), str(r.missing_points), str(r.double_activations),
            str(r.unactivated) if r.plan.activate else "-",
            f"{r.activation_late_seconds:.0f}" if r.plan.activate else "-", events, str(r.recovery_calls),
            str(r.recovery_bound), r.killed_at, raced, f"{r.wall_seconds:.1f}")


def format_table(results: Sequence[RoundResult]) -> str:
    rows = [COLUMNS, *(table_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def format_totals(results: Sequence[RoundResult]) -> str:
    recovery = [r.recovery_calls for r in results] or [0]
    races = [r for r in results if r.plan.race]
    return (f"{len(results)} rounds, {sum(r.plan.points for r in results)} restore points: "
            f"duplicates {sum(r.duplicate_sessions for r in results)}, "
            f"missing {sum(r.missing_points for r in results)}, "
            f"double activations {sum(r.double_activations for r in results)}, "
            f"unactivated {sum(r.unactivated for r in results)}, "
            f"ended in events {sum(r.ended_in_events for r in results)}/{len(results)}, "
            f"recovery calls max {max(recovery)} median {statistics.median(recovery):g}, "
            f"races that overlapped {sum(r.raced for r in races)}/{len(races)}, "
            f"wall {sum(r.wall_seconds for r in results):.0f} s")


# ---------------------------------------------------------------------------------------------------- processes


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _stop(processes: Iterable[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGTERM each by PID, then SIGKILL those that do not go."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Worker:
    """One function app process under the host runner."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    started: float

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @property
    def up(self) -> bool:
        """The runner printed its functions (its first line; the receive loops start right after)."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text.startswith("Functions:") or "\nFunctions:" in text

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


# ---------------------------------------------------------------------------------------------------- the rig


class ChaosRig:
    """Azurite and the Graph emulator for every round; a Service Bus stand-in and the workers per round."""

    def __init__(self, workdir: Path | None = None, *, drives: int = 2100,
                 say: Callable[[str], None] | None = None, keep_logs: bool = False) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="chaos-"))
        self.drives = drives
        self.say = say or (lambda _line: None)
        self.keep_logs = keep_logs
        self.azurite: Azurite | None = None
        self._graph: subprocess.Popen[bytes] | None = None
        self.graph_root = ""
        self.admin: AdminClient | None = None
        self.token = make_token(ROLES, app_id=APP_ID, lifetime=6 * 3600)

    def __enter__(self) -> ChaosRig:
        try:
            self.azurite = start_azurite()
            port = free_port()
            self._graph = subprocess.Popen(
                [sys.executable, "-m", "emulators.graph", "--port", str(port), "--drives", str(self.drives),
                 "--log-level", "WARNING"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_port(port, self._graph)
            self.graph_root = f"http://127.0.0.1:{port}"
            self.admin = AdminClient(self.graph_root)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._graph is not None:
            _stop([self._graph])
        if self.azurite is not None:
            self.azurite.stop()
        if self._own_workdir and not self.keep_logs and not any(self.workdir.iterdir()):
            self.workdir.rmdir()  # what is left are the logs of rounds that broke a promise

    # -- one round ---------------------------------------------------------------------------------

    def run_round(self, plan: RoundPlan) -> RoundResult:
        """Run one round and count what it left. A round whose promises held leaves no files behind."""
        assert self.admin is not None
        t0 = time.monotonic()
        round_dir = self.workdir / f"{plan.name}-{plan.seed}"
        round_dir.mkdir(parents=True, exist_ok=True)
        request_id = f"chaos-{plan.seed}-{uuid.uuid4().hex[:8]}"
        result = RoundResult(plan, request_id)
        points = self._reset_graph(plan)
        body = json.dumps({"requestId": request_id, "incidentId": f"INC-chaos-{plan.seed}",
                           "activate": plan.activate, "artifacts": [{"restorePointId": p} for p in points]})
        with self._service_bus(plan, round_dir) as connection, \
                ServiceBusClient.from_connection_string(connection) as bus, \
                bus.get_queue_receiver(QUEUE, prefetch_count=0) as peeker:
            peeker.peek_messages(max_message_count=1, sequence_number=1)  # its link is open before the round
            round_ = _Round(self, plan, result, round_dir, self._settings(plan, connection),
                            self._host_json(plan, round_dir), bus, peeker, body)
            try:
                kill_time = round_.drive()
                self._settle(plan, result, peeker, kill_time)
            finally:
                _stop([w.process for w in round_.workers])
                for worker in round_.workers:
                    worker.log.close()
                result.logs = [str(w.log_path) for w in round_.workers]
            calls = self.admin.calls()
            unheld = self._count_graph(plan, result, points)
            self._count_calls(plan, result, calls)
            self._count_events(result, bus, unheld)
        result.wall_seconds = time.monotonic() - t0
        if not result.problems and not self.keep_logs:
            shutil.rmtree(round_dir, ignore_errors=True)
            result.logs = []
        return result

    def _reset_graph(self, plan: RoundPlan) -> list[str]:
        """A fresh tenant, clock, call log and latency for the round; its restore points, one per drive."""
        assert self.admin is not None
        self.admin.reset(seed=plan.seed, drives=max(self.drives, plan.points), **GRAPH_LIFECYCLE)
        self.admin.set_faults(GRAPH_LATENCY, seed=plan.seed)
        points = [p["id"] for p in self.admin.samples(plan.points)["restorePoints"]][:plan.points]
        if len(points) < plan.points:
            raise RuntimeError(f"the emulator has {len(points)} restore points, {plan.points} asked")
        return points

    @contextlib.contextmanager
    def _service_bus(self, plan: RoundPlan, round_dir: Path) -> Iterator[str]:
        """A fresh stand-in for the round: the repository's entities, the round's lock on the request queue."""
        config = json.loads((ROOT / "emulators" / "servicebus" / "Config.json").read_text(encoding="utf-8"))
        for namespace in config["UserConfig"]["Namespaces"]:
            for queue in namespace["Queues"]:
                if queue["Name"] == QUEUE:
                    queue["Properties"]["LockDuration"] = f"PT{plan.lock_seconds:g}S"
                    queue["Properties"]["MaxDeliveryCount"] = MAX_DELIVERY_COUNT
        path = round_dir / "Config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "emulators.servicebus", "--port", str(port), "--config",
                                    str(path)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port(port, process)
            yield SERVICE_BUS_CONNECTION.format(port=port)
        finally:
            _stop([process])

    def _settings(self, plan: RoundPlan, connection: str) -> dict[str, str]:
        assert self.azurite is not None
        return {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "ServiceBusConnection": connection,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "RESTORE_REQUESTS_QUEUE": QUEUE,
            "BROWSE_REQUESTS_QUEUE": "browse-requests",
            "ACTIVATION_REQUESTS_QUEUE": "activation-requests",
            "RESTORE_EVENTS_TOPIC": TOPIC,
            "GRAPH_ACCESS_TOKEN": self.token,
            "GRAPH_CLIENT_ID": APP_ID,
            "LEDGER_TABLE": f"chaos{plan.seed}x{uuid.uuid4().hex[:10]}",
            "GRAPH_CREATE_CONCURRENCY": str(plan.create_concurrency),
            **RECOVERY_SETTINGS,
        }

    @staticmethod
    def _host_json(plan: RoundPlan, round_dir: Path) -> Path:
        """The repository's host.json; in a race, one call at a time per worker and no lock renewal, so a lock
        that lapses hands the message to the other process (a lost lock in production)."""
        doc = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
        if plan.race:
            service_bus = doc.setdefault("extensions", {}).setdefault("serviceBus", {})
            service_bus["maxAutoLockRenewalDuration"] = "00:00:00"
            service_bus["maxConcurrentCalls"] = 1
        path = round_dir / "host.json"
        path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        return path

    def start_worker(self, name: str, settings: dict[str, str], host_json: Path, round_dir: Path) -> Worker:
        """`python -m emulators.functions_host` with the round's settings; A on /v1.0, B on /beta."""
        values = {**settings, "GRAPH_BASE_URL": self.graph_root + _PREFIXES[name]}
        settings_path = round_dir / f"settings-{name}.json"
        settings_path.write_text(json.dumps({"IsEncrypted": False, "Values": values}, indent=2), encoding="utf-8")
        log_path = round_dir / f"worker-{name}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "emulators.functions_host", "--app", "function_app", "--settings",
             str(settings_path), "--host-json", str(host_json), "--no-http"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return Worker(name, process, log_path, log, time.monotonic())

    def _settle(self, plan: RoundPlan, result: RoundResult, peeker: ServiceBusReceiver, kill_time: float | None,
                timeout: float = 150.0) -> None:
        """Until the request queue is empty (locked and scheduled messages count), then until the tracker has
        run past the reserved-slot grace twice. With `activate: true`, until no draft is left, or none changed for
        the grace and two tracker runs once a tracker lease the killed worker may have held has run out."""
        assert self.admin is not None
        deadline = time.monotonic() + timeout
        while waiting := peeker.peek_messages(max_message_count=10, sequence_number=1):
            result.peeked(waiting)
            if time.monotonic() > deadline:
                result.settled = False
                break
            time.sleep(0.25)
        emptied = time.monotonic()
        result.queue_emptied_at = time.time()
        quiet = RESERVED_SLOT_GRACE_SECONDS + 2 * TRACKER_PERIOD_SECONDS + 1.0
        tail_until = max(emptied, (kill_time or emptied) + RESERVED_SLOT_GRACE_SECONDS) \
            + 2 * TRACKER_PERIOD_SECONDS + 0.5
        lease_out = (kill_time + TRACKER_LEASE_SECONDS if kill_time is not None else emptied) + quiet
        drafts, changed = -1, emptied
        while True:
            now = time.monotonic()
            if plan.activate:
                count = int(self.admin.state(sessions=False)["statusCounts"].get("draft", 0))
                if count != drafts:
                    drafts, changed = count, now
            if now >= tail_until and (not plan.activate or drafts == 0 or (now >= lease_out
                                                                              and now - changed >= quiet)):
                return
            if now > deadline + TRACKER_LEASE_SECONDS:
                return
            time.sleep(0.5)

    # -- counting ----------------------------------------------------------------------------------

    def _count_graph(self, plan: RoundPlan, result: RoundResult, points: list[str]) -> set[str]:
        """Sessions and their restore points as Graph holds them; returns the planned points no session holds."""
        assert self.admin is not None
        self.admin.clear_faults()  # the rig's own reads need no latency (the call log is already taken)
        state = self.admin.state()
        sessions = [s for s in state["sessions"] if s.get("workload", "oneDrive") == "oneDrive"]
        result.sessions = len(sessions)
        holders: dict[str, list[str]] = {}
        for session in sessions:
            for point in self._session_points(session["id"]):
                holders.setdefault(point, []).append(session["id"])
        result.points_in_two_sessions = sum(1 for ids in holders.values() if len(ids) > 1)
        for start in range(0, len(points), PER_SESSION):
            holding = {sid for p in points[start:start + PER_SESSION] for sid in holders.get(p, [])}
            result.duplicate_sessions += max(0, len(holding) - 1)
        result.drafts_left = sum(1 for s in sessions if s["status"] == "draft")
        if plan.activate:
            free = max(0, ACTIVE_CAP - int(state["activeCount"]))
            result.unactivated = min(result.drafts_left, free)
        return {p for p in points if p not in holders}

    @staticmethod
    def _count_calls(plan: RoundPlan, result: RoundResult, calls: list[dict[str, Any]]) -> None:
        """Creates, activations and recovery calls from the emulator's call log, by worker.

        Recovery calls are what a reconcile reads: session listings (nothing else lists sessions) and artifact
        listings of sessions not yet activated (the tracker lists only the artifacts of sessions that ended).
        Their bound, per reconcile: one listing of every page, and one artifact listing for each draft that no
        ledger row holds, which are at most the creates the dead (or failed) worker had in flight,
        GRAPH_CREATE_CONCURRENCY. A reconcile that listed, or read a draft's artifacts, once per marked batch
        would exceed it as soon as two batches were found marked with answers lost."""
        ok = [c for c in calls if 200 <= int(c["status"]) < 300]
        creates = [c for c in ok if c["operation"] == "createRestoreSession"]
        result.first = _worker(creates[0]) if creates else "A"
        second = "B" if result.first == "A" else "A"
        result.creates = len(creates)
        result.creates_second = sum(1 for c in creates if _worker(c) == second)
        last_first_create = max((int(c["seq"]) for c in creates if _worker(c) == result.first), default=0)
        first_busy_until = max((float(c["wallTime"]) for c in creates if _worker(c) == result.first), default=0.0)
        accepted: dict[str, int] = {}
        activated_at: dict[str, int] = {}
        for call in ok:
            sid = _session_id(call)
            if call["operation"] == "activateRestoreSession" and sid:
                accepted[sid] = accepted.get(sid, 0) + 1
                activated_at.setdefault(sid, int(call["seq"]))
        result.double_activations = sum(1 for n in accepted.values() if n > 1)
        last_activation = max((float(c["wallTime"]) for c in ok if c["operation"] == "activateRestoreSession"),
                              default=0.0)
        if plan.activate and last_activation and result.queue_emptied_at:
            result.activation_late_seconds = max(0.0, last_activation - result.queue_emptied_at)
        sessions_seen = 0
        pages = 1
        for call in calls:
            seq = int(call["seq"])
            if call["operation"] == "createRestoreSession" and 200 <= int(call["status"]) < 300:
                sessions_seen += 1
            sid = _session_id(call)
            listing = call["operation"] == "listRestoreSessions"
            draft_artifacts = (call["operation"] == "listDriveRestoreArtifacts" and sid is not None
                               and seq < activated_at.get(sid, 1 << 62))
            if not (listing or draft_artifacts):
                continue
            result.recovery_calls += 1
            result.recovery_calls_second += _worker(call) == second
            if listing and "skiptoken" not in str(call.get("query") or "").lower():
                result.reconciles += 1
                pages = max(pages, math.ceil(max(1, sessions_seen) / PAGE_SIZE))
            if _worker(call) == second and seq < last_first_create:
                result.raced = True
        result.raced = plan.race and (result.raced or any(
            _worker(c) == second and int(c["seq"]) < last_first_create for c in creates) or any(
            when < first_busy_until and returned >= 1 for when, returned in result.redeliveries))
        result.recovery_bound = result.reconciles * (pages + plan.create_concurrency)

    def _session_points(self, session_id: str) -> list[str]:
        """A session's restore points, read through Graph's own listing (every page)."""
        url: str | None = (f"{self.graph_root}/v1.0/solutions/backupRestore/oneDriveForBusinessRestoreSessions/"
                           f"{session_id}/driveRestoreArtifacts")
        found: list[str] = []
        while url:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                page = json.loads(answer.read())
            found.extend(str(a["restorePoint"]["id"]) for a in page.get("value", []))
            url = page.get("@odata.nextLink")
        return found

    @staticmethod
    def _count_events(result: RoundResult, bus: ServiceBusClient, unheld: set[str]) -> None:
        mine = [e for e in drain_events(bus) if e.get("subject") == result.request_id]
        terminal = [e["type"] for e in mine if e["type"] in TERMINAL_TYPES]
        result.terminal_event = terminal[-1] if terminal else None
        failed = {str(f["restorePointId"]) for e in mine if e["type"] == "restore.session.failed"
                  for f in e["data"].get("failures", [])}
        result.failed_points = len(failed)
        result.missing_points = len(unheld - failed)


class _Round:
    """The moving part of a round: starting workers, following A in the call log, killing it."""

    def __init__(self, rig: ChaosRig, plan: RoundPlan, result: RoundResult, round_dir: Path,
                 settings: dict[str, str], host_json: Path, bus: ServiceBusClient, peeker: ServiceBusReceiver,
                 body: str) -> None:
        self.rig, self.plan, self.result, self.round_dir = rig, plan, result, round_dir
        self.settings, self.host_json, self.bus, self.peeker, self.body = settings, host_json, bus, peeker, body
        self.workers: list[Worker] = []

    def start(self, name: str) -> Worker:
        worker = self.rig.start_worker(name, self.settings, self.host_json, self.round_dir)
        self.workers.append(worker)
        return worker

    def send(self) -> None:
        with self.bus.get_queue_sender(QUEUE) as sender:
            sender.send_messages(ServiceBusMessage(self.body, message_id=self.result.request_id))

    def drive(self) -> float | None:
        """Start the workers as the plan says and kill A at its planned write; returns when A died (or None)."""
        if self.plan.race:
            a = self.start("A")
            time.sleep(self.plan.b_delay)
            b = self.start("B")
            deadline = time.monotonic() + 30
            while not (a.up and b.up):
                for worker in (a, b):
                    if worker.process.poll() is not None:
                        raise RuntimeError(f"worker {worker.name} exited:\n{worker.tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the workers did not start:\n{a.tail()}\n{b.tail()}")
                time.sleep(0.1)
            time.sleep(TRACKER_PERIOD_SECONDS + 0.7)  # a tracker run in each has loaded the SDKs: both warm
            self.send()
        else:
            self.send()
            self.start("A")
        if not self.plan.kill:
            return None
        return self._kill_first()

    def _kill_first(self) -> float:
        """Follow the first creating worker's accepted writes in the call log; SIGKILL it at the planned one.
        In a race, peek at the queue meanwhile, to see the message come back while the first still works."""
        assert self.rig.admin is not None
        by_name = {w.name: w for w in self.workers}
        seen, writes, creates = 0, 0, 0
        first: str | None = None
        kill_due: float | None = None
        last_write, next_peek = time.monotonic(), 0.0
        deadline = time.monotonic() + 90
        peeker = self.peeker
        while True:
            now = time.monotonic()
            if self.plan.race and now >= next_peek:
                self.result.peeked(peeker.peek_messages(max_message_count=10, sequence_number=1))
                next_peek = now + 0.25
            for call in self.rig.admin.calls(since=seen):
                seen = max(seen, int(call["seq"]))
                operation = call["operation"]
                if not 200 <= int(call["status"]) < 300 or operation not in WRITES:
                    continue
                if first is None and operation == "createRestoreSession":
                    first = _worker(call)
                if _worker(call) == first:
                    writes += 1
                    creates += operation == "createRestoreSession"
                    last_write = now
            for worker in self.workers:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker {worker.name} exited by itself:\n{worker.tail()}")
            if kill_due is None and writes >= self.plan.kill_after_writes:
                kill_due = now + self.plan.kill_delay
            if kill_due is None and first is not None and now - last_write > 3.0:
                kill_due = now  # it wrote less than planned and went quiet: it dies after its end
            if kill_due is not None and now >= kill_due and first is not None:
                by_name[first].kill()
                killed = time.monotonic()
                self.result.killed_after = (creates, writes - creates)
                self.result.killed_at = f"{creates}/{self.plan.batches} creates" + (
                    f", {writes - creates} activations" if self.plan.activate else "")
                self.rig.say(f"{self.plan.name}: worker {first} killed after {self.result.killed_at}")
                if not self.plan.race:
                    self.start("B")
                return killed
            if now > deadline:
                raise RuntimeError(f"no worker made {self.plan.kill_after_writes} Graph writes in 90 s:\n"
                                   + "\n".join(w.tail() for w in self.workers))
            time.sleep(0.02)


def drain_events(bus: ServiceBusClient) -> Iterator[dict[str, Any]]:
    """Every event waiting on the subscription that receives them all."""
    with bus.get_subscription_receiver(TOPIC, SUBSCRIPTION, prefetch_count=0) as receiver:
        while True:
            batch = receiver.receive_messages(max_message_count=100, max_wait_time=1.0)
            if not batch:
                return
            for message in batch:
                yield json.loads(b"".join(message.body))
                receiver.complete_message(message)


def _worker(call: dict[str, Any]) -> str:
    path = str(call.get("path", ""))
    for name, prefix in _PREFIXES.items():
        if path.startswith(prefix + "/"):
            return name
    return "?"


def _session_id(call: dict[str, Any]) -> str | None:
    match = _SESSION_PATH.match(str(call.get("path", "")))
    return match.group(1).lower() if match else None
