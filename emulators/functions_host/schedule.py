"""Timer schedules as the Functions host reads them: NCRONTAB expressions and TimeSpan intervals.

NCRONTAB (the NCrontab library the timer extension uses): six fields, ``{second} {minute} {hour} {day} {month}
{day-of-week}`` (five without seconds, the second then being 0). Each field is ``*``, a value, a range ``a-b``
(given the other way round, it is swapped), a list ``a,b``, or a step ``*/n``, ``a-b/n`` or ``a/n`` (``a`` to the
field's maximum). Day of week 0-6, Sunday 0; months and days of week also by name or any prefix of it, in any case
(``Jan``, ``january``, ``Mon``). A value outside the field's range is an error (7 is not Sunday). Day of month and
day of week must both match. Nothing else (``L``, ``W``, ``#``, ``?``) is NCRONTAB. An occurrence is always after
the given time, never at it.

No library on PyPI reads exactly this: croniter (``second_at_beginning=True, day_or=False``) refuses full names
and accepts 7, ``L``, ``#`` and wrapping ranges; cronsim ORs day of month and day of week. So the parser is ours.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .host_json import timespan

log = logging.getLogger("emulators.functions_host")

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
# Long enough for the rarest schedule NCRONTAB can write (29 February on a given weekday: every 28 years).
_SEARCH_DAYS = 366 * 29


@dataclass(frozen=True)
class _Field:
    kind: str
    low: int
    high: int
    names: tuple[str, ...] = ()

    def value(self, text: str) -> int:
        if text[:1].isdigit():
            if not text.isdigit():
                raise ValueError(f"{text!r} is not a number")
            return int(text)
        if self.names and text:
            for index, name in enumerate(self.names):
                if name.startswith(text.lower()):
                    return self.low + index
        raise ValueError(f"{text!r} is not a value of the {self.kind} field")

    def parse(self, spec: str) -> tuple[int, ...]:
        values: set[int] = set()
        for part in spec.split(","):
            step = 1
            if "/" in part:
                part, step_text = part.split("/", 1)
                if not step_text.isdigit():
                    raise ValueError(f"{step_text!r} is not a step")
                step = max(1, int(step_text))
            if part == "*":
                start, end = self.low, self.high
            elif part.find("-") > 0:
                first, last = part.split("-", 1)
                start, end = sorted((self.value(first), self.value(last)))
            else:
                start = self.value(part)
                end = start if step == 1 else self.high
            if start < self.low or end > self.high:
                raise ValueError(f"{spec!r}: the {self.kind} field takes {self.low} to {self.high}")
            values.update(range(start, end + 1, step))
        return tuple(sorted(values))


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 6, _DAYS),
)


@dataclass(frozen=True)
class NCrontab:
    """A parsed NCRONTAB expression: the values each field allows, in order."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]

    @classmethod
    def parse(cls, expression: str) -> NCrontab:
        fields = expression.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ValueError(f"not an NCRONTAB expression (six fields, seconds first): {expression!r}")
        try:
            parsed = [spec.parse(text) for spec, text in zip(_FIELDS, fields, strict=True)]
        except ValueError as err:
            raise ValueError(f"not an NCRONTAB expression: {expression!r}: {err}") from None
        return cls(*parsed)

    def _date_matches(self, day: dt.date) -> bool:
        return day.month in self.months and day.day in self.days and (day.weekday() + 1) % 7 in self.days_of_week

    def _first_on(self, day: dt.date, after: dt.datetime | None) -> dt.time | None:
        """The first time of ``day`` that matches, later than ``after``'s time of day if given."""
        if after is None:
            return dt.time(self.hours[0], self.minutes[0], self.seconds[0])
        for hour in self.hours[bisect.bisect_left(self.hours, after.hour):]:
            later_hour = hour > after.hour
            minutes = self.minutes if later_hour else self.minutes[bisect.bisect_left(self.minutes, after.minute):]
            for minute in minutes:
                if later_hour or minute > after.minute:
                    return dt.time(hour, minute, self.seconds[0])
                i = bisect.bisect_right(self.seconds, after.second)
                if i < len(self.seconds):
                    return dt.time(hour, minute, self.seconds[i])
        return None

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first occurrence strictly after ``after`` (naive or aware; the wall clock of its zone)."""
        base = after.replace(microsecond=0)
        day = base.date()
        for offset in range(_SEARCH_DAYS):
            if self._date_matches(day):
                found = self._first_on(day, base if offset == 0 else None)
                if found is not None:
                    return dt.datetime.combine(day, found, tzinfo=after.tzinfo)
            day += dt.timedelta(days=1)
        raise ValueError(f"{self} never occurs")


def is_interval(schedule: str) -> bool:
    """Whether a timer schedule is a TimeSpan interval (``00:05:00``) rather than an NCRONTAB expression."""
    return len(schedule.split()) == 1 and ":" in schedule


def next_occurrence(schedule: str, after: dt.datetime) -> dt.datetime:
    """Next time matching an NCRONTAB expression (6 fields with seconds, or 5) or a TimeSpan interval."""
    if is_interval(schedule):
        return after + dt.timedelta(seconds=timespan(schedule))
    return NCrontab.parse(schedule).next_after(after)


async def run_on_schedule(
    schedule: str, fire: Callable[[], Awaitable[object]], stopping: asyncio.Event, *, run_on_startup: bool = False
) -> None:
    """Call ``fire`` at each occurrence of ``schedule`` (this machine's local time) until ``stopping`` is set."""
    if run_on_startup:
        await fire()
    while not stopping.is_set():
        due = next_occurrence(schedule, dt.datetime.now())
        delay = max(0.0, (due - dt.datetime.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
            return
        await fire()
