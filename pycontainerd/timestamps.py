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
    stamp = timestamp_pb2.Timestamp()
    if value is not None:
        set_datetime(stamp, value)
    return stamp


def set_datetime(stamp: timestamp_pb2.Timestamp, value: datetime | None) -> None:
    """Set a message's Timestamp field in place (present, zero for None): no copy."""
    stamp.SetInParent()
    if value is None:
        return
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    stamp.seconds = delta.days * 86400 + delta.seconds
    stamp.nanos = delta.microseconds * 1000
