"""The content store: blobs by digest, reads, and resumable writes."""

from __future__ import annotations

import asyncio
import builtins
import collections
import contextlib
from collections.abc import (
    AsyncGenerator,
    Callable,
    Iterable,
    Mapping,
)
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from pycontainerd import errdefs
from pycontainerd.api.services.content.v1 import content_pb2 as api
from pycontainerd.api.services.content.v1 import content_pb2_grpc
from pycontainerd.client.models import ContentInfo, ContentStatus, from_timestamp
from pycontainerd.client.rpc import Connection
from pycontainerd.distribution.frames import (
    FRAME_HEADROOM,
    WRITE_CHUNK_SIZE,
    FrameBuffer,
    WriteFrame,
    WriteSource,
    write_source,
)

#: WRITE messages a writer sends before it waits for the first reply.
WRITES_IN_FLIGHT = 4
WRITE_METHOD = "/containerd.services.content.v1.Content/Write"


def _serialize_write_request(request: api.WriteContentRequest | bytes) -> bytes:
    """Messages for the Write stream: protobuf objects, or WriteFrame wire bytes as they are."""
    if isinstance(request, bytes):
        return request
    return request.SerializeToString()


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
    """One open Write stream: ``offset`` is how many bytes of the ref were sent.

    Use through :meth:`ContentService.writer`. Write from ``offset`` on, then commit.
    Writes are pipelined: up to ``window`` WRITE messages travel before the
    first reply is awaited (the server answers them in order), so the daemon
    never idles for a round trip. A server error surfaces at a later write, at
    :meth:`flush` or at :meth:`commit`; ``acknowledged`` is what the server
    confirmed holding so far.
    """

    def __init__(
        self,
        connection: Connection,
        call: Any,
        ref: str,
        total: int,
        expected: str,
        *,
        window: int = WRITES_IN_FLIGHT,
    ):
        self._conn = connection
        self._call = call
        self.ref = ref
        self.total = total
        self.expected = expected
        self.offset = 0
        self.acknowledged = 0
        self._window = max(1, window)
        self._unanswered: collections.deque[int] = collections.deque()  # offsets promised

    async def _send(self, request: api.WriteContentRequest | bytes) -> None:
        try:
            await self._call.write(request)
        except grpc.RpcError as exc:
            raise self._conn.error(exc) from None
        except asyncio.InvalidStateError:
            # The daemon ended the call, answering an earlier message with an
            # error: read on to it (an end without one raises Unavailable).
            while True:
                await self._receive()

    async def _receive(self) -> api.WriteContentResponse:
        try:
            reply = await self._call.read()
        except grpc.RpcError as exc:
            raise self._conn.error(exc) from None
        if reply is grpc.aio.EOF:
            raise errdefs.Unavailable(f"content write {self.ref!r}: the daemon ended the stream")
        return reply

    async def _exchange(self, request: api.WriteContentRequest) -> api.WriteContentResponse:
        await self.flush()
        await self._send(request)
        return await self._receive()

    async def stat(self) -> api.WriteContentResponse:
        """Open the ref (first message); AlreadyExists when ``expected`` is already stored."""
        reply = await self._exchange(
            api.WriteContentRequest(
                action=api.STAT, ref=self.ref, total=self.total, expected=self.expected
            )
        )
        self.offset = self.acknowledged = reply.offset
        return reply

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` at ``offset``, in chunks of at most WRITE_CHUNK_SIZE."""
        view = memoryview(data)
        for start in range(0, len(view), WRITE_CHUNK_SIZE):
            await self.send(WriteFrame.encode(self.offset, view[start : start + WRITE_CHUNK_SIZE]))

    async def send(self, frame: WriteFrame) -> None:
        """Send one encoded WRITE message; it must start at ``offset``."""
        if frame.offset != self.offset:
            raise errdefs.InvalidArgument(
                f"content write {self.ref!r}: a frame for offset {frame.offset} cannot be "
                f"sent at offset {self.offset}"
            )
        await self._send(frame.wire)
        self.offset += frame.size
        self._unanswered.append(self.offset)
        while len(self._unanswered) >= self._window:
            await self._acknowledge_one()

    async def flush(self) -> None:
        """Wait until the server has answered every write sent so far."""
        while self._unanswered:
            await self._acknowledge_one()

    async def _acknowledge_one(self) -> None:
        promised = self._unanswered.popleft()
        reply = await self._receive()
        if reply.offset != promised:
            raise errdefs.DataLoss(
                f"content write {self.ref!r}: the daemon holds {reply.offset} bytes after a "
                f"write that should have brought it to {promised}"
            )
        self.acknowledged = reply.offset

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
        """End the stream; what was sent is kept in the daemon for a later resume."""
        with contextlib.suppress(errdefs.ContainerdError):
            await self.flush()  # the daemon must see every write before the cancel
        with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
            await self._call.done_writing()
        self._call.cancel()


class ContentService:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = content_pb2_grpc.ContentStub(connection.channel)
        self._write_call = connection.channel.stream_stream(
            WRITE_METHOD,
            request_serializer=_serialize_write_request,
            response_deserializer=api.WriteContentResponse.FromString,
        )

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

    async def read(
        self, digest: str, offset: int = 0, size: int = 0
    ) -> AsyncGenerator[bytes, None]:
        """The blob's bytes from ``offset`` (``size`` 0 means to the end), in chunks."""
        request = api.ReadContentRequest(digest=digest, offset=offset, size=size)
        async for reply in self._conn.server_stream(self._stub.Read, request):
            yield reply.data

    async def read_all(self, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.read(digest)])

    async def status(self, ref: str) -> ContentStatus:
        reply = await self._conn.unary(self._stub.Status, api.StatusRequest(ref=ref))
        return _status_from_api(reply.status)

    async def list_statuses(self, filters: Iterable[str] = ()) -> builtins.list[ContentStatus]:
        request = api.ListStatusesRequest(filters=list(filters))
        reply = await self._conn.unary(self._stub.ListStatuses, request)
        return [_status_from_api(s) for s in reply.statuses]

    async def abort(self, ref: str) -> None:
        await self._conn.unary(self._stub.Abort, api.AbortRequest(ref=ref))

    async def writer(self, ref: str, *, expected: str = "", total: int = 0) -> ContentWriter:
        """Open a write for ``ref`` and stat it; close it with ``await writer.close()``.

        Raises AlreadyExists when ``expected`` is already in this namespace.
        """
        call = self._write_call(metadata=self._conn.metadata())
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
        ``progress`` is called with the bytes sent after each chunk.
        """
        writer = await self.writer(ref, expected=expected, total=total)
        try:
            await write_source(writer, source, total, progress)
            return await writer.commit(labels=labels)
        finally:
            await writer.close()


__all__ = [
    "FRAME_HEADROOM",
    "WRITE_CHUNK_SIZE",
    "ContentService",
    "ContentWriter",
    "FrameBuffer",
    "WriteFrame",
    "WriteSource",
]
