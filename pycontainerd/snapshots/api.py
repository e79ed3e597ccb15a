"""What every snapshotter offers, independent of how it stores files.

The vocabulary is containerd's: an *active* snapshot (writable, named by a
key) is made on top of a *committed* parent (read-only, named by a name);
committing an active snapshot turns it into a new committed one. A *view* is a
read-only snapshot of a parent that can never be committed.

Snapshotters are synchronous; the daemon calls them from a thread pool. They
know nothing of namespaces: the metadata layer above prefixes keys.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pycontainerd.mount import Mount

EPOCH = datetime.fromtimestamp(0, UTC)


class Kind(enum.IntEnum):
    """Snapshot kinds, numbered as the snapshots API's ``Kind`` enum."""

    UNKNOWN = 0
    VIEW = 1
    ACTIVE = 2
    COMMITTED = 3


@dataclass
class SnapshotInfo:
    """What a snapshotter tells about a snapshot (the API's ``Info``)."""

    name: str
    kind: Kind = Kind.UNKNOWN
    parent: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    created: datetime = EPOCH
    updated: datetime = EPOCH


@dataclass(frozen=True)
class Usage:
    """Disk used by a snapshot's own layer: bytes allocated and distinct inodes."""

    inodes: int = 0
    size: int = 0


WalkFilter = Callable[[SnapshotInfo], bool]


class Snapshotter(Protocol):
    """The snapshotter interface the metadata layer and services build on."""

    def prepare(
        self, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]:
        """Create a writable snapshot `key` on top of committed `parent`."""
        ...

    def view(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        """Create a read-only snapshot `key` of committed `parent`."""
        ...

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active or view snapshot."""
        ...

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        """Turn active snapshot `key` into committed snapshot `name`."""
        ...

    def remove(self, key: str) -> None:
        """Remove a snapshot that has no children."""
        ...

    #: Whether `rebase` is supported.
    supports_rebase: bool

    def rebase(self, key: str, parent: str) -> list[Mount]:
        """Put active `key`, made without a parent, on committed `parent`, files untouched."""
        ...

    def stat(self, key: str) -> SnapshotInfo: ...

    def update(self, info: SnapshotInfo, fieldpaths: Sequence[str] = ()) -> SnapshotInfo:
        """Change labels of `info.name` (fieldpaths ``labels`` or ``labels.<key>``)."""
        ...

    def usage(self, key: str) -> Usage: ...

    def walk(self, filter: WalkFilter | None = None) -> Iterator[SnapshotInfo]: ...

    def cleanup(self) -> None:
        """Reclaim directories left behind by crashes or removals."""
        ...

    def close(self) -> None: ...
