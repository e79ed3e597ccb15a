"""Moving blobs from a registry into a content store (the pull's WalkTarget).

The registry client is synchronous; its reads run in a thread pool while the
event loop feeds the bytes to the content store's writer (the content
service's Write stream from the SDK, the store itself in the daemon). Each
read fills a :class:`~pycontainerd.distribution.frames.FrameBuffer` and becomes
a ready WRITE message with one copy, and the gRPC writer pipelines the messages. A write
resumes where the server's ingest for the same ref stopped, and the fetcher
resumes a broken HTTP transfer by itself.

:meth:`RegistryToContent.ready` lets an unpack wait for each blob while the
walk is still fetching the others (see :mod:`pycontainerd.distribution.unpack`).
Such an unpack wants the layers complete in manifest order, base first, but
downloads running side by side share the daemon's write path equally and all
finish near the end. So every chunk write passes a :class:`PriorityGate`,
numbered by the blob's place in the walk: the earliest blob writes whenever it
has a chunk ready, and the others fill the gaps. As sends do not wait for the
daemon's replies, one sender at a time keeps the daemon busy, and the blobs
complete one after the other, as the unpack consumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pycontainerd import errdefs
from pycontainerd.distribution.frames import FrameBuffer, WriteFrame
from pycontainerd.distribution.gate import PriorityGate
from pycontainerd.distribution.labels import DistributionSource
from pycontainerd.distribution.progress import Reporter, Status, ref_key
from pycontainerd.distribution.stores import ContentStore, ContentWriter
from pycontainerd.distribution.walk import LabelsFor
from pycontainerd.remotes.fetcher import BlobReader, Fetcher, read_all
from pycontainerd.remotes.manifest import Descriptor

T = TypeVar("T")
# A ref held by another writer (a concurrent pull of the same blob) frees up soon.
LOCKED_RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)
#: Downloads that may send a chunk to the daemon at the same moment. One keeps
#: the daemon's Write streams busy from the SDK; in the daemon (no stream to
#: keep full) two writers hash and write side by side on two cores.
CONCURRENT_SENDS = 1
IN_PROCESS_SENDS = 2
#: Bytes a download reads into one frame. Buffers of this size, and the copies
#: the HTTP client makes of them, stay below the daemon's mmap threshold (see
#: pycontainerd.heap), so they are reused in the heap: as larger, mmap'ed
#: buffers, every frame would fault its pages in afresh.
DOWNLOAD_FRAME_SIZE = 1 << 20


#: Held while a blob is downloaded: a pull running beside this one waits, then finds it stored.
Claim = Callable[[str], contextlib.AbstractAsyncContextManager[None]]
#: Takes a blob found stored into the pull's lease.
Hold = Callable[[str], Awaitable[None]]


class RegistryToContent:
    """Stores descriptors fetched with ``fetcher`` into ``content``, labelled for the GC.

    ``claim`` (optional) is held around each blob's download, keyed by its digest;
    ``hold`` (optional) is called for each blob that was stored already.
    """

    def __init__(
        self,
        content: ContentStore,
        fetcher: Fetcher,
        pool: ThreadPoolExecutor,
        *,
        source: DistributionSource,
        report: Reporter,
        max_concurrent: int = 4,
        concurrent_sends: int = CONCURRENT_SENDS,
        claim: Claim | None = None,
        hold: Hold | None = None,
    ) -> None:
        self._content = content
        self._claim = claim
        self._hold = hold
        self._fetcher = fetcher
        self._pool = pool
        self._source = source
        self._report = report
        self._slots = asyncio.Semaphore(max_concurrent)
        self._writes = PriorityGate(concurrent_sends)
        self._walk_order = itertools.count()
        self._stored: dict[str, asyncio.Future[None]] = {}
        self._closed = False

    # -- waiting for blobs -------------------------------------------------------------

    async def ready(self, desc: Descriptor) -> None:
        """Return once ``desc`` is in the content store (a BlobReady for unpack_layers).

        Raises NotFound when the walk ended without storing it (see :meth:`close`).
        """
        await asyncio.shield(self._arrival(desc.digest))

    def close(self) -> None:
        """The walk is over: fail the waits on every descriptor it did not store."""
        self._closed = True
        for digest, arrival in self._stored.items():
            if not arrival.done():
                arrival.set_exception(
                    errdefs.NotFound(f"{digest} was not fetched: the pull did not reach it")
                )
                arrival.exception()  # the waiters get it; nobody else needs to

    def _arrival(self, digest: str) -> asyncio.Future[None]:
        arrival = self._stored.get(digest)
        if arrival is None:
            arrival = self._stored[digest] = asyncio.get_running_loop().create_future()
            if self._closed:
                self.close()
        return arrival

    def _mark_stored(self, desc: Descriptor) -> None:
        arrival = self._arrival(desc.digest)
        if not arrival.done():
            arrival.set_result(None)

    # -- the WalkTarget ------------------------------------------------------------------

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _held(self, desc: Descriptor) -> None:
        if self._hold is not None:
            await self._hold(desc.digest)

    def _claimed(self, desc: Descriptor) -> contextlib.AbstractAsyncContextManager[None]:
        return self._claim(desc.digest) if self._claim else contextlib.nullcontext()

    async def store_document(self, desc: Descriptor, labels_for: LabelsFor) -> bytes:
        async with self._claimed(desc):
            return await self._store_document(desc, labels_for)

    async def _store_document(self, desc: Descriptor, labels_for: LabelsFor) -> bytes:
        existing = await self._content.info_or_none(desc.digest)
        if existing is not None:
            await self._held(desc)
            data = await self._content.read_all(desc.digest)
            await self._add_labels(desc, labels_for(data), existing.labels)
            self._report.blob(desc, Status.EXISTS, desc.size)
            self._mark_stored(desc)
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
        self._mark_stored(desc)
        return data

    async def store_blob(self, desc: Descriptor) -> None:
        self._report.blob(desc, Status.WAITING)
        priority = next(self._walk_order)
        async with self._claimed(desc), self._slots:
            written = await self._store_blob_once(desc, priority, may_restart=True)
        self._report.blob(desc, Status.DONE if written else Status.EXISTS, desc.size)
        self._mark_stored(desc)

    async def _store_blob_once(self, desc: Descriptor, priority: int, *, may_restart: bool) -> bool:
        """True when the bytes were written here, False when the store already had them."""
        writer = await self._open_writer(desc)
        if writer is None:
            await self._held(desc)
            await self._add_labels(desc, {})
            return False
        resumed_at = writer.offset
        try:
            problem = await self._fill_and_commit(desc, writer, priority)
        finally:
            await writer.close()
        if problem is None:
            return True
        # The ingest holds bad bytes (wrong size or digest): never resume from them.
        await self._content.abort(writer.ref)
        if may_restart and resumed_at > 0:
            return await self._store_blob_once(desc, priority, may_restart=False)
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

    async def _fill_and_commit(
        self, desc: Descriptor, writer: ContentWriter, priority: int
    ) -> str | None:
        """Download the rest and commit; returns what is wrong when the bytes do not verify."""
        if writer.offset > desc.size:
            return f"the ingest holds {writer.offset} bytes, more than the {desc.size} expected"
        if writer.offset < desc.size:
            # aclosing: a cancelled write closes the download now (and the registry
            # response with it), not whenever the generator is collected.
            async with contextlib.aclosing(self._download(desc, writer.offset)) as frames:  # type: ignore[type-var]
                async for frame in frames:
                    async with self._writes.hold(priority):
                        await writer.send(frame)
                    self._report.blob(desc, Status.DOWNLOADING, writer.offset)
        try:
            await writer.commit(labels=self._source.merged({}))
        except errdefs.AlreadyExists:
            await self._add_labels(desc, {})
        except errdefs.FailedPrecondition as exc:
            return str(exc)
        return None

    async def _download(self, desc: Descriptor, offset: int) -> AsyncIterator[WriteFrame]:
        """The registry's bytes of ``desc`` from ``offset`` as WRITE frames, reading ahead one."""
        reader = await self._blocking(self._fetcher.fetch, desc, offset)
        # No larger than what is left: a fresh 1 MiB buffer costs a small blob ~1 ms.
        buffer = FrameBuffer(max(1, min(DOWNLOAD_FRAME_SIZE, desc.size - offset)))
        pending = asyncio.ensure_future(self._blocking(_read_frame, reader, buffer, offset))
        try:
            while frame := await pending:
                # The frame is a copy: the buffer is free for the next read at once.
                next_offset = frame.offset + frame.size
                pending = asyncio.ensure_future(
                    self._blocking(_read_frame, reader, buffer, next_offset)
                )
                yield frame
        except BaseException:
            if not pending.done():
                # Cancelled (or stopped) while a read waits on the registry: close the
                # response under it, so a stalled registry cannot hold up the end.
                reader.close()
            raise
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


def _read_frame(reader: BlobReader, buffer: FrameBuffer, offset: int) -> WriteFrame | None:
    """Fill ``buffer`` from ``reader`` (in a pool thread); None at the end of the blob."""
    space = buffer.space
    filled = 0
    while filled < len(space):
        n = reader.readinto(space[filled:])
        if not n:
            break
        filled += n
    return buffer.frame(offset, filled) if filled else None
