"""protobuf Timestamps: now, and from a datetime."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_datetime(value: datetime | None) -> timestamp_pb2.Timestamp:
    """``value`` as a Timestamp (a naive one taken as UTC); the zero Timestamp for None.

    What ``Timestamp.FromDatetime`` gives, in a third of its time: lists convert
    two per record.
    """
    if value is None:
        return timestamp_pb2.Timestamp()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000
    )
