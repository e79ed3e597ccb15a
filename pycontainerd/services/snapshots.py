"""The snapshots service: the namespaced snapshotters over gRPC.

Snapshotter calls touch the disk (copies, disk usage walks, fsync), so they
run in worker threads, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from google.protobuf import empty_pb2

from pycontainerd import errdefs, filters, plugin
from pycontainerd.api.events import snapshot_pb2 as events
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2 as api
from pycontainerd.api.types import mount_pb2
from pycontainerd.events.exchange import Exchange
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.snapshots import NamespacedSnapshotter, Snapshotters
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.mount import Mount
from pycontainerd.services.base import field_paths, lease_of, namespace_of, rpc, timestamp
from pycontainerd.snapshots.api import Kind, SnapshotInfo

LIST_BATCH = 100


def mounts_to_api(mounts: Sequence[Mount]) -> list[mount_pb2.Mount]:
    return [
        mount_pb2.Mount(type=m.type, source=m.source, target=m.target, options=m.options)
        for m in mounts
    ]


def info_to_api(info: SnapshotInfo) -> api.Info:
    return api.Info(
        name=info.name,
        parent=info.parent,
        kind=cast("api.Kind", int(info.kind)),
        labels=info.labels,
        created_at=timestamp(info.created),
        updated_at=timestamp(info.updated),
    )


def snapshot_adaptor(info: SnapshotInfo) -> filters.Adaptor:
    """Filter fields as containerd's: kind, name, parent (present even when empty), labels."""
    kind = info.kind.name.lower() if info.kind != Kind.UNKNOWN else None
    return filters.adapt(
        {"kind": kind, "name": info.name, "parent": info.parent},
        info.labels,
        empty_is_absent=False,
    )


class SnapshotsService:
    def __init__(self, snapshotters: Snapshotters, exchange: Exchange, gc: GCScheduler) -> None:
        self.snapshotters = snapshotters
        self.exchange = exchange
        self.gc = gc

    def _get(self, name: str) -> NamespacedSnapshotter:
        return self.snapshotters.get(name)

    @rpc
    async def Prepare(  # noqa: N802
        self, request: api.PrepareSnapshotRequest, context: ServicerContext
    ):
        namespace = namespace_of(context)
        mounts = await call(
            self._get(request.snapshotter).prepare,
            namespace,
            request.key,
            request.parent,
            dict(request.labels),
            lease_of(context),
        )
        self.exchange.publish(
            namespace,
            "/snapshot/prepare",
            events.SnapshotPrepare(
                key=request.key, parent=request.parent, snapshotter=request.snapshotter
            ),
        )
        return api.PrepareSnapshotResponse(mounts=mounts_to_api(mounts))

    @rpc
    async def View(self, request: api.ViewSnapshotRequest, context: ServicerContext):  # noqa: N802
        mounts = await call(
            self._get(request.snapshotter).view,
            namespace_of(context),
            request.key,
            request.parent,
            dict(request.labels),
            lease_of(context),
        )
        return api.ViewSnapshotResponse(mounts=mounts_to_api(mounts))

    @rpc
    async def Mounts(self, request: api.MountsRequest, context: ServicerContext):  # noqa: N802
        mounts = await call(
            self._get(request.snapshotter).mounts, namespace_of(context), request.key
        )
        return api.MountsResponse(mounts=mounts_to_api(mounts))

    @rpc
    async def Commit(  # noqa: N802
        self, request: api.CommitSnapshotRequest, context: ServicerContext
    ):
        namespace = namespace_of(context)
        if request.parent:
            active = await call(self._get(request.snapshotter).stat, namespace, request.key)
            if active.parent != request.parent:
                raise errdefs.NotImplemented_(
                    f"committing {request.key!r} onto parent {request.parent!r} (it has "
                    f"{active.parent!r}) would rebase it: not supported by pycontainerd"
                )
        await call(
            self._get(request.snapshotter).commit,
            namespace,
            request.name,
            request.key,
            dict(request.labels),
            lease_of(context),
        )
        self.exchange.publish(
            namespace,
            "/snapshot/commit",
            events.SnapshotCommit(
                key=request.key, name=request.name, snapshotter=request.snapshotter
            ),
        )
        return empty_pb2.Empty()

    @rpc
    async def Remove(  # noqa: N802
        self, request: api.RemoveSnapshotRequest, context: ServicerContext
    ):
        namespace = namespace_of(context)
        await call(self._get(request.snapshotter).remove, namespace, request.key, lease_of(context))
        self.exchange.publish(
            namespace,
            "/snapshot/remove",
            events.SnapshotRemove(key=request.key, snapshotter=request.snapshotter),
        )
        self.gc.schedule()  # the collection removes the snapshot from disk
        return empty_pb2.Empty()

    @rpc
    async def Stat(self, request: api.StatSnapshotRequest, context: ServicerContext):  # noqa: N802
        info = await call(self._get(request.snapshotter).stat, namespace_of(context), request.key)
        return api.StatSnapshotResponse(info=info_to_api(info))

    @rpc
    async def Update(  # noqa: N802
        self, request: api.UpdateSnapshotRequest, context: ServicerContext
    ):
        requested = SnapshotInfo(name=request.info.name, labels=dict(request.info.labels))
        info = await call(
            self._get(request.snapshotter).update,
            namespace_of(context),
            requested,
            field_paths(request.update_mask),
        )
        return api.UpdateSnapshotResponse(info=info_to_api(info))

    @rpc
    async def List(self, request: api.ListSnapshotsRequest, context: ServicerContext):  # noqa: N802
        found = await call(self._get(request.snapshotter).list, namespace_of(context))
        selected = [
            info_to_api(i) for i in await filters.select(request.filters, found, snapshot_adaptor)
        ]
        for start in range(0, len(selected), LIST_BATCH):
            yield api.ListSnapshotsResponse(info=selected[start : start + LIST_BATCH])

    @rpc
    async def Usage(self, request: api.UsageRequest, context: ServicerContext):  # noqa: N802
        usage = await call(self._get(request.snapshotter).usage, namespace_of(context), request.key)
        return api.UsageResponse(size=usage.size, inodes=usage.inodes)

    @rpc
    async def Cleanup(self, request: api.CleanupRequest, context: ServicerContext):  # noqa: N802
        namespace_of(context)  # required, as for every snapshot call
        await call(self._get(request.snapshotter).cleanup)
        return empty_pb2.Empty()

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Snapshots"], self)


@plugin.register(plugin.GRPC, "snapshots", requires=(plugin.METADATA, plugin.EVENT, plugin.GC))
def init_snapshots(ic: plugin.InitContext) -> SnapshotsService:
    metadata: MetadataStore = ic.get(plugin.METADATA)
    return SnapshotsService(metadata.snapshots, ic.get(plugin.EVENT), ic.get(plugin.GC))
