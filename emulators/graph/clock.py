"""Emulated clock: wall time scaled by a factor plus manual advances."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Emulated time in epoch seconds (float).

    ``now = start + (monotonic elapsed) * scale + manual offset``.  The scale can be changed at run time
    (the clock is re-based so time never jumps), and tests move it forward with :meth:`advance`.
    """

    def __init__(self, start: float | None = None, scale: float = 1.0) -> None:
        self._start = time.time() if start is None else float(start)
        self._mono0 = time.monotonic()
        self._scale = float(scale)
        self._offset = 0.0

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        return self._start + (time.monotonic() - self._mono0) * self._scale + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the emulated clock only moves forward")
        self._offset += float(seconds)
        return self.now()

    def set_scale(self, scale: float) -> None:
        if scale < 0:
            raise ValueError("clock scale must be >= 0")
        current = self.now()
        self._start = current
        self._mono0 = time.monotonic()
        self._offset = 0.0
        self._scale = float(scale)


def iso(ts: float) -> str:
    """Format epoch seconds the way Graph does (UTC, 'Z' suffix, 7 fractional digits at most)."""
    dt = datetime.fromtimestamp(ts, UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    """Parse an ISO 8601 date-time (``Z`` or offset; naive means UTC) to epoch seconds."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.11 accepts up to 6 fractional digits reliably; Graph sometimes sends 7.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        text = head + "." + (digits[:6] or "0") + rest[i:]
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
