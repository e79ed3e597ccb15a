"""The content service: blobs by digest, and the streaming, resumable Write."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from google.protobuf import empty_pb2

from pycontainerd import errdefs, filters, plugin
from pycontainerd.api.events import content_pb2 as events
from pycontainerd.api.services.content.v1 import content_pb2 as api
from pycontainerd.content.models import IngestStatus
from pycontainerd.digest import Digest
from pycontainerd.events.exchange import Exchange
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.async_content import AsyncContentStore, AsyncContentWriter
from pycontainerd.metadata.content import ContentInfo
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.services.base import field_paths, lease_of, namespace_of, rpc, timestamp

LIST_BATCH = 100
READ_CHUNK = 1 << 20


def _info_to_api(info: ContentInfo) -> api.Info:
    return api.Info(
        digest=info.digest,
        size=info.size,
        labels=info.labels,
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
    )


def _status_to_api(status: IngestStatus) -> api.Status:
    return api.Status(
        ref=status.ref,
        offset=status.offset,
        total=status.total,
        expected=str(status.expected or ""),
        started_at=timestamp(status.started_at),
        updated_at=timestamp(status.updated_at),
    )


def _expected_digest(value: str) -> Digest | None:
    """The request's expected digest, parsed once here and passed down as a Digest."""
    return Digest(value) if value else None


class ContentService:
    def __init__(self, metadata: MetadataStore, exchange: Exchange, gc: GCScheduler) -> None:
        self.store = AsyncContentStore(metadata.content)
        self.exchange = exchange
        self.gc = gc

    @rpc
    async def Info(self, request: api.InfoRequest, context: ServicerContext):  # noqa: N802
        info = await self.store.info(namespace_of(context), Digest(request.digest))
        return api.InfoResponse(info=_info_to_api(info))

    @rpc
    async def Update(self, request: api.UpdateRequest, context: ServicerContext):  # noqa: N802
        requested = ContentInfo(request.info.digest, 0, dict(request.info.labels))
        info = await self.store.update(
            namespace_of(context), requested, field_paths(request.update_mask)
        )
        return api.UpdateResponse(info=_info_to_api(info))

    @rpc
    async def List(self, request: api.ListContentRequest, context: ServicerContext):  # noqa: N802
        found = await self.store.list(namespace_of(context))
        matching = await filters.select(
            request.filters,
            found,
            lambda i: filters.adapt({"digest": i.digest, "size": i.size}, i.labels),
        )
        selected = [_info_to_api(i) for i in matching]
        for start in range(0, len(selected), LIST_BATCH):
            yield api.ListContentResponse(info=selected[start : start + LIST_BATCH])

    @rpc
    async def Delete(self, request: api.DeleteContentRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        await self.store.delete(namespace, Digest(request.digest))
        self.exchange.publish(
            namespace, "/content/delete", events.ContentDelete(digest=request.digest)
        )
        self.gc.schedule()
        return empty_pb2.Empty()

    @rpc
    async def Read(self, request: api.ReadContentRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        blob = await self.store.read(
            namespace, Digest(request.digest), request.offset, request.size
        )
        offset = blob.offset
        # A loop over next_chunk, each written with context.write: an async
        # generator costs more per call than the read of a small blob (ctr
        # reads manifests and configs, and large blobs in 32 KiB calls).
        try:
            while chunk := await blob.next_chunk():
                await context.write(api.ReadContentResponse(offset=offset, data=chunk))
                offset += len(chunk)
        finally:
            blob.close()

    @rpc
    async def Status(self, request: api.StatusRequest, context: ServicerContext):  # noqa: N802
        status = await self.store.status(namespace_of(context), request.ref)
        return api.StatusResponse(status=_status_to_api(status))

    @rpc
    async def ListStatuses(  # noqa: N802
        self, request: api.ListStatusesRequest, context: ServicerContext
    ):
        found = await self.store.list_statuses(namespace_of(context))
        matching = await filters.select(
            request.filters,
            found,
            lambda s: filters.adapt({"ref": s.ref, "expected": str(s.expected or "")}),
        )
        return api.ListStatusesResponse(statuses=[_status_to_api(s) for s in matching])

    @rpc
    async def Abort(self, request: api.AbortRequest, context: ServicerContext):  # noqa: N802
        await self.store.abort(namespace_of(context), request.ref)
        return empty_pb2.Empty()

    @rpc
    async def Write(  # noqa: N802
        self,
        request_iterator: AsyncIterator[api.WriteContentRequest],
        context: ServicerContext,
    ):
        namespace = namespace_of(context)
        session: _WriteSession | None = None
        try:
            async for request in request_iterator:
                if session is None:
                    if not request.ref:
                        raise errdefs.InvalidArgument("the first write message must carry a ref")
                    expected = _expected_digest(request.expected)
                    writer = await self.store.writer(
                        namespace, request.ref, request.total, expected, lease_of(context)
                    )
                    session = _WriteSession(
                        self.store,
                        namespace,
                        writer,
                        request.total,
                        expected,
                        self._created(namespace),
                    )
                yield await session.handle(request)
        finally:
            # Synchronously: when the client went away this task is being
            # cancelled, and an await here would never run the close.
            if session is not None:
                session.writer.close()

    def _created(self, namespace: str) -> Callable[[str, int], None]:
        def publish(digest: str, size: int) -> None:
            event = events.ContentCreate(digest=digest, size=size)
            self.exchange.publish(namespace, "/content/create", event)

        return publish

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Content"], self)


class _WriteSession:
    """One Write stream: applies stat, write and commit actions in order."""

    def __init__(
        self,
        store: AsyncContentStore,
        namespace: str,
        writer: AsyncContentWriter,
        total: int,
        expected: Digest | None,
        created: Callable[[str, int], None],
    ) -> None:
        self.created = created  # publishes containerd 2's /content/create
        self.store = store
        self.namespace = namespace
        self.writer = writer
        self.total = total
        self.expected = expected  # checked against the namespace when the writer opened

    async def handle(self, request: api.WriteContentRequest) -> api.WriteContentResponse:
        if request.ref and request.ref != self.writer.ref:
            raise errdefs.InvalidArgument(
                f"a write stream is for one ref: started with {self.writer.ref!r}, "
                f"got {request.ref!r}"
            )
        if request.expected and request.expected != self.expected:
            self.expected = Digest(request.expected)
            if await self.store.exists(self.namespace, self.expected):
                # As containerd: the write ends here, so the next one with this ref
                # starts at offset 0 rather than resuming these bytes.
                await self.writer.abandon()
                raise errdefs.AlreadyExists(f"blob with expected digest {self.expected} exists")
        if request.total > 0:
            self.total = request.total
        status = self.writer.status()
        response = api.WriteContentResponse(
            action=request.action, offset=status.offset, total=self.total
        )
        if request.action == api.STAT:
            response.started_at.CopyFrom(timestamp(status.started_at))
            response.updated_at.CopyFrom(timestamp(status.updated_at))
            response.digest = str(self.writer.digest())
            return response
        if request.action not in (api.WRITE, api.COMMIT):
            raise errdefs.InvalidArgument(f"unknown write action {request.action}")
        if request.offset > 0 and request.offset != status.offset:
            raise errdefs.OutOfRange(
                f"write at offset {request.offset} must occur at the current offset {status.offset}"
            )
        if request.offset == 0 and status.offset > 0:
            await self.writer.truncate(0)
            response.offset = 0
        data = request.data  # each access to a bytes field copies it
        if data:
            response.offset += await self.writer.write(data)
        if request.action == api.COMMIT:
            response.digest = await self.writer.commit(
                self.total, self.expected, dict(request.labels)
            )
            self.created(response.digest, response.offset)
        else:
            response.digest = str(self.writer.digest())
        return response


@plugin.register(plugin.GRPC, "content", requires=(plugin.METADATA, plugin.EVENT, plugin.GC))
def init_content_service(ic: plugin.InitContext) -> ContentService:
    return ContentService(ic.get(plugin.METADATA), ic.get(plugin.EVENT), ic.get(plugin.GC))
