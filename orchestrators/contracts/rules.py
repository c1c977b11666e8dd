"""The contract's rules for single values, in plain Python: what an identifier, a free text or an instant may be.

The pydantic models (`requests`) apply these rules field by field; the rest of the service uses them directly
(a message id is checked as a requestId, say). Nothing here imports pydantic, so the function app can import the
contract without paying for it at start-up.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

#: At most this many problems are listed in one rejection (then one "(more)" entry says how many were left out).
MAX_REPORTED_ERRORS = 50

# Patterns are used with fullmatch: `$` would also match before a trailing line break.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Table storage refuses / \ # ? and control characters in keys; Graph ids never contain them or spaces.
ID_TEXT = re.compile(r"[^\x00-\x20\x7f-\x9f/\\#?\ud800-\udfff]+")
EMAIL = re.compile(r"[^@\s/\\#?\x00-\x1f\x7f-\x9f]+@[^@\s/\\#?\x00-\x1f\x7f-\x9f]+\.[^@\s/\\#?\x00-\x1f\x7f-\x9f]+")
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# RFC 3339: date, time to at least the minute, a zone, in ASCII digits. Python's fromisoformat alone accepts more.
_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
#: Instants outside these years are refused: no restore point lies there, and date arithmetic stays in range.
EARLIEST_YEAR, LATEST_YEAR = 1970, 9998
#: How far back `selection.notBefore` reaches when not given (Microsoft 365 Backup keeps a year).
RETENTION = timedelta(days=365)
STRATEGIES = ("auto", "standard", "bulk")
#: Graph's limit on the drives of one bulk addition request.
BULK_MAX_DRIVES = 10_000
DESTINATION_TYPES = ("new", "inPlace")


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as an error message names it ("a string", "an array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def preview(value: Any, limit: int = 60) -> str:
    """A short, ASCII-safe rendering of a value for an error message, whatever its size or depth."""
    if isinstance(value, dict | list):
        return f"{json_type(value)} of {len(value)} items"
    if isinstance(value, str):
        text = json.dumps(value[:limit])
        return text if len(value) <= limit else text[:-1] + '..."'
    return json.dumps(value)[:limit] if isinstance(value, bool | int | float) or value is None else "?"


def is_request_id(value: Any) -> bool:
    return isinstance(value, str) and _REQUEST_ID.fullmatch(value) is not None


def is_id_text(value: Any, limit: int = 256) -> bool:
    """An identifier Graph could have issued and Table storage can hold: printable, no spaces, no / \\ # ?."""
    return (isinstance(value, str) and len(value) <= limit and ID_TEXT.fullmatch(value) is not None
            and value.isprintable())


def text_field_problem(value: Any, limit: int, printable: bool = False) -> str | None:
    """What is wrong with an optional free-text field (None and absent are fine), in the contract's words."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be a string, got {json_type(value)}"
    if not 1 <= len(value) <= limit:
        return f"must be 1 to {limit} characters long, got {len(value)}"
    if printable and not value.isprintable():
        return "must contain printable characters only"
    return None


def best_effort_incident_id(document: Any) -> str | None:
    """The incidentId of a document we are about to reject, if it is one the contract allows."""
    candidate = document.get("incidentId") if isinstance(document, dict) else None
    return candidate if isinstance(candidate, str) and text_field_problem(candidate, 128, True) is None else None


def best_effort_request_id(document: Any) -> str | None:
    """The requestId of a document we are about to reject, if it has a usable one."""
    if isinstance(document, dict):
        candidate = document.get("requestId")
        if is_request_id(candidate):
            return candidate
    return None


def parse_instant(value: str) -> datetime | str:
    """An RFC 3339 instant as an aware UTC datetime, or the contract's message for why it is not one."""
    m = _INSTANT.fullmatch(value)
    if m is None:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return f"is not an ISO 8601 date-time: {preview(value, 40)}"
        if "T" in value.upper() and not re.search(r"([Zz]|[+-]\d{2}:?\d{2})$", value):
            return "must carry a zone (for example 2026-11-20T03:00:00Z)"
        return f"is not an ISO 8601 date-time: {preview(value, 40)} (use 2026-11-20T03:00:00Z)"
    year = int(m[1])
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        return f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}, got {year}"
    fraction = (m[7] or "")[:6].ljust(6, "0")
    try:
        if m[11] and int(m[11]) > 59:
            raise ValueError("zone minutes must be 00 to 59")
        zone = UTC if m[8] else timezone(int(m[9] + "1") * timedelta(hours=int(m[10]), minutes=int(m[11])))
        parsed = datetime(year, int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0), int(fraction),
                          tzinfo=zone)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        return f"is not a valid date-time: {preview(value, 40)} ({exc})"
