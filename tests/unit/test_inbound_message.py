"""What the host passes, read the way the host means it: 1-based delivery counts, instants in UTC."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest
from azure.functions.servicebus import ServiceBusMessage

from orchestrators.activation.records import order_key
from orchestrators.kernel.messages import from_functions_message, utc_instant


def _message(**overrides: object) -> ServiceBusMessage:
    fields: dict[str, object] = {
        "body": b"{}",
        "message_id": "m-1",
        "application_properties": {},
        "user_properties": {},
        "delivery_count": 1,
        "enqueued_time_utc": dt.datetime(2026, 11, 20, 3, 0, 0),  # naive, as the library parses the host's text
    }
    fields.update(overrides)
    return ServiceBusMessage(**fields)  # type: ignore[arg-type]


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """Run the worker in a zone 10 hours off UTC, as a machine configured for local time would be."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Honolulu"
    time.tzset()
    try:
        assert time.timezone != 0
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_naive_enqueued_time_is_read_as_utc_whatever_the_local_zone(far_from_utc: None) -> None:
    inbound = from_functions_message(_message())
    assert inbound.enqueued_time == dt.datetime(2026, 11, 20, 3, 0, 0, tzinfo=dt.UTC)
    expected_millis = int(dt.datetime(2026, 11, 20, 3, 0, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert order_key(inbound.enqueued_time, "r", 0).startswith(f"{expected_millis:015d}|")


def test_activation_order_follows_enqueue_time_across_zones(far_from_utc: None) -> None:
    early = from_functions_message(_message(enqueued_time_utc="2026-11-20T03:00:00.5"))
    late = from_functions_message(_message(enqueued_time_utc=dt.datetime(2026, 11, 20, 4, 0, tzinfo=dt.UTC)))
    assert early.enqueued_time is not None and late.enqueued_time is not None
    assert order_key(early.enqueued_time, "z", 0) < order_key(late.enqueued_time, "a", 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20T03:00:00", dt.datetime(2026, 11, 20, 3, tzinfo=dt.UTC)),
        ("2026-11-20T03:00:00Z", dt.datetime(2026, 11, 20, 3, tzinfo=dt.UTC)),
        ("2026-11-20T05:00:00+02:00", dt.datetime(2026, 11, 20, 3, tzinfo=dt.UTC)),
        ("not a time", None),
        (None, None),
        (17, None),
    ],
)
def test_host_instants_become_aware_utc(value: object, expected: dt.datetime | None) -> None:
    assert utc_instant(value) == expected


def test_delivery_count_is_the_hosts_one_based_count() -> None:
    assert from_functions_message(_message(delivery_count=1)).delivery_count == 1
    assert from_functions_message(_message(delivery_count=10)).delivery_count == 10
    # A missing or unreadable count is taken as a first delivery rather than breaking the invocation.
    assert from_functions_message(_message(delivery_count=None)).delivery_count == 1
    assert from_functions_message(_message(delivery_count="x")).delivery_count == 1
