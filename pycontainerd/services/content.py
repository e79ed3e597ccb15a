"""The content service: blobs by digest, and the streaming, resumable Write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2

from pycontainerd import errdefs, filters, plugin
from pycontainerd.api.events import content_pb2 as events
from pycontainerd.api.services.content.v1 import content_pb2 as api
from pycontainerd.api.services.content.v1 import content_pb2_grpc
from pycontainerd.content.models import IngestStatus
from pycontainerd.digest import parse_digest
from pycontainerd.events.exchange import Exchange
from pycontainerd.metadata.content import ContentInfo, NamespacedWriter
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.services.base import field_paths, lease_of, namespace_of, rpc, timestamp

T = TypeVar("T")
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


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run file I/O (writes, fsync, hashing) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class ContentService(content_pb2_grpc.ContentServicer):
    def __init__(self, metadata: MetadataStore, exchange: Exchange, gc: GCScheduler) -> None:
        self.db = metadata.db
        self.store = metadata.content
        self.exchange = exchange
        self.gc = gc

    @rpc
    async def Info(self, request: api.InfoRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        info = await self.db.read(self.store.info, namespace_of(context), request.digest)
        return api.InfoResponse(info=_info_to_api(info))

    @rpc
    async def Update(self, request: api.UpdateRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        requested = ContentInfo(request.info.digest, 0, dict(request.info.labels))
        info = await self.db.run(
            self.store.update, namespace_of(context), requested, field_paths(request.update_mask)
        )
        return api.UpdateResponse(info=_info_to_api(info))

    @rpc
    async def List(self, request: api.ListContentRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        found = await self.db.run(self.store.list, namespace_of(context))
        matching = await filters.select(
            request.filters,
            found,
            lambda i: filters.adapt({"digest": i.digest, "size": i.size}, i.labels),
        )
        selected = [_info_to_api(i) for i in matching]
        for start in range(0, len(selected), LIST_BATCH):
            yield api.ListContentResponse(info=selected[start : start + LIST_BATCH])

    @rpc
    async def Delete(self, request: api.DeleteContentRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        parse_digest(request.digest)
        await self.db.run(self.store.delete, namespace, request.digest)
        self.exchange.publish(
            namespace, "/content/delete", events.ContentDelete(digest=request.digest)
        )
        self.gc.schedule()
        return empty_pb2.Empty()

    @rpc
    async def Read(self, request: api.ReadContentRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        parse_digest(request.digest)
        # The first chunk comes with the lookup, in one hop to the database
        # thread: clients such as ctr read in many small requests.
        offset, remaining, first, chunks = await self.db.read(
            self._start_read, namespace, request.digest, request.offset, request.size
        )
        # Written with context.write rather than yielded: grpc's async
        # generator path costs far more per call, and ctr reads in 32 KiB calls.
        chunk = first
        while chunk:
            await context.write(api.ReadContentResponse(offset=offset, data=chunk))
            offset += len(chunk)
            remaining -= len(chunk)
            if remaining <= 0:
                return
            chunk = await _blocking(next, chunks, b"")

    def _start_read(
        self, namespace: str, digest: str, offset: int, size: int
    ) -> tuple[int, int, bytes, Iterator[bytes]]:
        start, length, chunks = self.store.read(namespace, digest, offset, size)
        return start, length, next(chunks, b""), chunks

    @rpc
    async def Status(self, request: api.StatusRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        status = await self.db.run(self.store.status, namespace_of(context), request.ref)
        return api.StatusResponse(status=_status_to_api(status))

    @rpc
    async def ListStatuses(  # noqa: N802
        self, request: api.ListStatusesRequest, context: grpc.aio.ServicerContext
    ):
        found = await self.db.run(self.store.list_statuses, namespace_of(context))
        matching = await filters.select(
            request.filters,
            found,
            lambda s: filters.adapt({"ref": s.ref, "expected": str(s.expected or "")}),
        )
        return api.ListStatusesResponse(statuses=[_status_to_api(s) for s in matching])

    @rpc
    async def Abort(self, request: api.AbortRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        await self.db.run(self.store.abort, namespace_of(context), request.ref)
        return empty_pb2.Empty()

    @rpc
    async def Write(  # noqa: N802
        self,
        request_iterator: AsyncIterator[api.WriteContentRequest],
        context: grpc.aio.ServicerContext,
    ):
        namespace = namespace_of(context)
        session: _WriteSession | None = None
        try:
            async for request in request_iterator:
                if session is None:
                    if not request.ref:
                        raise errdefs.InvalidArgument("the first write message must carry a ref")
                    writer = await _blocking(
                        self._open_writer, namespace, request, lease_of(context)
                    )
                    session = _WriteSession(writer, request.total, request.expected)
                yield await session.handle(request, self.store.info, namespace)
        finally:
            # Synchronously: when the client went away this task is being
            # cancelled, and an await here would never run the close.
            if session is not None:
                session.writer.close()

    def _open_writer(
        self, namespace: str, request: api.WriteContentRequest, lease: str
    ) -> NamespacedWriter:
        return self.store.writer(namespace, request.ref, request.total, request.expected, lease)

    def register(self, server: grpc.aio.Server) -> None:
        content_pb2_grpc.add_ContentServicer_to_server(self, server)


class _WriteSession:
    """One Write stream: applies stat, write and commit actions in order."""

    def __init__(self, writer: NamespacedWriter, total: int, expected: str) -> None:
        self.writer = writer
        self.total = total
        self.expected = expected

    async def handle(
        self,
        request: api.WriteContentRequest,
        info: Callable[[str, str], ContentInfo],
        namespace: str,
    ) -> api.WriteContentResponse:
        if request.ref and request.ref != self.writer.ref:
            raise errdefs.InvalidArgument(
                f"a write stream is for one ref: started with {self.writer.ref!r}, "
                f"got {request.ref!r}"
            )
        if request.expected:
            parse_digest(request.expected)
            self.expected = request.expected
            try:
                await _blocking(info, namespace, request.expected)
            except errdefs.NotFound:
                pass
            else:
                raise errdefs.AlreadyExists(f"blob with expected digest {request.expected} exists")
        if request.total > 0:
            self.total = request.total
        inner = self.writer.inner
        status = inner.status()
        response = api.WriteContentResponse(
            action=request.action, offset=status.offset, total=self.total
        )
        if request.action == api.STAT:
            response.started_at.CopyFrom(timestamp(status.started_at))
            response.updated_at.CopyFrom(timestamp(status.updated_at))
            response.digest = str(inner.digest())
            return response
        if request.action not in (api.WRITE, api.COMMIT):
            raise errdefs.InvalidArgument(f"unknown write action {request.action}")
        if request.offset > 0 and request.offset != status.offset:
            raise errdefs.OutOfRange(
                f"write at offset {request.offset} must occur at the current offset {status.offset}"
            )
        if request.offset == 0 and status.offset > 0:
            await _blocking(inner.truncate, 0)
            response.offset = 0
        data = request.data  # each access to a bytes field copies it
        if data:
            response.offset += await _blocking(inner.write, data)
        if request.action == api.COMMIT:
            digest = await _blocking(
                self.writer.commit, self.total, self.expected, dict(request.labels)
            )
            response.digest = digest
        else:
            response.digest = str(inner.digest())
        return response


@plugin.register(plugin.GRPC, "content", requires=(plugin.METADATA, plugin.EVENT, plugin.GC))
def init_content_service(ic: plugin.InitContext) -> ContentService:
    return ContentService(ic.get(plugin.METADATA), ic.get(plugin.EVENT), ic.get(plugin.GC))
