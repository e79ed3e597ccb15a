"""Our fast timestamp conversions give what protobuf's own (slower) ones give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from pycontainerd import timestamps
from pycontainerd.metadata.db import from_ns

MOMENTS = [
    datetime(2026, 12, 3, 11, 40, 0, 123456, tzinfo=UTC),
    datetime(2026, 12, 3, 11, 40, 0, 999999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(2026, 6, 1, 8, 0, 0, 1, tzinfo=timezone(timedelta(hours=-7))),
    datetime(2026, 6, 1, 8, 0, 0, 250000),  # naive: taken as UTC, as FromDatetime does
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_from_datetime_matches_protobuf(moment: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment)
    assert timestamps.from_datetime(moment) == expected


def test_from_datetime_none_is_the_zero_timestamp() -> None:
    assert timestamps.from_datetime(None) == timestamp_pb2.Timestamp()


@pytest.mark.parametrize(
    "stamp", [0, 1, 999, 1_764_762_000_123_456_789, 1_764_762_000_999_999_999, -1_500_000_000]
)
def test_from_ns_keeps_microseconds(stamp: int) -> None:
    seconds, rest = divmod(stamp, 1_000_000_000)
    expected = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)
    assert from_ns(stamp) == expected
    assert from_ns(stamp).tzinfo is UTC
