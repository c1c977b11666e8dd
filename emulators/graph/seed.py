"""The seeded tenant: drives, one OneDrive policy, lazily derived restore points and browse trees.

Restore points are never materialised: a point is ``(drive index, slot)`` and its GUID-shaped id carries both
(XOR-masked) plus a keyed hash, so an id resolves back to its drive and protection time in O(1).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from .clock import iso

TEN_MINUTES = 600
DAY = 86400
WEEK = 7 * DAY
RETENTION = 365 * DAY
# Graph's OneDrive schedule: every 10 minutes for 14 days, then weekly up to a year.
FINE_SLOTS = 14 * DAY // TEN_MINUTES  # 2016
WEEKLY_SLOTS = 50  # the oldest weekly point is 14 days + 49 weeks (357 days) old
# Guess: a point is tagged fastRestore every 6 hours within the first 14 days (Graph does not document
# which points are fast; only some are).
FAST_EVERY = 36
# an odd multiplier (and its inverse mod 2**48) so neighbouring slots get unrelated-looking id tails
_MASK48 = (1 << 48) - 1
_MIX = 0x9E3779B97F4B
_UNMIX = pow(_MIX, -1, 1 << 48)
MY_SITE_HOST = "https://contoso-my.sharepoint.com"
SITES_HOST = "https://contoso.sharepoint.com"
DOMAIN = "contoso.com"


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hashed_uuid(*parts: object) -> str:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


@dataclass(slots=True)
class Drive:
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
class RestorePointRef:
    drive: Drive
    slot: int
    time: float
    fast: bool
    id: str

    @property
    def expiration(self) -> float:
        return self.time + RETENTION


@dataclass
class Tenant:
    seed: int
    drive_count: int
    anchor: float
    unprotected_fraction: float = 0.02
    expired_per_drive: int = 2
    drives: list[Drive] = field(default_factory=list)
    policy_id: str = ""
    policy_created: float = 0.0
    by_id: dict[str, Drive] = field(default_factory=dict)
    by_email: dict[str, Drive] = field(default_factory=dict)
    by_directory_object: dict[str, Drive] = field(default_factory=dict)
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
        unprotected = set(
            rng.sample(range(self.drive_count), int(self.drive_count * self.unprotected_fraction))
            if self.drive_count
            else []
        )
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
        # slot times, newest first (strictly decreasing)
        self.slot_times: list[float] = [self.anchor - k * TEN_MINUTES for k in range(FINE_SLOTS)]
        base = self.anchor - 14 * DAY
        self.slot_times += [base - j * WEEK for j in range(WEEKLY_SLOTS + self.expired_per_drive)]
        self.live_slots = FINE_SLOTS + WEEKLY_SLOTS
        # increasing copy for bisect
        self._neg_times = [-t for t in self.slot_times]

    # ---- restore point ids -------------------------------------------------------------------------------
    def _mac(self, drive: int, slot: int) -> bytes:
        return hashlib.blake2b(
            drive.to_bytes(4, "big") + slot.to_bytes(2, "big"), key=self._key, digest_size=10
        ).digest()

    def point_id(self, drive: int, slot: int) -> str:
        mac = bytearray(self._mac(drive, slot))
        mac[6] = (mac[6] & 0x0F) | 0x40
        mac[8] = (mac[8] & 0x3F) | 0x80
        tail = ((((drive << 16) | slot) ^ self._mask) * _MIX) & _MASK48
        return str(uuid.UUID(bytes=bytes(mac) + tail.to_bytes(6, "big")))

    def point(self, drive: int, slot: int) -> RestorePointRef:
        d = self.drives[drive]
        return RestorePointRef(
            drive=d,
            slot=slot,
            time=self.slot_times[slot],
            fast=self.is_fast_slot(slot),
            id=self.point_id(drive, slot),
        )

    def resolve_point(self, point_id: str) -> RestorePointRef | None:
        """Map a restore point id back to its drive and slot (None if it was never issued)."""
        try:
            raw = uuid.UUID(str(point_id)).bytes
        except (ValueError, AttributeError, TypeError):
            return None
        tail = ((int.from_bytes(raw[10:], "big") * _UNMIX) & _MASK48) ^ self._mask
        drive, slot = tail >> 16, tail & 0xFFFF
        if drive >= self.drive_count or slot >= len(self.slot_times):
            return None
        d = self.drives[drive]
        if not d.protected:
            return None
        mac = bytearray(self._mac(drive, slot))
        mac[6] = (mac[6] & 0x0F) | 0x40
        mac[8] = (mac[8] & 0x3F) | 0x80
        if bytes(mac) != raw[:10]:
            return None
        return self.point(drive, slot)

    def is_expired(self, ref: RestorePointRef, now: float) -> bool:
        return ref.slot >= self.live_slots or ref.expiration <= now or ref.id in self.expired_ids

    # ---- slot ranges -------------------------------------------------------------------------------------
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
        neg = self._neg_times
        lo = 0
        if end is not None:
            lo = bisect_right(neg, -end) if end_exclusive else bisect_left(neg, -end)
        hi = n
        if start is not None:
            hi = bisect_left(neg, -start) if start_exclusive else bisect_right(neg, -start)
        lo = min(lo, n)
        return lo, max(lo, min(hi, n))

    @staticmethod
    def is_fast_slot(slot: int) -> bool:
        return slot < FINE_SLOTS and slot % FAST_EVERY == 0

    def pick_point(
        self,
        drive: Drive,
        start: float | None,
        end: float | None,
        *,
        latest: bool,
        fast_only: bool,
        now: float,
    ) -> RestorePointRef | None:
        """One restore point of ``drive`` in the window, the newest or the oldest, optionally fast only."""
        if not drive.protected:
            return None
        lo, hi = self.slot_range(start, end)
        if fast_only:
            first = -(-lo // FAST_EVERY) * FAST_EVERY
            candidates: range = range(first, min(hi, FINE_SLOTS), FAST_EVERY)
        else:
            candidates = range(lo, hi)
        ordered = candidates if latest else reversed(candidates)
        for slot in ordered:
            ref = self.point(drive.index, slot)
            if not self.is_expired(ref, now):
                return ref
        return None

    # ---- JSON shapes -------------------------------------------------------------------------------------
    def drive_json(self, d: Drive) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.driveProtectionUnit",
            "id": d.id,
            "policyId": d.policy_id,
            "protectionSources": "manual",
            "status": "protected" if d.protected else "unprotected",
            "createdBy": {"application": {"id": "", "displayName": "Microsoft 365 Backup"}},
            "createdDateTime": iso(d.created),
            "lastModifiedBy": {"application": {"id": "", "displayName": "Microsoft 365 Backup"}},
            "lastModifiedDateTime": iso(d.created),
            "error": None,
            "offboardRequestedDateTime": "0001-01-01T00:00:00Z",
            "directoryObjectId": d.directory_object_id,
            "displayName": d.display_name,
            "email": d.email,
        }

    def point_json(self, ref: RestorePointRef, *, expand_unit: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": ref.id,
            "protectionDateTime": iso(ref.time),
            "expirationDateTime": iso(ref.expiration),
            "tags": "fastRestore" if ref.fast else "none",
        }
        if expand_unit:
            body["protectionUnit"] = {
                "@odata.type": "#microsoft.graph.driveProtectionUnit",
                "id": ref.drive.id,
                "policyId": ref.drive.policy_id,
                "directoryObjectId": ref.drive.directory_object_id,
                "email": ref.drive.email,
            }
        return body

    def policy_json(self) -> dict[str, Any]:
        stamp = iso(self.policy_created)
        return {
            "@odata.type": "#microsoft.graph.oneDriveForBusinessProtectionPolicy",
            "id": self.policy_id,
            "displayName": "OneDrive backup policy",
            "isEnabled": True,
            "status": "active",
            "createdBy": {"user": {"id": None, "displayName": "Backup Administrator"}},
            "createdDateTime": stamp,
            "lastModifiedBy": {"user": {"id": None, "displayName": "Backup Administrator"}},
            "lastModifiedDateTime": stamp,
            "retentionSettings": [{"period": "P365D", "interval": "PT10M"}],
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
    type: str  # documentLibrary | folder | file
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
    """A deterministic folder tree for one restore point, generated level by level on demand."""

    def __init__(self, point_id: str, web_url: str) -> None:
        self.point_id = point_id
        key = ",".join(hashed_uuid(point_id, part) for part in ("site", "web", "list"))
        self.root = BrowseNode(
            key=key, name="Documents", type="documentLibrary", web_url=f"{web_url}/Documents", depth=0
        )
        self.nodes: dict[str, BrowseNode] = {key: self.root}
        self._plan(self.root)

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
        if node.depth == 0:
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
