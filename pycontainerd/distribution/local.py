"""The distribution stores over the daemon's own stores, for server-side pull, push and import.

:class:`LocalStores` gives one namespace of the metadata store (content,
images, snapshotters) and the configured differs the shape of
:class:`~pycontainerd.distribution.stores.Stores`, so the transfer service
runs the SDK's pull, unpack, push, import and export code in the daemon
without a gRPC round trip, and without dialling its own socket. Each call
runs where its store says (:func:`pycontainerd.metadata.placement.call`),
carries the lease of the block it runs in, and publishes the events the gRPC
services publish for the same change.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.message import Message

from pycontainerd import errdefs
from pycontainerd.api.events import content_pb2 as content_events
from pycontainerd.api.events import image_pb2 as image_events
from pycontainerd.api.events import snapshot_pb2 as snapshot_events
from pycontainerd.archive.isolated import settle_implied_dirs
from pycontainerd.content.models import ContentInfo as StoredContentInfo
from pycontainerd.diff.differs import Differ, first_implemented
from pycontainerd.diff.mounts import writable_overlay
from pycontainerd.diff.walking import WalkingDiffer
from pycontainerd.digest import Digest
from pycontainerd.distribution.coordination import PullCoordination, coordination_for
from pycontainerd.distribution.frames import WriteFrame, WriteSource, write_source
from pycontainerd.distribution.stores import ContentInfo, Image, StagedLayer
from pycontainerd.distribution.unpack import DEFAULT_SNAPSHOTTER
from pycontainerd.events.exchange import Exchange
from pycontainerd.metadata import images as image_records
from pycontainerd.metadata.async_content import AsyncContentStore, AsyncContentWriter
from pycontainerd.metadata.leases import LABEL_GC_EXPIRE, LeaseStore, Resource
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.snapshots import NamespacedSnapshotter, lease_resource_type
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.mount import Mount
from pycontainerd.remotes.manifest import Descriptor

#: How long a lease made for one transfer lives if the daemon dies before deleting it.
TRANSFER_LEASE_EXPIRY = timedelta(hours=24)

_current_lease: contextvars.ContextVar[str] = contextvars.ContextVar(
    "pycontainerd_local_lease", default=""
)


def _info(info: StoredContentInfo) -> ContentInfo:
    return ContentInfo(info.digest, info.size, dict(info.labels), info.created_at, info.updated_at)


class _Publisher:
    def __init__(self, namespace: str, exchange: Exchange | None) -> None:
        self._namespace = namespace
        self._exchange = exchange

    def __call__(self, topic: str, event: Message) -> None:
        if self._exchange is not None:
            self._exchange.publish(self._namespace, topic, event)


class LocalContentWriter:
    """A write straight into the content store: a frame's data, no wire bytes."""

    def __init__(
        self, writer: AsyncContentWriter, total: int, expected: str, publish: _Publisher
    ) -> None:
        self._publish = publish
        self._writer = writer
        self._total = total
        self._expected = expected

    @property
    def ref(self) -> str:
        return self._writer.ref

    @property
    def offset(self) -> int:
        return self._writer.status().offset

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self._writer.write(data)

    async def send(self, frame: WriteFrame) -> None:
        if frame.offset != self.offset:
            raise errdefs.InvalidArgument(
                f"content write {self.ref!r}: a frame for offset {frame.offset} cannot be "
                f"written at offset {self.offset}"
            )
        await self._writer.write(frame.data)

    async def commit(
        self, *, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None
    ) -> str:
        wanted = expected or self._expected
        digest = await self._writer.commit(
            size or self._total, Digest(wanted) if wanted else None, dict(labels or {})
        )
        size = self._writer.status().offset
        self._publish("/content/create", content_events.ContentCreate(digest=digest, size=size))
        return digest

    async def close(self) -> None:
        self._writer.close()


def _close_opened(opening: asyncio.Future[AsyncContentWriter]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


class LocalContent:
    """One namespace of the daemon's content store."""

    def __init__(
        self, store: AsyncContentStore, namespace: str, publish: _Publisher, leases: LeaseStore
    ) -> None:
        self._store = store
        self._leases = leases
        self._namespace = namespace
        self._publish = publish

    async def info(self, digest: str) -> ContentInfo:
        return _info(await self._store.info(self._namespace, Digest(digest)))

    async def info_or_none(self, digest: str) -> ContentInfo | None:
        try:
            return await self.info(digest)
        except errdefs.NotFound:
            return None

    async def read(
        self, digest: str, offset: int = 0, size: int = 0
    ) -> AsyncGenerator[bytes, None]:
        blob = await self._store.read(self._namespace, Digest(digest), offset, size)
        async for chunk in blob.chunks():
            yield chunk

    async def read_all(self, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.read(digest)])

    async def update_labels(self, digest: str, labels: Mapping[str, str]) -> ContentInfo:
        requested = StoredContentInfo(digest, 0, dict(labels))
        paths = [f"labels.{key}" for key in labels]
        return _info(await self._store.update(self._namespace, requested, paths))

    async def writer(self, ref: str, *, expected: str = "", total: int = 0) -> LocalContentWriter:
        digest = Digest(expected) if expected else None
        opening = asyncio.ensure_future(
            self._store.writer(self._namespace, ref, total, digest, _current_lease.get())
        )
        try:
            opened = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The open goes on in a worker: close what it opens, or the orphaned writer
            # would hold the ref (and an abort of it) until it is collected.
            opening.add_done_callback(_close_opened)
            raise
        return LocalContentWriter(opened, total, expected, self._publish)

    async def hold(self, digest: str) -> None:
        """Add stored content the caller is about to use to its lease (if it has one)."""
        lease = _current_lease.get()
        if lease:
            resource = Resource(digest, "content")
            await call(self._leases.add_resource, self._namespace, lease, resource)

    async def write(
        self,
        ref: str,
        source: WriteSource,
        *,
        expected: str = "",
        total: int = 0,
        labels: Mapping[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> str:
        writer = await self.writer(ref, expected=expected, total=total)
        try:
            await write_source(writer, source, total, progress)
            return await writer.commit(labels=labels)
        finally:
            await writer.close()

    async def abort(self, ref: str) -> None:
        await self._store.abort(self._namespace, ref)


def _record(image: Image) -> image_records.Image:
    t = image.target
    target = image_records.Descriptor(t.media_type, t.digest, t.size, dict(t.annotations))
    return image_records.Image(image.name, target, dict(image.labels))


def _image(record: image_records.Image) -> Image:
    t = record.target
    target = Descriptor(t.media_type, t.digest, t.size, dict(t.annotations))
    return Image(record.name, target, dict(record.labels), record.created_at, record.updated_at)


class LocalImages:
    """One namespace of the daemon's image records."""

    def __init__(
        self, store: image_records.ImageStore, namespace: str, publish: _Publisher
    ) -> None:
        self._store = store
        self._namespace = namespace
        self._publish = publish

    async def get(self, name: str) -> Image:
        return _image(await call(self._store.get, self._namespace, name))

    async def create(self, image: Image) -> Image:
        created = await call(self._store.create, self._namespace, _record(image))
        self._publish(
            "/images/create", image_events.ImageCreate(name=created.name, labels=created.labels)
        )
        return _image(created)

    async def update(self, image: Image) -> Image:
        """Point the record at ``image``'s target and labels."""
        updated = await call(self._store.update, self._namespace, _record(image), [])
        self._publish(
            "/images/update", image_events.ImageUpdate(name=updated.name, labels=updated.labels)
        )
        return _image(updated)

    async def create_or_update(self, image: Image) -> Image:
        while True:
            try:
                return await self.create(image)
            except errdefs.AlreadyExists:
                pass
            try:
                return await self.update(image)
            except errdefs.NotFound:
                continue  # removed between the two calls: create again


class LocalSnapshotter:
    """One snapshotter of the daemon in one namespace."""

    def __init__(
        self,
        snapshotter: NamespacedSnapshotter,
        name: str,
        namespace: str,
        publish: _Publisher,
        gc: GCScheduler | None,
    ) -> None:
        self.name = name
        self._snapshotter = snapshotter
        self._namespace = namespace
        self._publish = publish
        self._gc = gc

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists; inside a lease, the lease now holds it too.

        Unpack asks before it uses a snapshot another pull may have made: the
        snapshot must stay as long as this pull's lease, not only the other's.
        """
        try:
            await call(self._snapshotter.stat, self._namespace, key)
        except errdefs.NotFound:
            return False
        lease = _current_lease.get()
        if lease:
            resource = Resource(key, lease_resource_type(self.name))
            await call(self._snapshotter.leases.add_resource, self._namespace, lease, resource)
        return True

    async def rebase(self, key: str, parent: str) -> list[Mount]:
        return list(await call(self._snapshotter.rebase, self._namespace, key, parent))

    async def prepare(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        mounts = await call(
            self._snapshotter.prepare,
            self._namespace,
            key,
            parent,
            dict(labels or {}),
            _current_lease.get(),
        )
        self._publish(
            "/snapshot/prepare",
            snapshot_events.SnapshotPrepare(key=key, parent=parent, snapshotter=self.name),
        )
        return list(mounts)

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        await call(
            self._snapshotter.commit,
            self._namespace,
            name,
            key,
            dict(labels or {}),
            _current_lease.get(),
        )
        self._publish(
            "/snapshot/commit",
            snapshot_events.SnapshotCommit(key=key, name=name, snapshotter=self.name),
        )

    async def remove(self, key: str) -> None:
        await call(self._snapshotter.remove, self._namespace, key, _current_lease.get())
        self._publish(
            "/snapshot/remove", snapshot_events.SnapshotRemove(key=key, snapshotter=self.name)
        )
        if self._gc is not None:
            self._gc.schedule()  # the collection removes the snapshot from disk


class LocalApplier:
    """The daemon's differs, tried in order, applying in this namespace."""

    def __init__(self, differs: Sequence[Differ], namespace: str) -> None:
        self._differs = list(differs)
        self._namespace = namespace

    async def apply(self, layer: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        namespace, mounted = self._namespace, list(mounts)
        return await first_implemented(
            self._differs, lambda differ: call(differ.apply, namespace, layer, mounted)
        )


class LocalStager:
    """Stages layers in an overlay snapshotter of the daemon (a LayerStager)."""

    def __init__(self, snapshots: LocalSnapshotter, differ: WalkingDiffer, namespace: str) -> None:
        self._snapshots = snapshots
        self._differ = differ
        self._namespace = namespace

    async def stage(self, layer: Descriptor, key: str, labels: Mapping[str, str]) -> StagedLayer:
        mounts = await self._snapshots.prepare(key, "", labels)
        try:
            if len(mounts) != 1 or mounts[0].type != "bind":
                raise errdefs.FailedPrecondition(
                    f"snapshot {key!r} without a parent is not one directory: cannot stage"
                )
            target = Path(mounts[0].source)
            result = await call(self._differ.extract_isolated, self._namespace, layer, target)
        except BaseException:
            with contextlib.suppress(errdefs.ContainerdError):
                await self._snapshots.remove(key)
            raise
        return StagedLayer(key, result.diff_id, result.implied_dirs)

    async def settle(self, staged: StagedLayer, parent: str) -> bool:
        mounts = await self._snapshots.rebase(staged.key, parent)
        overlay = writable_overlay(mounts)
        if overlay is None:
            return False
        lowers = [Path(lower) for lower in overlay.lowers]
        upper = Path(overlay.upper)
        return await asyncio.to_thread(settle_implied_dirs, upper, lowers, staged.implied_dirs)


class LocalStores:
    """The daemon's stores in ``namespace``, as the distribution machinery uses them."""

    def __init__(
        self,
        metadata: MetadataStore,
        differs: Sequence[Differ],
        namespace: str,
        *,
        exchange: Exchange | None = None,
        gc: GCScheduler | None = None,
    ) -> None:
        self._metadata = metadata
        self._namespace = namespace
        self._publish = _Publisher(namespace, exchange)
        self._gc = gc
        self._content = LocalContent(
            AsyncContentStore(metadata.content), namespace, self._publish, metadata.leases
        )
        self._images = LocalImages(metadata.images, namespace, self._publish)
        self._differs = list(differs)
        self._diff = LocalApplier(differs, namespace)

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def content(self) -> LocalContent:
        return self._content

    @property
    def images(self) -> LocalImages:
        return self._images

    @property
    def diff(self) -> LocalApplier:
        return self._diff

    async def hold_content(self, digest: str) -> None:
        await self._content.hold(digest)

    @property
    def coordination(self) -> PullCoordination:
        return coordination_for(self._metadata)

    def stager(self, snapshotter: str) -> LocalStager | None:
        """Staging needs a snapshotter that rebases, the walking differ, and a limit above 1."""
        if self.coordination.max_concurrent_unpacks < 2:
            return None
        try:
            backend = self._metadata.snapshots.get(snapshotter)
        except errdefs.InvalidArgument:
            return None  # not loaded: the ordinary unpack says so
        differ = next((d for d in self._differs if isinstance(d, WalkingDiffer)), None)
        if not backend.supports_rebase or differ is None:
            return None
        return LocalStager(self.snapshots(snapshotter), differ, self._namespace)

    def snapshots(self, snapshotter: str = DEFAULT_SNAPSHOTTER) -> LocalSnapshotter:
        backend = self._metadata.snapshots.get(snapshotter)
        return LocalSnapshotter(backend, snapshotter, self._namespace, self._publish, self._gc)

    @contextlib.asynccontextmanager
    async def lease(self, lease_id: str = "") -> AsyncIterator[str]:
        """Use ``lease_id`` (the caller's lease) for every write in the block."""
        token = _current_lease.set(lease_id)
        try:
            yield lease_id
        finally:
            _current_lease.reset(token)

    @contextlib.asynccontextmanager
    async def lease_if_none(self) -> AsyncIterator[str]:
        """The lease the block already runs under, or a new one, deleted at the end."""
        if _current_lease.get():
            yield _current_lease.get()
            return
        leases = self._metadata.leases
        expiry = datetime.now(UTC) + TRANSFER_LEASE_EXPIRY
        labels = {LABEL_GC_EXPIRE: expiry.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        lease_id = f"transfer-{time.time_ns()}-{secrets.token_hex(4)}"
        created = await call(leases.create, self._namespace, lease_id, labels)
        token = _current_lease.set(created.id)
        try:
            yield created.id
        except BaseException:
            # A failed transfer leaves no half-written blob behind (the SDK's
            # pulls keep theirs, to resume; the daemon's client has gone).
            await self._abort_ingests(created.id)
            raise
        finally:
            _current_lease.reset(token)
            with contextlib.suppress(errdefs.NotFound):
                await call(leases.delete, self._namespace, created.id)
            if self._gc is not None:
                self._gc.schedule()

    async def _abort_ingests(self, lease_id: str) -> None:
        resources = await call(self._metadata.leases.list_resources, self._namespace, lease_id)
        for resource in resources:
            if resource.type == "ingests":
                with contextlib.suppress(errdefs.NotFound):
                    await self._content.abort(resource.id)
