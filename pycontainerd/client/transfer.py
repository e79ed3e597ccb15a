"""Moving blobs from a registry into the daemon's content store (the pull's WalkTarget).

The registry client is synchronous; its reads run in a thread pool while the
event loop feeds the bytes to the content service's Write stream. A write
resumes where the server's ingest for the same ref stopped, and the fetcher
resumes a broken HTTP transfer by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pycontainerd import errdefs
from pycontainerd.client.content import ContentService, ContentWriter
from pycontainerd.client.labels import DistributionSource
from pycontainerd.client.progress import Reporter, Status, ref_key
from pycontainerd.client.walk import LabelsFor
from pycontainerd.remotes.fetcher import Fetcher, read_all
from pycontainerd.remotes.manifest import Descriptor

T = TypeVar("T")
READ_SIZE = 1 << 20
# A ref held by another writer (a concurrent pull of the same blob) frees up soon.
LOCKED_RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)


class RegistryToContent:
    """Stores descriptors fetched with ``fetcher`` into ``content``, labelled for the GC."""

    def __init__(
        self,
        content: ContentService,
        fetcher: Fetcher,
        pool: ThreadPoolExecutor,
        *,
        source: DistributionSource,
        report: Reporter,
        max_concurrent: int = 4,
    ) -> None:
        self._content = content
        self._fetcher = fetcher
        self._pool = pool
        self._source = source
        self._report = report
        self._slots = asyncio.Semaphore(max_concurrent)

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def store_document(self, desc: Descriptor, labels_for: LabelsFor) -> bytes:
        existing = await self._content.info_or_none(desc.digest)
        if existing is not None:
            data = await self._content.read_all(desc.digest)
            await self._add_labels(desc, labels_for(data), existing.labels)
            self._report.blob(desc, Status.EXISTS, desc.size)
            return data
        self._report.blob(desc, Status.DOWNLOADING)
        data = await self._blocking(read_all, self._fetcher, desc)  # verifies size and digest
        labels = labels_for(data)  # parses: only after the digest was checked
        try:
            await self._content.write(
                ref_key(desc),
                data,
                expected=desc.digest,
                total=desc.size,
                labels={**labels, **self._source.merged({})},
            )
        except errdefs.AlreadyExists:
            await self._add_labels(desc, labels)
        self._report.blob(desc, Status.DONE, desc.size)
        return data

    async def store_blob(self, desc: Descriptor) -> None:
        self._report.blob(desc, Status.WAITING)
        async with self._slots:
            written = await self._store_blob_once(desc, may_restart=True)
        self._report.blob(desc, Status.DONE if written else Status.EXISTS, desc.size)

    async def _store_blob_once(self, desc: Descriptor, *, may_restart: bool) -> bool:
        """True when the bytes were written here, False when the store already had them."""
        writer = await self._open_writer(desc)
        if writer is None:
            await self._add_labels(desc, {})
            return False
        resumed_at = writer.offset
        try:
            problem = await self._fill_and_commit(desc, writer)
        finally:
            await writer.close()
        if problem is None:
            return True
        # The ingest holds bad bytes (wrong size or digest): never resume from them.
        await self._content.abort(writer.ref)
        if may_restart and resumed_at > 0:
            return await self._store_blob_once(desc, may_restart=False)
        raise errdefs.FailedPrecondition(f"{desc.digest} failed verification: {problem}")

    async def _open_writer(self, desc: Descriptor) -> ContentWriter | None:
        """A writer for ``desc``, or None when the content store already has it."""
        for delay in (*LOCKED_RETRY_DELAYS, None):
            try:
                return await self._content.writer(
                    ref_key(desc), expected=desc.digest, total=desc.size
                )
            except errdefs.AlreadyExists:
                return None
            except errdefs.Unavailable:
                if delay is None:
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _fill_and_commit(self, desc: Descriptor, writer: ContentWriter) -> str | None:
        """Download the rest and commit; returns what is wrong when the bytes do not verify."""
        if writer.offset > desc.size:
            return f"the ingest holds {writer.offset} bytes, more than the {desc.size} expected"
        if writer.offset < desc.size:
            async for chunk in self._download(desc, writer.offset):
                await writer.write(chunk)
                self._report.blob(desc, Status.DOWNLOADING, writer.offset)
        try:
            await writer.commit(labels=self._source.merged({}))
        except errdefs.AlreadyExists:
            await self._add_labels(desc, {})
        except errdefs.FailedPrecondition as exc:
            return str(exc)
        return None

    async def _download(self, desc: Descriptor, offset: int) -> AsyncIterator[bytes]:
        """The registry's bytes of ``desc`` from ``offset``, reading ahead one chunk."""
        reader = await self._blocking(self._fetcher.fetch, desc, offset)
        pending = asyncio.ensure_future(self._blocking(reader.read, READ_SIZE))
        try:
            while chunk := await pending:
                pending = asyncio.ensure_future(self._blocking(reader.read, READ_SIZE))
                yield chunk
        finally:
            # Let a read already running in the pool finish before closing under it.
            await asyncio.gather(asyncio.shield(pending), return_exceptions=True)
            await self._blocking(reader.close)

    async def _add_labels(
        self, desc: Descriptor, labels: dict[str, str], current: Mapping[str, str] | None = None
    ) -> None:
        """Add gc.ref and distribution labels to content that is already stored."""
        if current is None:
            current = (await self._content.info(desc.digest)).labels
        wanted = {**labels, **self._source.merged(current)}
        changed = {k: v for k, v in wanted.items() if current.get(k) != v}
        if changed:
            await self._content.update_labels(desc.digest, changed)
