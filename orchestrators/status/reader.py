"""Reads what a status answer needs from the ledger, by key and partition only (never a scan of the table).

Table calls for one request (`restores/{id}`), side by side where they can be: 1 query of its own partition
(request, batch and outcome rows: a 200-session request has 401, one page), 1 point read of the slots row; when
a session may be waiting, 1 page of the activation queue's head (positions of the first 1,000 waiting sessions);
and point reads of tracking rows only where nothing else tells the status: the request's slot holders (at most
`MAX_ACTIVE_SESSIONS`), and, while more than 1,000 sessions wait, its unqueued sessions if it was not activated as
a whole (created with `activate: false`). A 200-session request therefore costs 3 calls, plus up to 25 point
reads, plus up to 200 (32 at a time) only in that last case.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables.aio import TableClient

from orchestrators.adapters.tables import status_rows
from orchestrators.status import view


@dataclass
class Shared:
    """The tenant-wide part of a status, read at most once per answer: the slots row, and the head of the
    activation queue only when a session may be waiting in it."""

    holders: dict[str, dict[str, Any]]
    paused_until: datetime | None
    positions: dict[str, int] | None = None  # None: not read yet
    truncated: bool = False


class StatusReader:
    def __init__(self, table: TableClient, *, max_active_sessions: int, window_days: int,
                 in_place_requires_approval: bool = False) -> None:
        self.table = table
        self.max_active_sessions = max_active_sessions
        self.window_days = window_days
        self.in_place_requires_approval = in_place_requires_approval

    @classmethod
    def from_settings(cls, table: TableClient, settings: Any) -> StatusReader:
        return cls(table, max_active_sessions=settings.max_active_sessions, window_days=settings.status_window_days,
                   in_place_requires_approval=settings.in_place_requires_approval)

    async def shared(self) -> Shared:
        holders, paused = await status_rows.slots(self.table)
        return Shared(holders, paused)

    async def _positions(self, shared: Shared) -> Shared:
        if shared.positions is None:
            shared.positions, shared.truncated = await status_rows.queue_head(self.table)
        return shared

    async def request(self, request_id: str, shared: Shared | None = None,
                      live: bool = True) -> dict[str, Any] | None:
        """One request's status, or None when the ledger does not know it. `live=False` reads no tracking rows
        (the incident list): sessions nothing else speaks for are reported from what their request asked."""
        if shared is None:
            rows, shared = await asyncio.gather(status_rows.request_rows(self.table, request_id), self.shared())
        else:
            rows = await status_rows.request_rows(self.table, request_id)
        assert shared is not None
        if rows is None:
            return None
        if view.may_wait(rows, shared.holders):
            shared = await self._positions(shared)
        activation = view.Activation(shared.holders, shared.positions or {})
        wanted = view.needs_tracking_row(rows, activation, queue_complete=not shared.truncated) if live else []
        if wanted:
            tracked = await status_rows.tracked_sessions(self.table, wanted)
            activation = view.Activation(shared.holders, shared.positions or {}, tracked)
        return view.request_status(rows, activation, datetime.now(UTC),
                                   in_place_requires_approval=self.in_place_requires_approval)

    async def incident(self, incident_id: str, live: bool = True,
                       shared: Shared | None = None) -> list[dict[str, Any]]:
        """The status of every request of the incident (empty when none)."""
        if shared is None:
            ids, shared = await asyncio.gather(status_rows.incident_request_ids(self.table, incident_id),
                                               self.shared())
        else:
            ids = await status_rows.incident_request_ids(self.table, incident_id)
        assert shared is not None
        found = await asyncio.gather(*(self.request(i, shared, live) for i in ids))
        return [s for s in found if s is not None]

    async def incidents(self) -> list[dict[str, Any]]:
        """The incident list of the last `window_days` days, newest first."""
        today = datetime.now(UTC).date()
        ids, shared = await asyncio.gather(status_rows.recent_incidents(self.table, self.window_days, today),
                                           self.shared())
        shared = await self._positions(shared)  # once for all, rather than per request
        statuses = await asyncio.gather(*(self.incident(i, False, shared) for i in ids))
        return view.incidents_list([view.incident_entry(i, s) for i, s in zip(ids, statuses, strict=True) if s])

    async def capacity(self) -> dict[str, Any]:
        (holders, paused), waiting = await asyncio.gather(status_rows.slots(self.table),
                                                          status_rows.queue_length(self.table))
        return view.capacity_status(self.max_active_sessions, holders, waiting, paused, datetime.now(UTC))
