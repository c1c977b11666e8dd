"""Timer schedules read as the Functions host reads them (NCRONTAB, seconds first; or a TimeSpan interval)."""

from __future__ import annotations

import datetime as dt

import pytest

from emulators.functions_host import next_occurrence

# A Thursday.
NEW_YEAR = dt.datetime(2026, 1, 1, 0, 0, 7)


def _next(schedule: str, after: dt.datetime, count: int = 1) -> list[dt.datetime]:
    found, at = [], after
    for _ in range(count):
        at = next_occurrence(schedule, at)
        found.append(at)
    return found


def test_every_five_minutes_fires_on_the_minute_and_never_at_the_given_time() -> None:
    assert _next("0 */5 * * * *", NEW_YEAR, 3) == [dt.datetime(2026, 1, 1, 0, m) for m in (5, 10, 15)]
    assert next_occurrence("0 */5 * * * *", dt.datetime(2026, 1, 1, 0, 5)) == dt.datetime(2026, 1, 1, 0, 10)
    # Microseconds past an occurrence are after it.
    assert next_occurrence("0 */5 * * * *", dt.datetime(2026, 1, 1, 0, 4, 59, 999_999)) == dt.datetime(2026, 1, 1, 0, 5)


def test_a_step_in_seconds_from_the_start_or_from_a_given_second() -> None:
    assert _next("*/10 * * * * *", NEW_YEAR, 3) == [dt.datetime(2026, 1, 1, 0, 0, s) for s in (10, 20, 30)]
    # a/n runs from a to the field's end: 5, 20, 35, 50, then the next minute's 5.
    assert _next("5/15 * * * * *", NEW_YEAR, 4) == [
        dt.datetime(2026, 1, 1, 0, 0, 20), dt.datetime(2026, 1, 1, 0, 0, 35), dt.datetime(2026, 1, 1, 0, 0, 50),
        dt.datetime(2026, 1, 1, 0, 1, 5),
    ]
    assert _next("10-20/5 * * * * *", NEW_YEAR, 4) == [
        dt.datetime(2026, 1, 1, 0, 0, 10), dt.datetime(2026, 1, 1, 0, 0, 15), dt.datetime(2026, 1, 1, 0, 0, 20),
        dt.datetime(2026, 1, 1, 0, 1, 10),
    ]


def test_ranges_hold_the_hours_of_a_working_day() -> None:
    assert next_occurrence("0 0 9-17 * * *", dt.datetime(2026, 1, 1, 17, 30)) == dt.datetime(2026, 1, 2, 9)
    assert next_occurrence("0 0 9-17 * * *", dt.datetime(2026, 1, 1, 12, 0)) == dt.datetime(2026, 1, 1, 13)
    # Written the other way round, NCrontab swaps the bounds.
    assert next_occurrence("0 0 17-9 * * *", dt.datetime(2026, 1, 1, 17, 30)) == dt.datetime(2026, 1, 2, 9)


def test_lists_in_any_field() -> None:
    assert _next("0 0,30 * * * *", NEW_YEAR, 3) == [
        dt.datetime(2026, 1, 1, 0, 30), dt.datetime(2026, 1, 1, 1, 0), dt.datetime(2026, 1, 1, 1, 30),
    ]
    assert _next("0 15 8,12,18 * * *", dt.datetime(2026, 1, 1, 12, 15), 2) == [
        dt.datetime(2026, 1, 1, 18, 15), dt.datetime(2026, 1, 2, 8, 15),
    ]
    assert _next("0 0 0 1,15 * *", NEW_YEAR, 2) == [dt.datetime(2026, 1, 15), dt.datetime(2026, 2, 1)]


def test_day_of_week_counts_from_sunday_0_and_takes_names() -> None:
    friday_evening = dt.datetime(2026, 1, 2, 18, 0)
    monday_0930 = dt.datetime(2026, 1, 5, 9, 30)
    assert next_occurrence("0 30 9 * * 1-5", friday_evening) == monday_0930
    assert next_occurrence("0 30 9 * * Mon-Fri", friday_evening) == monday_0930
    assert next_occurrence("0 30 9 * * monday", friday_evening) == monday_0930
    assert next_occurrence("0 0 0 * * 0", NEW_YEAR) == dt.datetime(2026, 1, 4)  # Sunday
    assert next_occurrence("0 0 0 * * SUN,sat", NEW_YEAR) == dt.datetime(2026, 1, 3)  # Saturday
    # Day of month and day of week must both match: the next Friday the 13th.
    assert next_occurrence("0 0 0 13 * Fri", NEW_YEAR) == dt.datetime(2026, 2, 13)
    assert next_occurrence("0 0 0 13 * 5", dt.datetime(2026, 3, 13, 1)) == dt.datetime(2026, 11, 13)


def test_the_next_occurrence_across_month_and_year_boundaries() -> None:
    assert next_occurrence("0 0 0 1 * *", dt.datetime(2026, 1, 31, 12)) == dt.datetime(2026, 2, 1)
    assert next_occurrence("0 */5 * * * *", dt.datetime(2026, 1, 31, 23, 58)) == dt.datetime(2026, 2, 1, 0, 0)
    # A day the month lacks is skipped: after 31 January comes 31 March.
    assert next_occurrence("0 0 12 31 * *", dt.datetime(2026, 1, 31, 13)) == dt.datetime(2026, 3, 31, 12)
    assert next_occurrence("0 0 0 29 2 *", NEW_YEAR) == dt.datetime(2028, 2, 29)
    assert next_occurrence("0 0 0 1 Jan *", dt.datetime(2026, 12, 31, 23, 59, 59)) == dt.datetime(2027, 1, 1)
    assert next_occurrence("0 0 6 1 jul,DECEMBER *", NEW_YEAR) == dt.datetime(2026, 7, 1, 6)


def test_five_fields_mean_second_zero_and_a_timespan_is_an_interval() -> None:
    assert next_occurrence("*/5 * * * *", NEW_YEAR) == dt.datetime(2026, 1, 1, 0, 5)
    assert next_occurrence("00:01:00", NEW_YEAR) == dt.datetime(2026, 1, 1, 0, 1, 7)
    aware = dt.datetime(2026, 1, 1, 0, 0, 7, tzinfo=dt.UTC)
    assert next_occurrence("0 */5 * * * *", aware) == dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "schedule",
    [
        "0 0 0 * * 7",  # day of week is 0-6
        "60 * * * * *",
        "0 0 24 * * *",
        "0 0 0 0 * *",
        "0 0 0 L * *",  # not NCRONTAB
        "0 0 0 ? * *",
        "0 0 0 * * Mon#2",
        "0 0 0 * Smarch *",
        "* * * *",
        "0 0 0 * * * 2026",
        "0 0 0 31 2 *",  # never occurs
    ],
)
def test_what_ncrontab_refuses_is_refused(schedule: str) -> None:
    with pytest.raises(ValueError):
        next_occurrence(schedule, NEW_YEAR)
