"""The content store: blobs by digest, reads, and resumable writes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from pycontainerd import errdefs
from pycontainerd.api.services.content.v1 import content_pb2 as api
from pycontainerd.api.services.content.v1 import content_pb2_grpc
from pycontainerd.client.models import ContentInfo, ContentStatus, from_timestamp
from pycontainerd.client.rpc import Connection

WRITE_CHUNK_SIZE = 1 << 20

# Where a write's data comes from: bytes, a stream, or a function opening a
# stream at a byte offset (so a resumed write need not re-read the start).
WriteSource = bytes | AsyncIterable[bytes] | Callable[[int], AsyncIterable[bytes]]


def _info_from_api(info: api.Info) -> ContentInfo:
    return ContentInfo(
        digest=info.digest,
        size=info.size,
        labels=dict(info.labels),
        created_at=from_timestamp(info.created_at),
        updated_at=from_timestamp(info.updated_at),
    )


def _status_from_api(status: api.Status) -> ContentStatus:
    return ContentStatus(
        ref=status.ref,
        offset=status.offset,
        total=status.total,
        expected=status.expected,
        started_at=from_timestamp(status.started_at),
        updated_at=from_timestamp(status.updated_at),
    )


class ContentWriter:
    """One open Write stream: ``offset`` is where the server's data for the ref ends.

    Use through :meth:`ContentService.writer`. Write from ``offset`` on, then commit.
    """

    def __init__(self, connection: Connection, call: Any, ref: str, total: int, expected: str):
        self._conn = connection
        self._call = call
        self.ref = ref
        self.total = total
        self.expected = expected
        self.offset = 0

    async def _exchange(self, request: api.WriteContentRequest) -> api.WriteContentResponse:
        try:
            await self._call.write(request)
            reply = await self._call.read()
        except grpc.RpcError as exc:
            raise self._conn.error(exc) from None
        if reply is grpc.aio.EOF:
            raise errdefs.Unavailable(f"content write {self.ref!r}: the daemon ended the stream")
        return reply

    async def stat(self) -> api.WriteContentResponse:
        """Open the ref (first message); AlreadyExists when ``expected`` is already stored."""
        reply = await self._exchange(
            api.WriteContentRequest(
                action=api.STAT, ref=self.ref, total=self.total, expected=self.expected
            )
        )
        self.offset = reply.offset
        return reply

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), WRITE_CHUNK_SIZE):
            chunk = data[start : start + WRITE_CHUNK_SIZE]
            reply = await self._exchange(
                api.WriteContentRequest(action=api.WRITE, offset=self.offset, data=chunk)
            )
            self.offset = reply.offset

    async def commit(
        self, *, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None
    ) -> str:
        """Finish the write; the server checks size and digest. Returns the digest."""
        reply = await self._exchange(
            api.WriteContentRequest(
                action=api.COMMIT,
                offset=self.offset,
                total=size or self.total,
                expected=expected or self.expected,
                labels=dict(labels or {}),
            )
        )
        return reply.digest

    async def close(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            await self._call.done_writing()
        self._call.cancel()


class ContentService:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = content_pb2_grpc.ContentStub(connection.channel)

    async def info(self, digest: str) -> ContentInfo:
        reply = await self._conn.unary(self._stub.Info, api.InfoRequest(digest=digest))
        return _info_from_api(reply.info)

    async def info_or_none(self, digest: str) -> ContentInfo | None:
        try:
            return await self.info(digest)
        except errdefs.NotFound:
            return None

    async def list(self, filters: Iterable[str] = ()) -> list[ContentInfo]:
        request = api.ListContentRequest(filters=list(filters))
        return [
            _info_from_api(info)
            async for reply in self._conn.server_stream(self._stub.List, request)
            for info in reply.info
        ]

    async def update_labels(self, digest: str, labels: Mapping[str, str]) -> ContentInfo:
        """Set exactly these labels (an empty value removes one); others are kept."""
        request = api.UpdateRequest(
            info=api.Info(digest=digest, labels=dict(labels)),
            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]),
        )
        return _info_from_api((await self._conn.unary(self._stub.Update, request)).info)

    async def replace_labels(self, digest: str, labels: Mapping[str, str]) -> ContentInfo:
        """Replace all labels of ``digest`` with ``labels``."""
        request = api.UpdateRequest(
            info=api.Info(digest=digest, labels=dict(labels)),
            update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
        )
        return _info_from_api((await self._conn.unary(self._stub.Update, request)).info)

    async def delete(self, digest: str) -> None:
        await self._conn.unary(self._stub.Delete, api.DeleteContentRequest(digest=digest))

    async def read(self, digest: str, offset: int = 0, size: int = 0) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset`` (``size`` 0 means to the end), in chunks."""
        request = api.ReadContentRequest(digest=digest, offset=offset, size=size)
        async for reply in self._conn.server_stream(self._stub.Read, request):
            yield reply.data

    async def read_all(self, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.read(digest)])

    async def status(self, ref: str) -> ContentStatus:
        reply = await self._conn.unary(self._stub.Status, api.StatusRequest(ref=ref))
        return _status_from_api(reply.status)

    async def list_statuses(self, filters: Iterable[str] = ()) -> list[ContentStatus]:
        request = api.ListStatusesRequest(filters=list(filters))
        reply = await self._conn.unary(self._stub.ListStatuses, request)
        return [_status_from_api(s) for s in reply.statuses]

    async def abort(self, ref: str) -> None:
        await self._conn.unary(self._stub.Abort, api.AbortRequest(ref=ref))

    async def writer(self, ref: str, *, expected: str = "", total: int = 0) -> ContentWriter:
        """Open a write for ``ref`` and stat it; close it with ``await writer.close()``.

        Raises AlreadyExists when ``expected`` is already in this namespace.
        """
        call = self._stub.Write(metadata=self._conn.metadata())
        writer = ContentWriter(self._conn, call, ref, total, expected)
        try:
            await writer.stat()
        except BaseException:
            await writer.close()
            raise
        return writer

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
        """Write a blob under ``ref`` and commit it; returns its digest.

        Resumes: when the server already holds data for ``ref``, writing continues
        at its offset (a callable ``source`` is opened there; other sources skip
        the bytes the server has). Raises AlreadyExists when ``expected`` is stored.
        ``progress`` is called with the bytes the server holds after each chunk.
        """
        writer = await self.writer(ref, expected=expected, total=total)
        try:
            if not (total and writer.offset == total):
                async for chunk in _chunks_from(source, writer.offset):
                    await writer.write(chunk)
                    if progress is not None:
                        progress(writer.offset)
            return await writer.commit(labels=labels)
        finally:
            await writer.close()


async def _chunks_from(source: WriteSource, offset: int) -> AsyncIterator[bytes]:
    """The bytes of ``source`` after the first ``offset``."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        for start in range(offset, len(data), WRITE_CHUNK_SIZE):
            yield data[start : start + WRITE_CHUNK_SIZE]
        return
    if callable(source):
        async for chunk in source(offset):
            yield chunk
        return
    skip = offset
    async for chunk in source:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        yield chunk[skip:]
        skip = 0
