"""The seeded tenant: drives, sites and mailboxes, one protection policy per workload, lazily derived restore
points and browse trees.

Restore points are never materialised: a point is ``(protection unit, slot)`` and its GUID-shaped id carries
both (XOR-masked) plus a keyed hash, so an id resolves back to its unit and protection time in O(1).

Each workload is seeded from its own random stream, so adding sites or mailboxes never changes the drives (their
ids, their restore point ids) of a given seed.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .clock import iso
from .config import EXCHANGE, ONEDRIVE, SHAREPOINT

TEN_MINUTES = 600
DAY = 86400
WEEK = 7 * DAY
RETENTION = 365 * DAY
# Graph's OneDrive and SharePoint schedule: every 10 minutes for 14 days, then weekly up to a year.
FINE_SLOTS = 14 * DAY // TEN_MINUTES  # 2016
WEEKLY_SLOTS = 50  # the oldest weekly point is 14 days + 49 weeks (357 days) old
# Graph's Exchange schedule: every 10 minutes for the whole year.
MAILBOX_SLOTS = RETENTION // TEN_MINUTES  # 52,560
# Guess: a point is tagged fastRestore every 6 hours within the first 14 days (Graph does not document
# which points are fast; only some are). Express (fast) restore points exist for OneDrive and SharePoint only.
FAST_EVERY = 36
# an odd multiplier (and its inverse mod 2**48) so neighbouring slots get unrelated-looking id tails
_MASK48 = (1 << 48) - 1
_MIX = 0x9E3779B97F4B
_UNMIX = pow(_MIX, -1, 1 << 48)
# the top 2 bits of a point id's 32-bit unit field name the workload (0 = drive, as before sites and mailboxes)
_KIND_SHIFT = 30
_INDEX_MASK = (1 << _KIND_SHIFT) - 1
KINDS = {ONEDRIVE: 0, SHAREPOINT: 1, EXCHANGE: 2}
MY_SITE_HOST = "https://contoso-my.sharepoint.com"
SITES_HOST = "https://contoso.sharepoint.com"
SITES_HOSTNAME = "contoso.sharepoint.com"
DOMAIN = "contoso.com"
BACKUP_IDENTITY = {"application": {"id": "", "displayName": "Microsoft 365 Backup"}}


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hashed_uuid(*parts: object) -> str:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def hashed_int(low: int, high: int, *parts: object) -> int:
    """A deterministic integer in [low, high] derived from `parts`."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return low + int.from_bytes(digest, "big") % (high - low + 1)


@dataclass(slots=True)
class Drive:
    workload: ClassVar[str] = ONEDRIVE
    index: int
    id: str
    directory_object_id: str
    email: str
    display_name: str
    site_id: str
    web_url: str
    policy_id: str
    protected: bool
    created: float
    restore_counter: int = 0  # next R-suffix for restores to a new site

    @property
    def user_token(self) -> str:
        return self.email.replace("@", "_").replace(".", "_")


@dataclass(slots=True)
class Site:
    """A user's team site (`https://contoso.sharepoint.com/sites/user00003-team`)."""

    workload: ClassVar[str] = SHAREPOINT
    index: int
    id: str
    site_id: str  # Graph's composite site id: "<hostname>,<site collection id>,<web id>"
    name: str  # the site's title, e.g. "User 00003 Team"
    url_name: str  # the last segment of its URL, e.g. "user00003-team"
    web_url: str
    policy_id: str
    protected: bool
    created: float
    restore_counter: int = 0  # next R-suffix for restores to a new site

    @property
    def browse_key(self) -> str:
        """The item key of the site itself in a browse session: its site collection and web ids."""
        return ",".join(self.site_id.split(",")[1:])


@dataclass(slots=True)
class Mailbox:
    """A user's mailbox, by its SMTP address (the same as the user's OneDrive owner email)."""

    workload: ClassVar[str] = EXCHANGE
    index: int
    id: str
    directory_object_id: str
    email: str
    display_name: str
    policy_id: str
    protected: bool
    created: float


Unit = Drive | Site | Mailbox


@dataclass(slots=True)
class RestorePointRef:
    unit: Unit
    slot: int
    time: float
    fast: bool
    id: str

    @property
    def expiration(self) -> float:
        return self.time + RETENTION


class Schedule:
    """The restore point slots of one workload: their times (newest first), how many are live, which are fast."""

    def __init__(self, times: list[float], live_slots: int, *, fast: bool) -> None:
        self.times = times
        self.live_slots = live_slots
        self.fast = fast
        self._neg = [-t for t in times]  # increasing, for bisect

    def is_fast(self, slot: int) -> bool:
        return self.fast and slot < FINE_SLOTS and slot % FAST_EVERY == 0

    def slot_range(
        self,
        start: float | None,
        end: float | None,
        *,
        start_exclusive: bool = False,
        end_exclusive: bool = False,
    ) -> tuple[int, int]:
        """Live slots (newest first) whose time lies in the window; returns ``[lo, hi)``."""
        n = self.live_slots
        neg = self._neg
        lo = 0
        if end is not None:
            lo = bisect_right(neg, -end) if end_exclusive else bisect_left(neg, -end)
        hi = n
        if start is not None:
            hi = bisect_left(neg, -start) if start_exclusive else bisect_right(neg, -start)
        lo = min(lo, n)
        return lo, max(lo, min(hi, n))


@dataclass
class Tenant:
    seed: int
    drive_count: int
    anchor: float
    unprotected_fraction: float = 0.02
    expired_per_drive: int = 2
    site_count: int = 0
    mailbox_count: int = 0
    drives: list[Drive] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    mailboxes: list[Mailbox] = field(default_factory=list)
    policy_id: str = ""
    policy_ids: dict[str, str] = field(default_factory=dict)  # workload -> its protection policy id
    policy_created: float = 0.0
    by_id: dict[str, Drive] = field(default_factory=dict)
    by_email: dict[str, Drive] = field(default_factory=dict)
    by_directory_object: dict[str, Drive] = field(default_factory=dict)
    sites_by_id: dict[str, Site] = field(default_factory=dict)
    sites_by_url: dict[str, Site] = field(default_factory=dict)  # lower-cased web URL, no trailing slash
    sites_by_site_id: dict[str, Site] = field(default_factory=dict)
    mailboxes_by_id: dict[str, Mailbox] = field(default_factory=dict)
    mailboxes_by_email: dict[str, Mailbox] = field(default_factory=dict)
    mailboxes_by_directory_object: dict[str, Mailbox] = field(default_factory=dict)
    units_by_id: dict[str, Unit] = field(default_factory=dict)  # every protection unit, whatever its workload
    expired_ids: set[str] = field(default_factory=set)  # restore points expired by hand (admin)

    def __post_init__(self) -> None:
        rng = random.Random(f"tenant:{self.seed}")
        # anchor = the newest restore point, on a 10 minute boundary
        self.anchor = float(int(self.anchor) // TEN_MINUTES * TEN_MINUTES)
        self.policy_id = seeded_uuid(rng)
        self.policy_created = self.anchor - 400 * DAY
        self._key = hashlib.blake2b(f"rp:{self.seed}".encode(), digest_size=16).digest()
        mask = hashlib.blake2b(f"mask:{self.seed}".encode(), digest_size=6).digest()
        self._mask = int.from_bytes(mask, "big")
        unprotected = self._unprotected(rng, self.drive_count)
        for i in range(self.drive_count):
            email = f"user{i:05d}@{DOMAIN}"
            token = email.replace("@", "_").replace(".", "_")
            drive = Drive(
                index=i,
                id=seeded_uuid(rng),
                directory_object_id=seeded_uuid(rng),
                email=email,
                display_name=f"User {i:05d}",
                site_id=seeded_uuid(rng),
                web_url=f"{MY_SITE_HOST}/personal/{token}",
                policy_id=self.policy_id,
                protected=i not in unprotected,
                created=self.policy_created + rng.randint(0, 30 * DAY),
            )
            self.drives.append(drive)
            self.by_id[drive.id] = drive
            self.by_email[email] = drive
            self.by_directory_object[drive.directory_object_id] = drive
        self.policy_ids = {ONEDRIVE: self.policy_id}
        self._seed_sites()
        self._seed_mailboxes()
        for unit in self.all_units():
            self.units_by_id[unit.id] = unit
        # slot times, newest first (strictly decreasing)
        base = self.anchor - 14 * DAY
        site_times = [self.anchor - k * TEN_MINUTES for k in range(FINE_SLOTS)]
        site_times += [base - j * WEEK for j in range(WEEKLY_SLOTS + self.expired_per_drive)]
        self.drive_schedule = Schedule(site_times, FINE_SLOTS + WEEKLY_SLOTS, fast=True)
        self.site_schedule = self.drive_schedule
        mail_times = [self.anchor - k * TEN_MINUTES for k in range(MAILBOX_SLOTS + self.expired_per_drive)]
        self.mailbox_schedule = Schedule(mail_times, MAILBOX_SLOTS, fast=False)
        self.slot_times = self.drive_schedule.times
        self.live_slots = self.drive_schedule.live_slots

    def _unprotected(self, rng: random.Random, count: int) -> set[int]:
        return set(rng.sample(range(count), int(count * self.unprotected_fraction)) if count else [])

    def _seed_sites(self) -> None:
        """Team sites from their own random stream: site i is user i's (`.../sites/user00003-team`)."""
        rng = random.Random(f"tenant:{self.seed}:sites")
        policy = seeded_uuid(rng)
        self.policy_ids[SHAREPOINT] = policy
        unprotected = self._unprotected(rng, self.site_count)
        for i in range(self.site_count):
            url_name = f"user{i:05d}-team"
            site = Site(
                index=i,
                id=seeded_uuid(rng),
                site_id=f"{SITES_HOSTNAME},{seeded_uuid(rng)},{seeded_uuid(rng)}",
                name=f"User {i:05d} Team",
                url_name=url_name,
                web_url=f"{SITES_HOST}/sites/{url_name}",
                policy_id=policy,
                protected=i not in unprotected,
                created=self.policy_created + rng.randint(0, 30 * DAY),
            )
            self.sites.append(site)
            self.sites_by_id[site.id] = site
            self.sites_by_url[site.web_url.lower()] = site
            self.sites_by_site_id[site.site_id.lower()] = site

    def _seed_mailboxes(self) -> None:
        """Mailboxes from their own random stream: mailbox i is user i's (the drive owner's address and, when
        that user has a drive, the same directoryObjectId)."""
        rng = random.Random(f"tenant:{self.seed}:mailboxes")
        policy = seeded_uuid(rng)
        self.policy_ids[EXCHANGE] = policy
        unprotected = self._unprotected(rng, self.mailbox_count)
        for i in range(self.mailbox_count):
            unit_id, own_directory_id = seeded_uuid(rng), seeded_uuid(rng)
            email = f"user{i:05d}@{DOMAIN}"
            mailbox = Mailbox(
                index=i,
                id=unit_id,
                directory_object_id=self.drives[i].directory_object_id if i < self.drive_count else own_directory_id,
                email=email,
                display_name=f"User {i:05d}",
                policy_id=policy,
                protected=i not in unprotected,
                created=self.policy_created + rng.randint(0, 30 * DAY),
            )
            self.mailboxes.append(mailbox)
            self.mailboxes_by_id[mailbox.id] = mailbox
            self.mailboxes_by_email[email] = mailbox
            self.mailboxes_by_directory_object[mailbox.directory_object_id] = mailbox

    # ---- units -------------------------------------------------------------------------------------------
    def units(self, workload: str) -> list[Any]:
        if workload == ONEDRIVE:
            return self.drives
        if workload == SHAREPOINT:
            return self.sites
        return self.mailboxes

    def all_units(self) -> list[Unit]:
        """Every protection unit: the drives, then the sites, then the mailboxes."""
        units: list[Unit] = []
        units.extend(self.drives)
        units.extend(self.sites)
        units.extend(self.mailboxes)
        return units

    def schedule(self, unit: Unit) -> Schedule:
        if isinstance(unit, Mailbox):
            return self.mailbox_schedule
        return self.drive_schedule

    # ---- restore point ids -------------------------------------------------------------------------------
    def _mac(self, unit: int, slot: int) -> bytes:
        return hashlib.blake2b(
            unit.to_bytes(4, "big") + slot.to_bytes(2, "big"), key=self._key, digest_size=10
        ).digest()

    def point_id(self, drive: int, slot: int, workload: str = ONEDRIVE) -> str:
        tagged = (KINDS[workload] << _KIND_SHIFT) | drive
        mac = bytearray(self._mac(tagged, slot))
        mac[6] = (mac[6] & 0x0F) | 0x40
        mac[8] = (mac[8] & 0x3F) | 0x80
        tail = ((((tagged << 16) | slot) ^ self._mask) * _MIX) & _MASK48
        return str(uuid.UUID(bytes=bytes(mac) + tail.to_bytes(6, "big")))

    def unit_point(self, unit: Unit, slot: int) -> RestorePointRef:
        schedule = self.schedule(unit)
        return RestorePointRef(
            unit=unit,
            slot=slot,
            time=schedule.times[slot],
            fast=schedule.is_fast(slot),
            id=self.point_id(unit.index, slot, unit.workload),
        )

    def point(self, drive: int, slot: int) -> RestorePointRef:
        return self.unit_point(self.drives[drive], slot)

    def resolve_point(self, point_id: str) -> RestorePointRef | None:
        """Map a restore point id back to its protection unit and slot (None if it was never issued)."""
        try:
            raw = uuid.UUID(str(point_id)).bytes
        except (ValueError, AttributeError, TypeError):
            return None
        tail = ((int.from_bytes(raw[10:], "big") * _UNMIX) & _MASK48) ^ self._mask
        tagged, slot = tail >> 16, tail & 0xFFFF
        kind, index = tagged >> _KIND_SHIFT, tagged & _INDEX_MASK
        by_kind: tuple[list[Any], ...] = (self.drives, self.sites, self.mailboxes)
        units = by_kind[kind] if kind < len(by_kind) else []
        if index >= len(units):
            return None
        unit = units[index]
        if slot >= len(self.schedule(unit).times) or not unit.protected:
            return None
        mac = bytearray(self._mac(tagged, slot))
        mac[6] = (mac[6] & 0x0F) | 0x40
        mac[8] = (mac[8] & 0x3F) | 0x80
        if bytes(mac) != raw[:10]:
            return None
        return self.unit_point(unit, slot)

    def is_expired(self, ref: RestorePointRef, now: float) -> bool:
        return ref.slot >= self.schedule(ref.unit).live_slots or ref.expiration <= now or ref.id in self.expired_ids

    # ---- slot ranges -------------------------------------------------------------------------------------
    def slot_range(
        self,
        start: float | None,
        end: float | None,
        *,
        start_exclusive: bool = False,
        end_exclusive: bool = False,
    ) -> tuple[int, int]:
        """The drives' live slots in the window (see `Schedule.slot_range`)."""
        return self.drive_schedule.slot_range(start, end, start_exclusive=start_exclusive, end_exclusive=end_exclusive)

    @staticmethod
    def is_fast_slot(slot: int) -> bool:
        return slot < FINE_SLOTS and slot % FAST_EVERY == 0

    def pick_point(
        self,
        unit: Unit,
        start: float | None,
        end: float | None,
        *,
        latest: bool,
        fast_only: bool,
        now: float,
    ) -> RestorePointRef | None:
        """One restore point of `unit` in the window, the newest or the oldest, optionally fast only."""
        if not unit.protected:
            return None
        schedule = self.schedule(unit)
        lo, hi = schedule.slot_range(start, end)
        if fast_only:
            if not schedule.fast:
                return None
            first = -(-lo // FAST_EVERY) * FAST_EVERY
            candidates: range = range(first, min(hi, FINE_SLOTS), FAST_EVERY)
        else:
            candidates = range(lo, hi)
        ordered = candidates if latest else reversed(candidates)
        for slot in ordered:
            ref = self.unit_point(unit, slot)
            if not self.is_expired(ref, now):
                return ref
        return None

    # ---- JSON shapes -------------------------------------------------------------------------------------
    def unit_json(self, unit: Unit) -> dict[str, Any]:
        body: dict[str, Any] = {
            "@odata.type": UNIT_TYPES[unit.workload],
            "id": unit.id,
            "policyId": unit.policy_id,
            "protectionSources": "manual",
            "status": "protected" if unit.protected else "unprotected",
            "createdBy": BACKUP_IDENTITY,
            "createdDateTime": iso(unit.created),
            "lastModifiedBy": BACKUP_IDENTITY,
            "lastModifiedDateTime": iso(unit.created),
            "error": None,
            "offboardRequestedDateTime": "0001-01-01T00:00:00Z",
        }
        body.update(self._unit_identity(unit))
        return body

    @staticmethod
    def _unit_identity(unit: Unit) -> dict[str, Any]:
        if isinstance(unit, Site):
            return {"siteId": unit.site_id, "siteName": unit.name, "siteWebUrl": unit.web_url}
        return {"directoryObjectId": unit.directory_object_id, "displayName": unit.display_name, "email": unit.email}

    def drive_json(self, d: Drive) -> dict[str, Any]:
        return self.unit_json(d)

    def point_json(self, ref: RestorePointRef, *, expand_unit: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": ref.id,
            "protectionDateTime": iso(ref.time),
            "expirationDateTime": iso(ref.expiration),
            "tags": "fastRestore" if ref.fast else "none",
        }
        if expand_unit:
            unit = ref.unit
            shortened: dict[str, Any] = {"@odata.type": UNIT_TYPES[unit.workload], "id": unit.id,
                                         "policyId": unit.policy_id}
            if isinstance(unit, Site):
                shortened.update({"siteId": unit.site_id, "siteName": unit.name, "siteWebUrl": unit.web_url})
            else:
                shortened.update({"directoryObjectId": unit.directory_object_id, "email": unit.email})
            body["protectionUnit"] = shortened
        return body

    def policy_json(self, workload: str = ONEDRIVE) -> dict[str, Any]:
        stamp = iso(self.policy_created)
        label, policy_type = POLICIES[workload]
        return {
            "@odata.type": policy_type,
            "id": self.policy_ids[workload],
            "displayName": f"{label} backup policy",
            "isEnabled": True,
            "status": "active",
            "createdBy": {"user": {"id": None, "displayName": "Backup Administrator"}},
            "createdDateTime": stamp,
            "lastModifiedBy": {"user": {"id": None, "displayName": "Backup Administrator"}},
            "lastModifiedDateTime": stamp,
            "retentionSettings": [{"period": "P365D", "interval": "PT10M"}],
        }


UNIT_TYPES = {
    ONEDRIVE: "#microsoft.graph.driveProtectionUnit",
    SHAREPOINT: "#microsoft.graph.siteProtectionUnit",
    EXCHANGE: "#microsoft.graph.mailboxProtectionUnit",
}
POLICIES = {
    ONEDRIVE: ("OneDrive", "#microsoft.graph.oneDriveForBusinessProtectionPolicy"),
    SHAREPOINT: ("SharePoint", "#microsoft.graph.sharePointProtectionPolicy"),
    EXCHANGE: ("Exchange", "#microsoft.graph.exchangeProtectionPolicy"),
}


# ---- browse trees ----------------------------------------------------------------------------------------
LARGE_FOLDER_ITEMS = 1200

_WORDS = (
    "Budget",
    "Roadmap",
    "Minutes",
    "Invoice",
    "Design",
    "Draft",
    "Notes",
    "Report",
    "Plan",
    "Summary",
    "Contract",
    "Proposal",
    "Review",
    "Slides",
    "Backlog",
    "Survey",
    "Forecast",
    "Memo",
    "Spec",
    "Audit",
)
_EXTS = (".docx", ".xlsx", ".pptx", ".pdf", ".txt", ".png", ".jpg", ".csv")


@dataclass(slots=True)
class BrowseNode:
    key: str
    name: str
    type: str  # site | documentLibrary | folder | file
    web_url: str
    depth: int
    size: int = 0
    children: list[BrowseNode] | None = None
    count: int = 0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"itemKey": self.key, "name": self.name, "webUrl": self.web_url, "type": self.type}
        if self.type == "file":
            out["sizeInBytes"] = str(self.size)
        else:
            out["itemsCount"] = self.count
        return out


class BrowseTree:
    """A deterministic folder tree for one restore point, generated level by level on demand.

    A drive's tree starts at its `Documents` library (an item key of 3 GUIDs: site, web, list). A site's tree
    starts at the site itself (2 GUIDs: its site collection and web ids), whose children are its libraries.
    """

    def __init__(self, point_id: str, web_url: str, *, site: tuple[str, str] | None = None) -> None:
        self.point_id = point_id
        if site is None:
            key = ",".join(hashed_uuid(point_id, part) for part in ("site", "web", "list"))
            self.root = BrowseNode(
                key=key, name="Documents", type="documentLibrary", web_url=f"{web_url}/Documents", depth=0
            )
        else:
            key, name = site
            self.root = BrowseNode(key=key, name=name, type="site", web_url=web_url, depth=-1)
        self.nodes: dict[str, BrowseNode] = {key: self.root}
        self._plan(self.root)

    def library_of(self, node: BrowseNode) -> BrowseNode | None:
        """The document library that holds `node` (itself for a library; None for a site)."""
        if node.type == "site":
            return None
        return self.nodes.get(",".join(node.key.split(",")[:3]))

    def _rng(self, node: BrowseNode) -> random.Random:
        return random.Random(f"{self.point_id}|{node.key}")

    def _plan(self, node: BrowseNode) -> None:
        """Decide how many children a container has (without generating them)."""
        if node.type == "file":
            return
        node.count = len(self._child_specs(node))

    def _child_specs(self, node: BrowseNode) -> list[tuple[str, str]]:
        rng = self._rng(node)
        specs: list[tuple[str, str]] = []
        if node.type == "site":
            specs += [("documentLibrary", "Shared Documents"), ("documentLibrary", "Site Assets")]
        elif node.name == "Site Assets" and node.depth == 0:
            specs += [("file", f"{rng.choice(_WORDS)} {i:02d}{rng.choice(('.png', '.jpg', '.css'))}")
                      for i in range(rng.randint(2, 8))]
        elif node.depth == 0:
            specs += [("folder", "Large folder"), ("folder", "Projects"), ("folder", "Photos"), ("folder", "Archive")]
            specs += [("file", self._file_name(rng, i)) for i in range(rng.randint(5, 15))]
        elif node.name == "Large folder" and node.depth == 1:
            specs += [("file", f"Scan {i:05d}.pdf") for i in range(LARGE_FOLDER_ITEMS)]
        elif node.name == "Photos" and node.depth == 1:
            specs += [("file", f"IMG_{rng.randint(1000, 9999)}_{i:03d}.jpg") for i in range(rng.randint(20, 60))]
        elif node.depth >= 4:
            specs += [("file", self._file_name(rng, i)) for i in range(rng.randint(3, 15))]
        else:
            specs += [("folder", f"{rng.choice(_WORDS)} {2020 + i}") for i in range(rng.randint(1, 3))]
            specs += [("file", self._file_name(rng, i)) for i in range(rng.randint(2, 12))]
        return specs

    @staticmethod
    def _file_name(rng: random.Random, i: int) -> str:
        return f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} {i:03d}{rng.choice(_EXTS)}"

    def children(self, node: BrowseNode) -> list[BrowseNode]:
        if node.children is not None:
            return node.children
        out: list[BrowseNode] = []
        if node.type != "file":
            rng = self._rng(node)
            rng.random()
            for i, (kind, name) in enumerate(self._child_specs(node)):
                key = f"{node.key},{hashed_uuid(self.point_id, node.key, i)}"
                child = BrowseNode(
                    key=key,
                    name=name,
                    type=kind,
                    web_url=f"{node.web_url}/{name}",
                    depth=node.depth + 1,
                    size=rng.randint(1_000, 50_000_000) if kind == "file" else 0,
                )
                self._plan(child)
                self.nodes[key] = child
                out.append(child)
        node.children = out
        return out

    def find(self, key: str) -> BrowseNode | None:
        found = self.nodes.get(key)
        if found is not None:
            return found
        parts = key.split(",")
        root_parts = self.root.key.split(",")
        if parts[: len(root_parts)] != root_parts:
            return None
        node = self.root
        for depth in range(len(root_parts) + 1, len(parts) + 1):
            prefix = ",".join(parts[:depth])
            self.children(node)
            nxt = self.nodes.get(prefix)
            if nxt is None:
                return None
            node = nxt
        return node

    @staticmethod
    def size_for(point_id: str) -> int:
        rng = random.Random(f"size|{point_id}")
        return rng.randint(50_000_000, 5_000_000_000)
