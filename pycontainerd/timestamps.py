"""protobuf Timestamps: now, and from a datetime."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def from_datetime(value: datetime | None) -> timestamp_pb2.Timestamp:
    """``value`` as a Timestamp; the zero Timestamp for None."""
    stamp = timestamp_pb2.Timestamp()
    if value is not None:
        stamp.FromDatetime(value)
    return stamp
