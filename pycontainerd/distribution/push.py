"""Push: send an image's content from the store to a registry, children before parents."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pycontainerd import errdefs
from pycontainerd.distribution.labels import source_repositories
from pycontainerd.distribution.progress import ProgressCallback, Reporter, Status
from pycontainerd.distribution.pull import DEFAULT_CONCURRENCY, Credentials, credentials_func
from pycontainerd.distribution.stores import ContentProvider
from pycontainerd.distribution.walk import document_children
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.remotes.reference import Reference, parse_reference
from pycontainerd.remotes.resolver import PlainHTTP, Resolver

if TYPE_CHECKING:
    from pycontainerd.distribution.stores import Stores

# Blobs up to this size are read into memory (so an auth retry can resend them).
IN_MEMORY_LIMIT = 8 << 20


@dataclass
class PushPlan:
    """What to send: plain blobs (any order) and documents (children before parents)."""

    blobs: list[Descriptor] = field(default_factory=list)
    documents: list[tuple[Descriptor, bytes]] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)  # digest -> repos on this host


async def plan_push(content: ContentProvider, root: Descriptor, domain: str) -> PushPlan:
    """Read the image tree from the store; NotFound names the first missing piece."""
    plan = PushPlan()
    seen: set[str] = set()

    async def visit(desc: Descriptor, parent: Descriptor | None) -> None:
        if desc.digest in seen:
            return
        seen.add(desc.digest)
        info = await content.info_or_none(desc.digest)
        if info is None:
            where = f" (referenced by {parent.digest})" if parent else ""
            platform = f" for {desc.platform}" if desc.platform else ""
            raise errdefs.NotFound(
                f"content {desc.digest}{platform}{where} is not in the content store: the image "
                "is incomplete; pull it again (with --all-platforms for every platform)"
            )
        plan.sources[desc.digest] = source_repositories(info.labels, domain)
        if not mediatypes.is_manifest_or_index(desc.media_type):
            plan.blobs.append(desc)
            return
        data = await content.read_all(desc.digest)
        for child in document_children(desc, data):
            await visit(child, desc)
        plan.documents.append((desc, data))

    await visit(root, None)
    return plan


class ContentStreamReader(io.RawIOBase):
    """A blocking file over an async content read, for the synchronous pusher's thread."""

    def __init__(
        self, chunks: AsyncIterator[bytes], size: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__()
        self._chunks = chunks
        self._size = size
        self._loop = loop
        self._buffer = memoryview(b"")
        self._position = 0

    def __len__(self) -> int:  # requests sends Content-Length from this
        return self._size

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    async def _next_chunk(self) -> bytes:
        return await anext(self._chunks, b"")

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if not self._buffer:
            future = asyncio.run_coroutine_threadsafe(self._next_chunk(), self._loop)
            self._buffer = memoryview(future.result())
            if not self._buffer:
                return 0
        count = min(len(buffer), len(self._buffer))
        buffer[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        self._position += count
        return count


class RegistryPush:
    """Pushes one plan to one repository."""

    def __init__(
        self,
        content: ContentProvider,
        resolver: Resolver,
        reference: Reference,
        pool: ThreadPoolExecutor,
        report: Reporter,
    ) -> None:
        self._content = content
        self._resolver = resolver
        self._reference = reference
        self._pool = pool
        self._report = report

    async def push_blob(self, desc: Descriptor, sources: list[str]) -> None:
        mount_from = next((repo for repo in sources if repo != self._reference.path), None)
        pusher = self._resolver.pusher(self._reference, mount_from=mount_from)
        self._report.blob(desc, Status.UPLOADING)
        loop = asyncio.get_running_loop()
        chunks = self._content.read(desc.digest)
        try:
            if desc.size <= IN_MEMORY_LIMIT:
                data: bytes | ContentStreamReader = b"".join([c async for c in chunks])
            else:
                data = ContentStreamReader(chunks, desc.size, loop)
            sent = await loop.run_in_executor(
                self._pool, lambda: pusher.push(desc, data, mount_from=mount_from)
            )
        finally:
            await chunks.aclose()
        self._report.blob(desc, Status.DONE if sent else Status.EXISTS, desc.size)

    async def push_document(self, desc: Descriptor, data: bytes, tag: str | None) -> None:
        pusher = self._resolver.pusher(self._reference)
        self._report.blob(desc, Status.UPLOADING)
        sent = await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: pusher.push(desc, data, tag=tag)
        )
        self._report.blob(desc, Status.DONE if sent else Status.EXISTS, desc.size)


async def push(
    stores: Stores,
    ref: str,
    image_name: str | None = None,
    *,
    plain_http: PlainHTTP = False,
    credentials: Credentials = None,
    hosts: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
    max_concurrent_uploads: int = DEFAULT_CONCURRENCY,
) -> Descriptor:
    """Push the image named ``image_name`` (default: ``ref``) to ``ref``; returns its root."""
    reference = parse_reference(ref)
    image = await stores.images.get(image_name or str(reference))
    plan = await plan_push(stores.content, image.target, reference.domain)
    resolver = Resolver(
        plain_http=plain_http,
        hosts=hosts,
        headers=headers,
        credentials=credentials_func(credentials, reference.domain),
    )
    report = Reporter(progress)
    with resolver, ThreadPoolExecutor(max_concurrent_uploads, "push") as pool:
        upload = RegistryPush(stores.content, resolver, reference, pool, report)
        slots = asyncio.Semaphore(max_concurrent_uploads)

        async def limited(desc: Descriptor) -> None:
            async with slots:
                await upload.push_blob(desc, plan.sources.get(desc.digest, []))

        await asyncio.gather(*(limited(desc) for desc in plan.blobs))
        root_tag = reference.tag if not reference.digest else None
        for desc, data in plan.documents:
            is_root = desc.digest == image.target.digest
            await upload.push_document(desc, data, root_tag if is_root else None)
    return image.target
