"""The namespaced content store for async callers, choosing where each call runs.

Services hold this, never the threads: lookups of a few rows run inline when
the database is idle (``Database.read``), changes on the database thread
(``Database.run``), and everything that touches blob files (reads, writes,
hashing, fsync) in a worker, so a slow disk holds up neither the event loop
nor the database.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from pycontainerd.content.blobs import BlobRange
from pycontainerd.content.models import IngestStatus
from pycontainerd.digest import Digest
from pycontainerd.metadata.content import ContentInfo, NamespacedContentStore, NamespacedWriter

T = TypeVar("T")


async def in_worker(fn: Callable[..., T], *args: Any) -> T:
    """Run file I/O (writes, fsync, hashing, blob reads) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class BlobRead:
    """A read under way: ``offset`` of its first byte, ``length`` in all, then the chunks.

    Chunks the page cache holds are read on the loop; the rest in a worker, so
    a stalled file blocks only this read, never the event loop. The reader
    takes chunks until an empty one and closes the read in any case.
    """

    def __init__(self, offset: int, length: int, blob: BlobRange) -> None:
        self.offset = offset
        self.length = length
        self._blob = blob

    async def next_chunk(self) -> bytes:
        """The next chunk; b"" at the end."""
        chunk = self._blob.cached_chunk()
        if chunk is None:
            chunk = await in_worker(self._blob.read_chunk)
        return chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        """Every chunk, then the read is closed."""
        try:
            while chunk := await self.next_chunk():
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._blob.close()


class AsyncContentWriter:
    """A write in progress; its file work runs in a worker."""

    def __init__(self, writer: NamespacedWriter) -> None:
        self._writer = writer

    @property
    def ref(self) -> str:
        return self._writer.ref

    def status(self) -> IngestStatus:
        """Cheap: the writer keeps its offset and times in memory."""
        return self._writer.status()

    def digest(self) -> Digest:
        """Cheap: the running hash of what was written."""
        return self._writer.digest()

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        return await in_worker(self._writer.write, data)

    async def truncate(self, size: int = 0) -> None:
        await in_worker(self._writer.truncate, size)

    async def commit(self, size: int, expected: Digest | None, labels: dict[str, str]) -> str:
        return await in_worker(self._writer.commit, size, expected, labels)

    async def abandon(self) -> None:
        await in_worker(self._writer.abandon)

    def close(self) -> None:
        """Synchronous on purpose: it must run in a cancelled task's cleanup."""
        self._writer.close()


class AsyncContentStore:
    def __init__(self, store: NamespacedContentStore) -> None:
        self._store = store
        self._db = store.db

    async def info(self, namespace: str, digest: Digest) -> ContentInfo:
        return await self._db.read(self._store.info, namespace, digest)

    async def exists(self, namespace: str, digest: Digest) -> bool:
        return await self._db.read(self._store.exists, namespace, digest)

    async def update(
        self, namespace: str, info: ContentInfo, paths: builtins.list[str]
    ) -> ContentInfo:
        return await self._db.run(self._store.update, namespace, info, paths)

    async def list(self, namespace: str) -> builtins.list[ContentInfo]:
        return await self._db.read(self._store.list, namespace)

    async def delete(self, namespace: str, digest: Digest) -> None:
        await self._db.run(self._store.delete, namespace, digest)

    async def read(self, namespace: str, digest: Digest, offset: int, size: int) -> BlobRead:
        """Checks now (NotFound, OutOfRange), before the caller starts a reply."""
        start, length, chunks = await self._db.read(
            self._store.read, namespace, digest, offset, size
        )
        return BlobRead(start, length, chunks)

    async def writer(
        self, namespace: str, ref: str, total: int, expected: Digest | None, lease: str
    ) -> AsyncContentWriter:
        """Open or resume a write; its ingest file is opened in a worker."""
        writer = await in_worker(self._store.writer, namespace, ref, total, expected, lease)
        return AsyncContentWriter(writer)

    async def status(self, namespace: str, ref: str) -> IngestStatus:
        return await self._db.run(self._store.status, namespace, ref)

    async def list_statuses(self, namespace: str) -> builtins.list[IngestStatus]:
        return await self._db.run(self._store.list_statuses, namespace)

    async def abort(self, namespace: str, ref: str) -> None:
        await self._db.run(self._store.abort, namespace, ref)
