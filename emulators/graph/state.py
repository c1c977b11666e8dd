"""Restore and browse sessions: the documented rules and the lazily computed lifecycle, for every workload.

Nothing here runs in the background.  Activation computes each artifact's transition times; statuses are
derived from the clock when read, and a heap of completion times is settled before every request so the
active-session count (for the cap, shared by all workloads) and the "unit being restored" index stay exact as
the clock moves.

How long a session is in progress depends on its size: its workload's `SessionTiming` gives a fixed part
and the work per artifact, done at most `parallelism` artifacts at a time (see README, "Timeline").
"""

from __future__ import annotations

import base64
import heapq
import itertools
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .clock import iso, parse_iso
from .config import ONEDRIVE, SHAREPOINT, EmulatorConfig
from .errors import GraphError, bad_request, is_guid
from .faults import FaultInjector
from .seed import SITES_HOST, BrowseTree, Drive, Mailbox, RestorePointRef, Site, Tenant, Unit, hashed_int, hashed_uuid
from .workloads import ARTIFACT_KEYS, SPECS, Workload

TERMINAL_ARTIFACT = ("succeeded", "failed")
DESTINATIONS = ("new", "inPlace")
ODB_SESSION_TYPE = SPECS[ONEDRIVE].session_type
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SITE_URL_RE = re.compile(r"^https?://[^\s/]+\.[^\s/]+(/[^\s]*)?$")

ARTIFACT_ERROR_MESSAGES = {
    "ArtifactNotFound": "The artifact was not found.",
    "InvalidRestoreTime": "The restore point time is invalid or beyond the retention period.",
    "ArtifactCannotBeRestored": "The artifact cannot be restored (preservation lock or TenantDivestiture).",
    "DuplicateArtifactRestoreRequest": (
        "An ongoing Restore was found for the given restore artifact. Please wait till its completion and try again."
    ),
    "UnknownError": "An unknown error occurred while restoring the artifact.",
}


@dataclass(slots=True, eq=False)
class Artifact:
    id: str
    session: Session
    unit: Unit
    created: float
    destination: str = "new"
    point: RestorePointRef | None = None
    kind: str = "unit"  # unit (a whole drive, site or mailbox) | granular (an item of a browse session)
    browse_session_id: str = ""
    item_key: str = ""
    item_url: str = ""
    library_url: str = ""  # granular: the web URL of the document library that holds the item
    restore_point_time: float = 0.0
    error_code: str | None = None
    t_sched: float = 0.0
    t_start: float = 0.0
    t_done: float = 0.0
    done: bool = False
    # the restore's outputs, set at activation: a site (id, name, URL), a mailbox folder (id, name, item count)
    # or a granular item (key, path, URL)
    restored: tuple[Any, ...] | None = None

    def status(self, now: float) -> str:
        s = self.session
        if s.activated_at is None:
            return "added"
        if self.done or now >= self.t_done:
            return "failed" if self.error_code else "succeeded"
        if now < self.t_sched:
            return "scheduling"
        if now < self.t_start:
            return "scheduled"
        return "inProgress"


@dataclass(slots=True, eq=False)
class BulkRequest:
    id: str
    session: Session
    display_name: str
    destination: str
    start: float | None
    end: float | None
    preference: str
    tags: str
    resources: list[str]  # drives (emails), siteWebUrls or mailboxes (emails), as the workload names them
    ids: list[str]  # directoryObjectIds (drives, mailboxes) or siteIds
    protection_unit_ids: list[str]
    created: float
    created_by: dict[str, Any]
    modified: float
    status: str = "active"
    error: dict[str, Any] | None = None


@dataclass(slots=True, eq=False)
class Session:
    id: str
    seq: int
    job_type: str
    created: float
    created_by: dict[str, Any]
    modified: float
    modified_by: dict[str, Any]
    destination: str | None = None
    workload: str = ONEDRIVE
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    unit_indices: set[int] = field(default_factory=set)  # the protection units (of the session's workload) in it
    point_ids: set[str] = field(default_factory=set)
    bulk: dict[str, BulkRequest] = field(default_factory=dict)
    activated_at: float | None = None
    active_at: float = 0.0
    terminal_at: float | None = None
    completed: int = 0
    failed: int = 0

    def status(self, now: float) -> str:
        if self.activated_at is None:
            return "draft"
        if self.terminal_at is not None and now >= self.terminal_at:
            if self.failed == 0:
                return "completed"
            if self.completed == 0:
                return "failed"
            return "completedWithError"
        if now < self.active_at:
            return "activating"
        return "active"


@dataclass(slots=True, eq=False)
class BrowseSession:
    id: str
    seq: int
    point: RestorePointRef
    created: float
    ready_at: float
    expires_at: float
    created_by: dict[str, Any]
    workload: str = ONEDRIVE
    tree: BrowseTree | None = None

    def status(self, now: float) -> str:
        return "created" if now >= self.ready_at else "creating"


def session_error_not_found(sid: str) -> GraphError:
    return GraphError(404, "RestoreSessionNotFound", f"Restore session with id '{sid}' was not found.")


def browse_session_not_found(bid: str) -> GraphError:
    # Guess: an expired (deleted) browse session answers 404 BrowseSessionNotFound for GET and browse.
    return GraphError(404, "BrowseSessionNotFound", f"Browse session with id '{bid}' was not found.")


def encode_token(*parts: object) -> str:
    raw = "|".join(str(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str, n: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("BadRequest", "The $skiptoken is not valid.") from exc
    parts = raw.split("|")
    if len(parts) != n:
        raise bad_request("BadRequest", "The $skiptoken is not valid.")
    return parts


def _wrong_workload(pid: str, wanted: Workload, actual: str) -> GraphError:
    # A restore point of another workload is refused like any invalid restore point (400 InvalidRestorePoint).
    return bad_request(
        "InvalidRestorePoint",
        f"The restore point '{pid}' is not valid for a {wanted.label} restore: it belongs to a "
        f"{SPECS[actual].label} protection unit.",
    )


class EmulatorState:
    def __init__(self, config: EmulatorConfig, now: float) -> None:
        self.config = config
        self.tenant = Tenant(
            seed=config.seed,
            drive_count=config.drives,
            anchor=now if config.start_time is None else config.start_time,
            unprotected_fraction=config.unprotected_fraction,
            expired_per_drive=config.expired_points_per_drive,
            site_count=config.sites,
            mailbox_count=config.mailboxes,
        )
        self.faults = FaultInjector(config.seed)
        self.rng = random.Random(f"state:{config.seed}")
        self.sessions: dict[str, Session] = {}
        self.session_order: list[Session] = []
        self.browse_sessions: dict[str, BrowseSession] = {}
        self.browse_order: list[BrowseSession] = []
        self.bulk_index: dict[str, BulkRequest] = {}
        # (workload, unit index) -> the artifact restoring that drive, site or mailbox now
        self.restoring: dict[tuple[str, int], Artifact] = {}
        self.events: list[tuple[float, int, Artifact | Session]] = []
        self._event_seq = itertools.count()
        self._session_seq = itertools.count()
        self.active_count = 0
        self.max_active = 0
        self.activations = 0
        self.rejected_activations = 0

    # ---- ids ---------------------------------------------------------------------------------------------
    def new_guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ---- lifecycle -----------------------------------------------------------------------------------------
    def settle(self, now: float) -> None:
        events = self.events
        while events and events[0][0] <= now:
            t, _, obj = heapq.heappop(events)
            if isinstance(obj, Session):
                self._finish_session(obj, t)
                continue
            art = obj
            art.done = True
            s = art.session
            if art.error_code:
                s.failed += 1
            else:
                s.completed += 1
            key = (s.workload, art.unit.index)
            if self.restoring.get(key) is art:
                del self.restoring[key]
            if s.completed + s.failed >= len(s.artifacts):
                self._finish_session(s, t)

    def _finish_session(self, s: Session, t: float) -> None:
        if s.terminal_at is not None:
            return
        s.terminal_at = max(t, s.active_at)
        self.active_count -= 1

    def activate(
        self, sid: str, principal_identity: dict[str, Any], now: float, workload: str | None = None
    ) -> Session:
        s = self.get_session(sid, workload)
        if s.activated_at is not None:
            raise GraphError(
                403, "RestoreSessionActionNotAllowed", "Restore session can only be activated in Draft state"
            )
        if not s.artifacts and not s.bulk:
            # Guess: Graph does not document activating an empty session; refuse it like an empty create.
            raise bad_request("InvalidArtifactRequest", "The restore session has no artifacts to restore.")
        if self.active_count >= self.config.active_cap:
            # One tenant-wide budget: the cap counts the sessions of every workload.
            self.rejected_activations += 1
            raise GraphError(
                500,
                "TooManyActiveRestoreSessions",
                f"Attempt to activate more than {self.config.active_cap} sessions simultaneously. "
                "Temporary error: Too many active restore sessions.",
            )
        cfg = self.config
        for bulk in s.bulk.values():
            self._resolve_bulk(s, bulk, now)
        s.activated_at = now
        s.active_at = now + cfg.activating_seconds
        s.modified = now
        s.modified_by = principal_identity
        self.active_count += 1
        self.activations += 1
        self.max_active = max(self.max_active, self.active_count)
        t_sched = now + cfg.activating_seconds
        t_start = t_sched + cfg.scheduled_seconds
        jitter = cfg.in_progress_jitter_seconds
        timing = cfg.session_timing(s.workload)
        # Guess: Graph publishes end-to-end restore times only; how they split into phases and workers is ours.
        # Bounded parallelism: each of the session's `parallelism` workers takes the next artifact (in the
        # session's order) when it is free; the heap holds when each worker is free again, measured from the
        # end of the fixed part. Artifacts refused right after scheduling take no worker.
        workers = [0.0] * max(1, min(timing.parallelism, len(s.artifacts)))
        for art in s.artifacts.values():
            art.t_sched = t_sched
            point = art.point
            code: str | None = None
            key = (s.workload, art.unit.index)
            if point is not None and self.tenant.is_expired(point, now):
                code = "InvalidRestoreTime"
            else:
                owner = self.restoring.get(key)
                if owner is not None and owner.session is not s:
                    code = "DuplicateArtifactRestoreRequest"
            if code is not None:
                art.error_code = code
                art.t_start = art.t_done = t_sched
            else:
                art.error_code = self.faults.artifact_failure(art.unit.id)
                art.t_start = t_start
                free_at = heapq.heappop(workers)
                busy_until = free_at + timing.per_artifact_seconds + (self.rng.uniform(0, jitter) if jitter else 0.0)
                heapq.heappush(workers, busy_until)
                art.t_done = t_start + timing.fixed_seconds + busy_until
                self.restoring.setdefault(key, art)
                if art.error_code is None:
                    art.restored = self._restored(art, now)
            heapq.heappush(self.events, (art.t_done, next(self._event_seq), art))
        if not s.artifacts:
            heapq.heappush(self.events, (s.active_at, next(self._event_seq), s))
        return s

    def _restored(self, art: Artifact, now: float) -> tuple[Any, ...]:
        if art.kind == "granular":
            return self._restored_item(art, now)
        unit = art.unit
        if isinstance(unit, Drive):
            return self._restored_site(art)
        if isinstance(unit, Site):
            return self._restored_team_site(art, unit)
        return self._restored_folder(art, unit, now)

    def _restored_site(self, art: Artifact) -> tuple[str, str, str]:
        d = art.unit
        assert isinstance(d, Drive)
        if art.destination == "inPlace":
            return d.site_id, d.display_name, d.web_url
        n = d.restore_counter
        d.restore_counter += 1
        # Graph appends R<n> to the user's site name for restores to a new URL (R0, R1, ...).
        name = f"{d.user_token}R{n}"
        site_host = d.web_url.split("/personal/")[0]
        return hashed_uuid("restored-site", self.tenant.seed, d.index, n), name, f"{site_host}/sites/{name}"

    def _restored_team_site(self, art: Artifact, site: Site) -> tuple[str, str, str]:
        if art.destination == "inPlace":
            return site.site_id, site.name, site.web_url
        n = site.restore_counter
        site.restore_counter += 1
        # "the new site URL will have an 'R' followed by a number concatenated to the end" (R0, R1, ...)
        name = f"{site.url_name}R{n}"
        site_id = f"{site.site_id.split(',')[0]},{hashed_uuid('restored-team-site', self.tenant.seed, site.index, n)}"
        site_id += f",{hashed_uuid('restored-team-web', self.tenant.seed, site.index, n)}"
        return site_id, name, f"{SITES_HOST}/sites/{name}"

    def _restored_folder(self, art: Artifact, mailbox: Mailbox, now: float) -> tuple[str, str, int]:
        # Guess: how many items a mailbox restore brings back is not predictable from the docs (only items
        # changed or deleted since the restore point are restored); a seeded count, sometimes 0.
        assert art.point is not None
        count = max(0, hashed_int(-500, 4000, "items", self.tenant.seed, art.point.id, art.session.id))
        if art.destination == "inPlace":
            # Guess: an in-place restore reports the mailbox itself (its alias) as the folder restored into.
            return hashed_uuid("mailbox-root", self.tenant.seed, mailbox.id), mailbox.email.split("@")[0], count
        # Microsoft 365 Backup restores into "a newly created folder named Restored Items YYYY-DD-MM, HH:MM".
        stamp = time.strftime("%Y-%d-%m, %H:%M", time.gmtime(now))
        folder_id = hashed_uuid("restored-folder", self.tenant.seed, art.session.id, mailbox.id)
        return folder_id, f"Restored Items {stamp}", count

    def _restored_item(self, art: Artifact, now: float) -> tuple[str, str, str]:
        """Where a granular item is restored: (restoredItemKey, restoredItemPath, restoredItemWebUrl)."""
        relative = art.item_url[len(art.library_url):].lstrip("/")
        if art.destination == "inPlace":
            parent = art.item_url.rsplit("/", 1)[0]
            return art.item_key, urlsplit(parent).path, art.item_url
        # Guess: a granular session restores its items into one new folder at the root of the item's library,
        # named after the activation time; each item keeps its path below the library.
        folder = f"{art.library_url}/RestoredItems-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}"
        library_key = ",".join(art.item_key.split(",")[:3])
        key = f"{library_key},{hashed_uuid('restored-item', self.tenant.seed, art.session.id, art.item_key)}"
        return key, urlsplit(folder).path, f"{folder}/{relative}" if relative else folder

    # ---- sessions --------------------------------------------------------------------------------------------
    def get_session(self, sid: str, workload: str | None = None) -> Session:
        """A session by id; `workload` (a typed collection such as sharePointRestoreSessions) must match."""
        if not is_guid(sid):
            raise bad_request("InvalidRestoreSessionId", f"The restore session id '{sid}' is not valid.")
        s = self.sessions.get(sid.lower())
        if s is None or (workload is not None and s.workload != workload):
            raise session_error_not_found(sid)
        return s

    def create_session(
        self, body: Any, identity: dict[str, Any], now: float, workload: str = ONEDRIVE
    ) -> Session:
        spec = SPECS[workload]
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise bad_request("BadRequest", "The request body must be a JSON object.")
        self._refuse_foreign_collections(spec, body)
        unit_items = body.get(spec.artifacts)
        granular_items = body.get(spec.granular) if spec.granular else None
        if unit_items is not None and granular_items is not None:
            raise bad_request(
                "InvalidArtifactRequest",
                f"{spec.artifacts} and {spec.granular} cannot be combined in one request.",
            )
        job_type = "standard"
        s = Session(
            id=self.new_guid(),
            seq=next(self._session_seq),
            job_type=job_type,
            created=now,
            created_by=identity,
            modified=now,
            modified_by=identity,
            workload=workload,
        )
        if unit_items is not None:
            arts = self._parse_unit_artifacts(s, unit_items, now, patch=False)
            self._add(s, arts)
        elif granular_items is not None:
            s.job_type = "granular"
            arts = self._parse_granular_artifacts(s, granular_items, now, patch=False)
            self._add(s, arts)
        # With no payload Graph creates an empty standard session.
        self.sessions[s.id] = s
        self.session_order.append(s)
        return s

    @staticmethod
    def _refuse_foreign_collections(spec: Workload, body: dict[str, Any]) -> None:
        for key in body:
            name = key.removesuffix("@delta")
            owner = ARTIFACT_KEYS.get(name)
            if owner is None or name in (spec.artifacts, spec.granular):
                continue
            if owner == spec.name:
                # Guess: granular Exchange restores (granularMailboxRestoreArtifacts, found with an artifactQuery
                # search) are in Graph but not in this emulator.
                raise bad_request("BadRequest", f"{name} is not supported by this emulator.")
            raise bad_request(
                "BadRequest", f"The property '{name}' does not exist on type '{spec.session_type.lstrip('#')}'."
            )

    def _add(self, s: Session, arts: list[Artifact]) -> None:
        for art in arts:
            s.artifacts[art.id] = art
            s.unit_indices.add(art.unit.index)
            if art.point is not None:
                s.point_ids.add(art.point.id)
            s.destination = art.destination

    def _limit_checks(self, items: Any, *, patch: bool) -> list[Any]:
        if items is None or not isinstance(items, list) or not items:
            raise bad_request("InvalidArtifactRequest", "The restore artifacts list is empty or null.")
        limit = self.config.max_artifacts_per_request
        if len(items) > limit:
            if patch:
                raise bad_request(
                    "RestoreArtifactsLimitBreached", f"Exceeded maximum artifacts limit of {limit} for single request"
                )
            raise GraphError(
                413,
                "RestoreArtifactsLimitBreached",
                f"Request Exceeded maximum artifacts limit of {limit} for single request.",
            )
        return items

    @staticmethod
    def _check_destinations(s: Session, dests: set[str]) -> None:
        if s.destination is not None:
            dests = dests | {s.destination}
        if len(dests) > 1:
            raise bad_request(
                "DifferentRestoreDestinationType",
                "Restoring to both a new location and the same URL in a single restore session is not supported.",
            )

    def _parse_unit_artifacts(self, s: Session, items: Any, now: float, *, patch: bool) -> list[Artifact]:
        """driveRestoreArtifacts, siteRestoreArtifacts or mailboxRestoreArtifacts: a restore point each."""
        # Guess: the order of checks (limit, empty, destination, mix, restore point, duplicates) is ours.
        spec = SPECS[s.workload]
        items = self._limit_checks(items, patch=patch)
        parsed: list[tuple[str, str]] = []
        for item in items:
            if not isinstance(item, dict):
                raise bad_request("InvalidArtifactRequest", "Each restore artifact must be an object.")
            dest = item.get("destinationType")
            if dest not in DESTINATIONS:
                raise bad_request("InvalidPathType", f"The destination type '{dest}' is not valid.")
            parsed.append((dest, _restore_point_id(item.get("restorePoint"))))
        self._check_destinations(s, {d for d, _ in parsed})
        refs: list[RestorePointRef] = []
        for _, pid in parsed:
            ref = self.tenant.resolve_point(pid) if pid else None
            if ref is None:
                raise bad_request("InvalidRestorePoint", f"The restore point '{pid}' is not valid.")
            if ref.unit.workload != s.workload:
                raise _wrong_workload(pid, spec, ref.unit.workload)
            if self.tenant.is_expired(ref, now):
                raise bad_request("InvalidRestorePoint", f"The restore point '{pid}' has expired.")
            refs.append(ref)
        # Guess: a duplicate is the same restore point or the same protection unit twice, in the list or already
        # in the session (Graph documents DuplicateArtifactInList without saying what counts as a duplicate).
        seen: set[int] = set(s.unit_indices)
        for ref in refs:
            if ref.unit.index in seen:
                raise bad_request(
                    "DuplicateArtifactInList",
                    f"Duplicate artifact in the list: protection unit '{ref.unit.id}' appears more than once.",
                )
            seen.add(ref.unit.index)
        out = []
        for (dest, _), ref in zip(parsed, refs, strict=True):
            out.append(
                Artifact(
                    id=self.new_guid(),
                    session=s,
                    unit=ref.unit,
                    created=now,
                    destination=dest,
                    point=ref,
                    restore_point_time=ref.time,
                )
            )
        return out

    def _parse_granular_artifacts(self, s: Session, items: Any, now: float, *, patch: bool) -> list[Artifact]:
        """granularDriveRestoreArtifacts or granularSiteRestoreArtifacts: an item key of a browse session each."""
        spec = SPECS[s.workload]
        items = self._limit_checks(items, patch=patch)
        out: list[Artifact] = []
        seen: set[str] = {a.item_key for a in s.artifacts.values()}
        units = {a.unit.index for a in s.artifacts.values()}
        dests: set[str] = set()
        for item in items:
            if not isinstance(item, dict):
                raise bad_request("InvalidArtifactRequest", "Each restore artifact must be an object.")
            bsid = item.get("browseSessionId")
            # The create example names the item by `id`, the PATCH example by `itemKey`: both are accepted.
            key = item.get("itemKey") or item.get("id")
            if not isinstance(bsid, str) or not isinstance(key, str) or not key:
                raise bad_request("InvalidArtifactRequest", "browseSessionId and itemKey are required.")
            dest = item.get("destinationType") or "new"
            if dest not in DESTINATIONS:
                raise bad_request("InvalidPathType", f"The destination type '{dest}' is not valid.")
            dests.add(dest)
            # Guess: Graph documents no error for a granular artifact whose browse session or item is unknown;
            # the emulator answers 400 InvalidArtifactRequest (a documented create/PATCH code) for each.
            bs = self.browse_sessions.get(bsid)
            if bs is None or now >= bs.expires_at:
                raise bad_request(
                    "InvalidArtifactRequest", f"The browse session '{bsid}' was not found or has expired."
                )
            if bs.workload != s.workload:
                raise bad_request(
                    "InvalidArtifactRequest",
                    f"The browse session '{bsid}' is a {SPECS[bs.workload].label} browse session; {spec.granular} "
                    f"take items of {spec.label} browse sessions.",
                )
            tree = self._tree(bs)
            node = tree.find(key)
            if node is None:
                raise bad_request(
                    "InvalidArtifactRequest", f"The item '{key}' was not found in the browse session '{bsid}'."
                )
            library = tree.library_of(node)
            if library is None:
                raise bad_request(
                    "InvalidArtifactRequest",
                    f"The item '{key}' is the site itself: restore a whole site with {spec.artifacts}.",
                )
            if key in seen:
                raise bad_request("DuplicateArtifactInList", f"Duplicate artifact in the list: '{key}'.")
            seen.add(key)
            units.add(bs.point.unit.index)
            if len(units) > 1:
                # Guess: a granular session restores into one folder ("the path of the folder where all the
                # artifacts are restored within a granular restore session"), so all its items come from one
                # drive or site (from one or more of its browse sessions).
                raise bad_request(
                    "InvalidArtifactRequest",
                    "The items of a granular restore session must all come from the same protection unit.",
                )
            out.append(
                Artifact(
                    id=self.new_guid(),
                    session=s,
                    unit=bs.point.unit,
                    created=now,
                    kind="granular",
                    point=bs.point,
                    browse_session_id=bsid,
                    item_key=key,
                    item_url=node.web_url,
                    library_url=library.web_url,
                    restore_point_time=bs.point.time,
                    destination=dest,
                )
            )
        self._check_destinations(s, dests)
        return out

    def patch_session(
        self, sid: str, body: Any, identity: dict[str, Any], now: float, workload: str = ONEDRIVE
    ) -> dict[str, Any]:
        spec = SPECS[workload]
        s = self.get_session(sid, workload)
        if s.activated_at is not None:
            raise GraphError(
                403, "RestoreSessionActionNotAllowed", "Restore session can only be patched in Draft state"
            )
        if not isinstance(body, dict):
            raise bad_request("InvalidPatchRequest", "The request body must be a JSON object.")
        if s.job_type == "bulk" or s.bulk:
            raise bad_request("InvalidPatchRequest", "Patch operations aren't supported for bulk restore sessions.")
        self._refuse_foreign_collections(spec, body)
        unit_delta = body.get(f"{spec.artifacts}@delta")
        granular_delta = body.get(f"{spec.granular}@delta") if spec.granular else None
        if (unit_delta is None) == (granular_delta is None):
            accepted = f"{spec.artifacts}@delta" + (f" or {spec.granular}@delta" if spec.granular else "")
            raise bad_request("InvalidPatchRequest", f"The request must contain exactly one of {accepted}.")
        granular = granular_delta is not None
        delta = granular_delta if granular else unit_delta
        mixed = "Whole-unit and granular artifacts cannot be mixed in one session."
        if spec.name == ONEDRIVE:
            mixed = "Drive and granular artifacts cannot be mixed in one session."
        if granular and s.job_type == "standard" and any(a.kind == "unit" for a in s.artifacts.values()):
            raise bad_request("InvalidPatchRequest", mixed)
        if not granular and s.job_type == "granular":
            raise bad_request("InvalidPatchRequest", mixed)
        items = self._limit_checks(delta, patch=True)
        adds = [i for i in items if not (isinstance(i, dict) and "@removed" in i)]
        removes = [i for i in items if isinstance(i, dict) and "@removed" in i]
        arts: list[Artifact] = []
        if adds:
            if granular:
                arts = self._parse_granular_artifacts(s, adds, now, patch=True)
            else:
                arts = self._parse_unit_artifacts(s, adds, now, patch=True)
        value: list[dict[str, Any]] = []
        for item in removes:
            aid = item.get("id")
            art = self._artifact_by_delta_id(s, aid, granular)
            if art is None:
                value.append(
                    {
                        "@contentId": self.new_guid(),
                        "@Core.DataModificationException": {
                            "info": {
                                "code": "Invalid",
                                "message": "The identifier to be removed from the restore session does not exist",
                            },
                            "failedOperation": "remove",
                            "responseCode": 409,
                        },
                        "id": aid,
                    }
                )
                continue
            del s.artifacts[art.id]
            if not any(a.unit.index == art.unit.index for a in s.artifacts.values()):
                s.unit_indices.discard(art.unit.index)
            if art.point is not None and not any(a.point is art.point for a in s.artifacts.values()):
                s.point_ids.discard(art.point.id)
            value.append({"@removed": {"reason": "deleted"}, "id": aid})
        if granular and arts:
            s.job_type = "granular"
        self._add(s, arts)
        if not s.artifacts:
            s.destination = None
        for art in arts:
            value.append(self.artifact_json(art, now))
        s.modified = now
        s.modified_by = identity
        return {"@context": "#$delta", "value": value}

    @staticmethod
    def _artifact_by_delta_id(s: Session, aid: Any, granular: bool) -> Artifact | None:
        """The artifact an `@removed` item names: by its id, or (granular artifacts) by its item key."""
        if not isinstance(aid, str):
            return None
        art = s.artifacts.get(aid)
        if art is not None or not granular:
            return art
        return next((a for a in s.artifacts.values() if a.item_key == aid), None)

    def delete_session(self, sid: str, workload: str | None = None) -> None:
        s = self.get_session(sid, workload)
        if s.activated_at is not None:
            raise GraphError(
                403, "RestoreSessionActionNotAllowed", "Restore session can only be deleted in Draft state"
            )
        del self.sessions[s.id]
        for bulk_id in s.bulk:
            self.bulk_index.pop(bulk_id, None)

    def page_sessions(self, offset: int, top: int, workload: str | None = None) -> tuple[list[Session], int | None]:
        out: list[Session] = []
        order = self.session_order
        i = offset
        n = len(order)
        while i < n and len(out) < top:
            s = order[i]
            i += 1
            if s.id in self.sessions and (workload is None or s.workload == workload):
                out.append(s)
        if i < n and len(out) >= top:
            return out, i
        if len(order) > 2 * len(self.sessions) + 1000:
            self.session_order = [s for s in order if s.id in self.sessions]
        return out, None

    # ---- bulk -----------------------------------------------------------------------------------------------
    def create_bulk(
        self, sid: str, body: Any, identity: dict[str, Any], now: float, workload: str = ONEDRIVE
    ) -> BulkRequest:
        spec = SPECS[workload]
        s = self.get_session(sid, workload)
        if s.activated_at is not None:
            raise GraphError(
                403, "RestoreSessionActionNotAllowed", "Artifacts can only be added to a restore session in Draft state"
            )
        if not isinstance(body, dict):
            raise bad_request("BulkRestoreInvalidCreateRequest", "The request body must be a JSON object.")
        if s.bulk:
            raise bad_request(
                "BulkRestoreInvalidCreateRequest", "Only one bulk addition job can be processed per restore session."
            )
        if s.artifacts or s.job_type == "granular":
            raise bad_request(
                "BulkRestoreInvalidCreateRequest",
                "Manual and bulk additions of artifacts cannot be mixed in one restore session.",
            )
        res_name, ids_name = spec.bulk_resources, spec.bulk_ids
        resources = body.get(res_name) or []
        ids = body.get(ids_name) or []
        pus = body.get("protectionUnitIds") or []
        if not isinstance(resources, list) or not isinstance(ids, list) or not isinstance(pus, list):
            raise bad_request("BulkRestoreInvalidCreateRequest", f"{res_name} and {ids_name} must be arrays.")
        if not resources and not ids and not pus:
            raise bad_request(
                "BulkRestoreInvalidCreateRequest", f"At least one of {res_name} or {ids_name} is required."
            )
        if len(resources) + len(ids) + len(pus) > self.config.max_bulk_resources:
            raise bad_request(
                "BulkRestoreRestorationResourcesCountExceedsLimit",
                f"The limit for the number of sites or users in a bulk request is {self.config.max_bulk_resources}.",
            )
        if workload == SHAREPOINT:
            for url in resources:
                if not isinstance(url, str) or not SITE_URL_RE.match(url):
                    raise bad_request(
                        "BulkRestoreInvalidCreateRequestSiteUrl", f"The site web URL '{url}' is not valid."
                    )
            for site_id in ids:
                if not isinstance(site_id, str) or not site_id:
                    raise bad_request("BulkRestoreInvalidCreateRequest", f"The site id '{site_id}' is not valid.")
        else:
            for email in resources:
                if not isinstance(email, str) or not EMAIL_RE.match(email):
                    raise bad_request(
                        "BulkRestoreInvalidCreateRequestUserEmail", f"The user email '{email}' is not valid."
                    )
            for did in ids:
                if not is_guid(did):
                    raise bad_request(
                        "BulkRestoreInvalidCreateRequest", f"The directory object id '{did}' is not valid."
                    )
        dest = body.get("destinationType", "new")
        if dest not in DESTINATIONS:
            raise bad_request("InvalidPathType", f"The destination type '{dest}' is not valid.")
        start, end = _time_period(body.get("protectionTimePeriod"), "BulkRestoreInvalidCreateRequest", required=False)
        pref = body.get("restorePointPreference") or "latest"
        if pref not in ("latest", "oldest"):
            raise bad_request("BulkRestoreInvalidCreateRequest", f"restorePointPreference '{pref}' is not valid.")
        tags = body.get("tags") or "none"
        if tags not in ("none", "fastRestore"):
            raise bad_request("BulkRestoreInvalidCreateRequest", f"tags '{tags}' is not valid.")
        bulk = BulkRequest(
            id=self.new_guid(),
            session=s,
            display_name=str(body.get("displayName") or ""),
            destination=dest,
            start=start,
            end=end,
            preference=pref,
            tags=tags,
            resources=list(resources),
            ids=list(ids),
            protection_unit_ids=list(pus),
            created=now,
            created_by=identity,
            modified=now,
        )
        s.bulk[bulk.id] = bulk
        s.job_type = "bulk"
        self.bulk_index[bulk.id] = bulk
        return bulk

    def _bulk_targets(self, workload: str, bulk: BulkRequest) -> tuple[list[Unit], list[str], list[str]]:
        """The units a bulk request names, the names it could not resolve, and those it holds in fields Graph
        documents as not implemented yet."""
        tenant = self.tenant
        failures: list[str] = []
        targets: list[Unit] = []
        unimplemented: list[str] = []
        found: Unit | None
        for name in bulk.resources:
            if workload == ONEDRIVE:
                found = tenant.by_email.get(name.lower())
            elif workload == SHAREPOINT:
                found = tenant.sites_by_url.get(name.rstrip("/").lower())
            else:
                found = tenant.mailboxes_by_email.get(name.lower())
            if found is None:
                failures.append(name)
            else:
                targets.append(found)
        if workload == ONEDRIVE:
            for did in bulk.ids:
                found = tenant.by_directory_object.get(did.lower())
                if found is None:
                    failures.append(did)
                else:
                    targets.append(found)
        else:
            # siteIds, and a mailbox request's directoryObjectIds and protectionUnitIds: "This property isn't
            # implemented yet. Future value; don't use." They are kept and shown, never resolved.
            for name in (*bulk.ids, *bulk.protection_unit_ids):
                failures.append(name)
            fields = ((SPECS[workload].bulk_ids, bulk.ids), ("protectionUnitIds", bulk.protection_unit_ids))
            unimplemented = [name for name, values in fields if values]
        return targets, failures, unimplemented

    def _resolve_bulk(self, s: Session, bulk: BulkRequest, now: float) -> None:
        tenant = self.tenant
        targets, failures, unimplemented = self._bulk_targets(s.workload, bulk)
        arts: list[Artifact] = []
        for unit in targets:
            if unit.index in s.unit_indices:
                continue
            ref = tenant.pick_point(
                unit,
                bulk.start,
                bulk.end,
                latest=bulk.preference == "latest",
                fast_only=bulk.tags == "fastRestore",
                now=now,
            )
            if ref is None:
                failures.append(unit.web_url if isinstance(unit, Site) else unit.email)
                continue
            art = Artifact(
                id=self.new_guid(),
                session=s,
                unit=unit,
                created=now,
                destination=bulk.destination,
                point=ref,
                restore_point_time=ref.time,
            )
            arts.append(art)
            s.unit_indices.add(unit.index)
        for art in arts:
            s.artifacts[art.id] = art
        s.destination = bulk.destination
        bulk.modified = now
        if failures:
            bulk.status = "completedWithErrors"
            message = f"{len(failures)} resources could not be resolved: {', '.join(failures[:20])}"
            if unimplemented:
                use = SPECS[s.workload].bulk_resources
                message += f" ({' and '.join(unimplemented)}: not implemented yet, use {use})"
            bulk.error = {"code": "BulkRestoreResourceResolutionFailed", "message": message}
        else:
            bulk.status = "completed"

    def get_bulk(self, sid: str, bulk_id: str, workload: str = ONEDRIVE) -> BulkRequest:
        s = self.get_session(sid, workload)
        bulk = s.bulk.get(bulk_id)
        if bulk is None:
            raise GraphError(404, "BulkRestoreArtifactsNotFound", f"Bulk request '{bulk_id}' was not found.")
        return bulk

    def delete_bulk(self, sid: str, bulk_id: str, workload: str = ONEDRIVE) -> None:
        bulk = self.get_bulk(sid, bulk_id, workload)
        if bulk.status not in ("completed", "completedWithErrors"):
            raise GraphError(
                403,
                "InvalidStateForBulkRequestDeletion",
                "A bulk request can be deleted only when it is completed or completedWithErrors.",
            )
        del bulk.session.bulk[bulk.id]
        self.bulk_index.pop(bulk.id, None)

    # ---- browse ---------------------------------------------------------------------------------------------
    def create_browse_session(
        self, body: Any, identity: dict[str, Any], now: float, workload: str = ONEDRIVE
    ) -> BrowseSession:
        if not isinstance(body, dict):
            raise bad_request("BadRequest", "The request body must be a JSON object.")
        pid = body.get("restorePointId")
        if not isinstance(pid, str) or not pid:
            raise bad_request("InvalidRestorePoint", "restorePointId is required.")
        ref = self.tenant.resolve_point(pid)
        if ref is None:
            raise bad_request("InvalidRestorePoint", f"The restore point '{pid}' is not valid.")
        if ref.unit.workload != workload:
            raise _wrong_workload(pid, SPECS[workload], ref.unit.workload)
        if self.tenant.is_expired(ref, now):
            raise bad_request("InvalidRestorePoint", f"The restore point '{pid}' has expired.")
        if not ref.fast:
            # Guess: Graph says only fastRestore points can be browsed but not how it refuses others; we refuse
            # at creation with 400 rather than creating a session that fails later.
            raise bad_request(
                "InvalidRestorePoint",
                f"The restore point '{pid}' is not a fastRestore point. Only fastRestore points are supported to "
                "create a browse session.",
            )
        cfg = self.config
        raw = self.rng.getrandbits(192).to_bytes(24, "big")
        bid = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        bs = BrowseSession(
            id=bid,
            seq=len(self.browse_order),
            point=ref,
            created=now,
            ready_at=now + cfg.browse_creating_seconds,
            expires_at=now + cfg.browse_ttl_seconds,
            created_by=identity,
            workload=workload,
        )
        self.browse_sessions[bid] = bs
        self.browse_order.append(bs)
        return bs

    def get_browse_session(self, bid: str, now: float, workload: str | None = None) -> BrowseSession:
        bs = self.browse_sessions.get(bid)
        if bs is not None and now >= bs.expires_at:
            # Browse sessions are deleted automatically at expirationDateTime.
            del self.browse_sessions[bid]
            bs = None
        if bs is None or (workload is not None and bs.workload != workload):
            raise browse_session_not_found(bid)
        return bs

    def live_browse_sessions(self, now: float, workload: str | None = None) -> list[BrowseSession]:
        for bid in [k for k, v in self.browse_sessions.items() if now >= v.expires_at]:
            del self.browse_sessions[bid]
        self.browse_order = [b for b in self.browse_order if b.id in self.browse_sessions]
        if workload is None:
            return self.browse_order
        return [b for b in self.browse_order if b.workload == workload]

    def _tree(self, bs: BrowseSession) -> BrowseTree:
        if bs.tree is None:
            unit = bs.point.unit
            if isinstance(unit, Site):
                bs.tree = BrowseTree(bs.point.id, unit.web_url, site=(unit.browse_key, unit.name))
            else:
                assert isinstance(unit, Drive)
                bs.tree = BrowseTree(bs.point.id, unit.web_url)
        return bs.tree

    def browse(
        self,
        bid: str,
        key: str | None,
        name_filter: str | None,
        order: str | None,
        offset: int,
        top: int,
        now: float,
        workload: str | None = None,
    ) -> tuple[list[dict[str, Any]], int, bool]:
        bs = self.get_browse_session(bid, now, workload)
        if now < bs.ready_at:
            # Guess: browsing a session that is still `creating` is refused with 400 BrowseSessionNotReady.
            raise bad_request("BrowseSessionNotReady", f"Browse session '{bid}' is still being created.")
        tree = self._tree(bs)
        if not key:
            nodes = [tree.root]
        else:
            node = tree.find(key)
            if node is None:
                raise bad_request("InvalidBrowseLocationItemKey", f"The item key '{key}' was not found.")
            nodes = tree.children(node)
        if name_filter:
            needle = name_filter.lower()
            nodes = [n for n in nodes if needle in n.name.lower()]
        if order in ("nameAsc", "nameDsc"):
            nodes = sorted(nodes, key=lambda n: n.name.lower(), reverse=order == "nameDsc")
        elif order in ("pathAsc", "pathDsc"):
            nodes = sorted(nodes, key=lambda n: n.web_url.lower(), reverse=order == "pathDsc")
        page = nodes[offset : offset + top]
        return [n.as_json() for n in page], len(nodes), offset + top < len(nodes)

    # ---- JSON --------------------------------------------------------------------------------------------------
    def session_json(self, s: Session, now: float, include_unknown: bool) -> dict[str, Any]:
        status = s.status(now)
        if status == "failed" and not include_unknown:
            status = "unknownFutureValue"
        total = len(s.artifacts)
        active = s.activated_at is not None
        return {
            "@odata.type": SPECS[s.workload].session_type,
            "id": s.id,
            "status": status,
            "restoreJobType": s.job_type,
            "restoreSessionArtifactCount": {
                "total": total,
                "completed": s.completed,
                "inProgress": total - s.completed - s.failed if active else 0,
                "failed": s.failed,
            },
            "createdBy": s.created_by,
            "createdDateTime": iso(s.created),
            "lastModifiedBy": s.modified_by,
            "lastModifiedDateTime": iso(s.modified),
            "completedDateTime": iso(s.terminal_at) if s.terminal_at is not None and now >= s.terminal_at else None,
            "error": None,
        }

    def artifact_json(self, a: Artifact, now: float) -> dict[str, Any]:
        status = a.status(now)
        started = a.session.activated_at is not None and now >= a.t_start
        finished = status in TERMINAL_ARTIFACT
        error = None
        if finished and a.error_code:
            error = {"code": a.error_code, "message": ARTIFACT_ERROR_MESSAGES.get(a.error_code, a.error_code)}
        spec = SPECS[a.session.workload]
        if a.kind == "granular":
            # Guess: the restored item's key, path and URL are reported once it is restored (Graph's examples
            # show them empty before).
            restored_item = a.restored if (a.restored is not None and status == "succeeded") else None
            body: dict[str, Any] = {
                "@odata.type": spec.granular_type,
                "id": a.item_key,
                "browseSessionId": a.browse_session_id,
                "status": status,
                "webUrl": a.item_url,
                "restorePointDateTime": iso(a.restore_point_time),
                "startDateTime": iso(a.t_start) if started else "0001-01-01T00:00:00Z",
                "completionDateTime": iso(a.t_done) if finished else "0001-01-01T00:00:00Z",
            }
            unit = a.unit
            if isinstance(unit, Site):
                body["siteId"] = unit.site_id
            else:
                assert isinstance(unit, Drive)
                body["directoryObjectId"] = unit.directory_object_id
            body["restoredItemKey"] = restored_item[0] if restored_item else None
            body["restoredItemPath"] = restored_item[1] if restored_item else None
            body["restoredItemWebUrl"] = restored_item[2] if restored_item else None
            body["error"] = error
            body["destinationType"] = a.destination
            return body
        # Guess: the restored site or folder is reported once the artifact is in progress (Graph doesn't say when).
        restored = a.restored if (a.restored is not None and started) else None
        assert a.point is not None
        body = {
            "@odata.type": spec.artifact_type,
            "id": a.id,
            "destinationType": a.destination,
            "status": status,
            "createdDateTime": iso(a.created),
            "startDateTime": iso(a.t_start) if started else None,
            "completionDateTime": iso(a.t_done) if finished else None,
            "error": error,
        }
        if isinstance(a.unit, Mailbox):
            body["restoredFolderId"] = restored[0] if restored else None
            body["restoredFolderName"] = restored[1] if restored else None
            body["restoredItemCount"] = restored[2] if restored else None
        else:
            body["restoredSiteId"] = restored[0] if restored else None
            body["restoredSiteName"] = restored[1] if restored else None
            body["restoredSiteWebUrl"] = restored[2] if restored else None
        body["restorePoint"] = self.tenant.point_json(a.point)
        return body

    def bulk_json(self, b: BulkRequest) -> dict[str, Any]:
        spec = SPECS[b.session.workload]
        period = None
        if b.start is not None or b.end is not None:
            period = {
                "startDateTime": iso(b.start) if b.start is not None else None,
                "endDateTime": iso(b.end) if b.end is not None else None,
            }
        return {
            "@odata.type": spec.bulk_type,
            "id": b.id,
            "displayName": b.display_name,
            "status": b.status,
            "destinationType": b.destination,
            "restorePointPreference": b.preference,
            "tags": b.tags,
            "protectionTimePeriod": period,
            "protectionUnitIds": b.protection_unit_ids,
            spec.bulk_resources: b.resources,
            spec.bulk_ids: b.ids,
            "createdBy": b.created_by,
            "createdDateTime": iso(b.created),
            "lastModifiedBy": b.created_by,
            "lastModifiedDateTime": iso(b.modified),
            "error": b.error,
        }

    def browse_session_json(self, bs: BrowseSession, now: float) -> dict[str, Any]:
        # `restorePointId` is a create request field only: the resource's properties and every documented
        # answer (create, get, list) name the restore point by its drive (or site) and time instead.
        unit = bs.point.unit
        body: dict[str, Any] = {
            "@odata.type": SPECS[bs.workload].browse_type,
            "id": bs.id,
            "status": bs.status(now),
            "createdDateTime": iso(bs.created),
            "expirationDateTime": iso(bs.expires_at),
            "restorePointDateTime": iso(bs.point.time),
            "backupSizeInBytes": str(BrowseTree.size_for(bs.point.id)),
        }
        if isinstance(unit, Site):
            body["siteId"] = unit.site_id
        else:
            assert isinstance(unit, Drive)
            body["directoryObjectId"] = unit.directory_object_id
        body["error"] = None
        return body

    # ---- admin ----------------------------------------------------------------------------------------------
    def dump(self, now: float, *, with_sessions: bool = True) -> dict[str, Any]:
        counts: dict[str, int] = {}
        sessions = []
        for s in self.sessions.values():
            st = s.status(now)
            counts[st] = counts.get(st, 0) + 1
            if with_sessions:
                sessions.append(
                    {
                        "id": s.id,
                        "workload": s.workload,
                        "status": st,
                        "restoreJobType": s.job_type,
                        "artifacts": len(s.artifacts),
                        "completed": s.completed,
                        "failed": s.failed,
                        "createdDateTime": iso(s.created),
                        "activatedDateTime": iso(s.activated_at) if s.activated_at is not None else None,
                        "completedDateTime": iso(s.terminal_at)
                        if s.terminal_at is not None and now >= s.terminal_at
                        else None,
                    }
                )
        being_restored = {w: 0 for w in SPECS}
        for workload, _ in self.restoring:
            being_restored[workload] += 1
        out: dict[str, Any] = {
            "now": iso(now),
            "sessionCount": len(self.sessions),
            "statusCounts": counts,
            "activeCount": self.active_count,
            "maxActiveObserved": self.max_active,
            "activeCap": self.config.active_cap,
            "activations": self.activations,
            "rejectedActivations": self.rejected_activations,
            "drivesBeingRestored": being_restored[ONEDRIVE],
            "unitsBeingRestored": being_restored,
            "browseSessionCount": len(self.browse_sessions),
            "bulkRequestCount": len(self.bulk_index),
        }
        if with_sessions:
            out["sessions"] = sessions
        return out


def _restore_point_id(value: Any) -> str:
    """The restore point id from ``{"id": ...}`` or ``{"@odata.id": ".../restorePoints/{id}"}``."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return ""
    rid = value.get("id")
    if isinstance(rid, str) and rid:
        return rid
    ref = value.get("@odata.id")
    if isinstance(ref, str) and ref:
        tail = ref.rstrip("/").rsplit("/", 1)[-1]
        m = re.match(r"^restorePoints\('?([^')]+)'?\)$", tail)
        return m.group(1) if m else tail
    return ""


def _time_period(value: Any, code: str, *, required: bool) -> tuple[float | None, float | None]:
    if value is None:
        if required:
            raise bad_request(code, "protectionTimePeriod is required.")
        return None, None
    if not isinstance(value, dict):
        raise bad_request(code, "protectionTimePeriod must be an object.")
    out: list[float | None] = []
    for key in ("startDateTime", "endDateTime"):
        raw = value.get(key)
        if raw is None:
            out.append(None)
            continue
        try:
            out.append(parse_iso(str(raw)))
        except ValueError as exc:
            raise bad_request(code, f"protectionTimePeriod.{key} '{raw}' is not a valid date-time.") from exc
    start, end = out
    if start is not None and end is not None and start > end:
        raise bad_request(code, "protectionTimePeriod.startDateTime must not be after endDateTime.")
    return start, end


def time_period(value: Any, code: str, *, required: bool) -> tuple[float | None, float | None]:
    return _time_period(value, code, required=required)
