"""Plain data objects the SDK returns, and their conversion from and to the API messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from pycontainerd.distribution.stores import ContentInfo, Image


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime | None:
    """A timezone-aware datetime, or None for an unset timestamp."""
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToDatetime(tzinfo=datetime.now().astimezone().tzinfo)


@dataclass(frozen=True)
class Version:
    version: str
    revision: str


@dataclass(frozen=True)
class Plugin:
    type: str
    id: str
    requires: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    exports: Mapping[str, str] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    init_error: str = ""  # empty when the plugin loaded

    @property
    def status(self) -> str:
        """What `ctr plugins ls` shows: ok, skip (not applicable here) or error."""
        if not self.init_error:
            return "ok"
        return "skip" if "skip plugin" in self.init_error else "error"


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContentStatus:
    """An active (unfinished) write, as `ctr content active` lists them."""

    ref: str
    offset: int
    total: int
    expected: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Lease:
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class LeaseResource:
    id: str
    type: str  # "content", "ingests" or "snapshots/<snapshotter>"


@dataclass(frozen=True)
class Envelope:
    """One event; ``event`` is the decoded payload, or None for a type we do not know."""

    timestamp: datetime | None
    namespace: str
    topic: str
    type_url: str
    event: Message | None


__all__ = [
    "ContentInfo",
    "ContentStatus",
    "Envelope",
    "Image",
    "Lease",
    "LeaseResource",
    "Namespace",
    "Plugin",
    "Version",
    "from_timestamp",
]
