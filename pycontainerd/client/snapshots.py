"""Snapshots: the layered filesystems containers run on, one snapshotter at a time.

``client.snapshots("overlayfs")`` gives a :class:`SnapshotService` bound to that
snapshotter; every call takes snapshot keys as containerd's snapshots API does:
``prepare`` makes an active (writable) snapshot on a committed parent, ``view``
a read-only one, ``commit`` turns an active snapshot into a committed one that
others can use as parent.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf import field_mask_pb2

from pycontainerd import errdefs
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2 as api
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2_grpc
from pycontainerd.api.types import mount_pb2
from pycontainerd.client.models import from_timestamp
from pycontainerd.client.rpc import Connection
from pycontainerd.mount import Mount

DEFAULT_SNAPSHOTTER = "overlayfs"


class Kind(enum.StrEnum):
    UNKNOWN = "Unknown"
    VIEW = "View"
    ACTIVE = "Active"
    COMMITTED = "Committed"


_KIND_FROM_API = {
    api.UNKNOWN: Kind.UNKNOWN,
    api.VIEW: Kind.VIEW,
    api.ACTIVE: Kind.ACTIVE,
    api.COMMITTED: Kind.COMMITTED,
}


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    parent: str
    kind: Kind
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Usage:
    """Disk space a snapshot uses by itself (not counting its parents)."""

    size: int
    inodes: int


def mount_from_api(message: mount_pb2.Mount) -> Mount:
    return Mount(message.type, message.source, message.target, list(message.options))


def mount_to_api(mount: Mount) -> mount_pb2.Mount:
    return mount_pb2.Mount(
        type=mount.type, source=mount.source, target=mount.target, options=list(mount.options)
    )


def mounts_to_api(mounts: Sequence[Mount]) -> list[mount_pb2.Mount]:
    return [mount_to_api(m) for m in mounts]


def _info_from_api(info: api.Info) -> SnapshotInfo:
    return SnapshotInfo(
        name=info.name,
        parent=info.parent,
        kind=_KIND_FROM_API.get(info.kind, Kind.UNKNOWN),
        labels=dict(info.labels),
        created_at=from_timestamp(info.created_at),
        updated_at=from_timestamp(info.updated_at),
    )


class SnapshotService:
    """One snapshotter's snapshots in the client's namespace."""

    def __init__(self, connection: Connection, snapshotter: str = DEFAULT_SNAPSHOTTER) -> None:
        self._conn = connection
        self._stub = snapshots_pb2_grpc.SnapshotsStub(connection.channel)
        self.snapshotter = snapshotter

    async def prepare(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """An active snapshot ``key`` on ``parent`` ("" for an empty one); returns its mounts."""
        request = api.PrepareSnapshotRequest(
            snapshotter=self.snapshotter, key=key, parent=parent, labels=dict(labels or {})
        )
        reply = await self._conn.unary(self._stub.Prepare, request)
        return [mount_from_api(m) for m in reply.mounts]

    async def view(
        self, key: str, parent: str, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """A read-only snapshot ``key`` of the committed ``parent``; returns its mounts."""
        request = api.ViewSnapshotRequest(
            snapshotter=self.snapshotter, key=key, parent=parent, labels=dict(labels or {})
        )
        reply = await self._conn.unary(self._stub.View, request)
        return [mount_from_api(m) for m in reply.mounts]

    async def mounts(self, key: str) -> list[Mount]:
        request = api.MountsRequest(snapshotter=self.snapshotter, key=key)
        reply = await self._conn.unary(self._stub.Mounts, request)
        return [mount_from_api(m) for m in reply.mounts]

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        """Commit the active snapshot ``key`` under ``name`` (``key`` is gone afterwards)."""
        request = api.CommitSnapshotRequest(
            snapshotter=self.snapshotter, name=name, key=key, labels=dict(labels or {})
        )
        await self._conn.unary(self._stub.Commit, request)

    async def remove(self, key: str) -> None:
        request = api.RemoveSnapshotRequest(snapshotter=self.snapshotter, key=key)
        await self._conn.unary(self._stub.Remove, request)

    async def stat(self, key: str) -> SnapshotInfo:
        request = api.StatSnapshotRequest(snapshotter=self.snapshotter, key=key)
        return _info_from_api((await self._conn.unary(self._stub.Stat, request)).info)

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except errdefs.NotFound:
            return False
        return True

    async def list(self, filters: Iterable[str] = ()) -> list[SnapshotInfo]:
        request = api.ListSnapshotsRequest(snapshotter=self.snapshotter, filters=list(filters))
        return [
            _info_from_api(info)
            async for reply in self._conn.server_stream(self._stub.List, request)
            for info in reply.info
        ]

    async def usage(self, key: str) -> Usage:
        request = api.UsageRequest(snapshotter=self.snapshotter, key=key)
        reply = await self._conn.unary(self._stub.Usage, request)
        return Usage(reply.size, reply.inodes)

    async def update_labels(self, key: str, labels: Mapping[str, str]) -> SnapshotInfo:
        """Set exactly these labels (an empty value removes one); others are kept."""
        request = api.UpdateSnapshotRequest(
            snapshotter=self.snapshotter,
            info=api.Info(name=key, labels=dict(labels)),
            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]),
        )
        return _info_from_api((await self._conn.unary(self._stub.Update, request)).info)
