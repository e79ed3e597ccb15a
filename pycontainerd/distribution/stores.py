"""What the distribution machinery needs of the stores it moves images into and out of.

Pull, push, unpack, import and export are written against these protocols
only. The SDK's client satisfies them over gRPC (its content, images,
snapshots and diff services); :mod:`pycontainerd.distribution.local` satisfies
them over the daemon's own stores, for server-side transfers, so the daemon
never dials its own socket.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pycontainerd.distribution.frames import WriteFrame, WriteSource
from pycontainerd.mount import Mount
from pycontainerd.remotes.manifest import Descriptor

if TYPE_CHECKING:
    from pycontainerd.distribution.coordination import PullCoordination


@dataclass(frozen=True)
class ContentInfo:
    digest: str
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Image:
    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ContentWriter(Protocol):
    """One open write: ``offset`` is how many bytes of ``ref`` the store holds or was sent."""

    @property
    def ref(self) -> str: ...

    @property
    def offset(self) -> int: ...

    async def write(self, data: bytes | bytearray | memoryview) -> None: ...

    async def send(self, frame: WriteFrame) -> None:
        """Write one frame; it must start at ``offset``."""
        ...

    async def commit(
        self, *, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None
    ) -> str:
        """Finish the write (the store checks size and digest); returns the digest."""
        ...

    async def close(self) -> None:
        """Stop writing; what was written stays for a later resume."""
        ...


class ContentProvider(Protocol):
    async def info(self, digest: str) -> ContentInfo: ...

    async def info_or_none(self, digest: str) -> ContentInfo | None: ...

    def read(self, digest: str, offset: int = 0, size: int = 0) -> AsyncGenerator[bytes, None]: ...

    async def read_all(self, digest: str) -> bytes: ...


class ContentStore(ContentProvider, Protocol):
    """A namespace's content: a provider and an ingester with labels."""

    async def update_labels(self, digest: str, labels: Mapping[str, str]) -> ContentInfo:
        """Set exactly these labels (an empty value removes one); others are kept."""
        ...

    async def writer(self, ref: str, *, expected: str = "", total: int = 0) -> ContentWriter:
        """Open or resume ``ref``; AlreadyExists when ``expected`` is stored, Unavailable
        while another writer holds the ref."""
        ...

    async def write(
        self,
        ref: str,
        source: WriteSource,
        *,
        expected: str = "",
        total: int = 0,
        labels: Mapping[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> str: ...

    async def abort(self, ref: str) -> None: ...


class ImageStore(Protocol):
    async def get(self, name: str) -> Image: ...

    async def create_or_update(self, image: Image) -> Image: ...


class Snapshotter(Protocol):
    """One snapshotter in a namespace, as unpack uses it."""

    async def exists(self, key: str) -> bool: ...

    async def prepare(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> list[Mount]: ...

    async def commit(
        self, name: str, key: str, labels: Mapping[str, str] | None = None
    ) -> None: ...

    async def remove(self, key: str) -> None: ...


class Applier(Protocol):
    async def apply(self, layer: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        """Unpack the stored ``layer`` onto ``mounts``; returns the uncompressed descriptor."""
        ...


class Stores(Protocol):
    """Everything of one namespace that pull, push, unpack, import and export touch."""

    @property
    def content(self) -> ContentStore: ...

    @property
    def images(self) -> ImageStore: ...

    @property
    def diff(self) -> Applier: ...

    def snapshots(self, snapshotter: str = ...) -> Snapshotter: ...

    def lease_if_none(self) -> AbstractAsyncContextManager[str]:
        """Reuse the lease the caller is in, or hold a new one for the block, so the
        GC takes nothing half-done."""
        ...


@dataclass(frozen=True)
class StagedLayer:
    """A layer extracted on its own into the parentless active snapshot ``key``."""

    key: str
    diff_id: str
    implied_dirs: frozenset[tuple[str, ...]]


class LayerStager(Protocol):
    """Extracts layers before their parents exist, then puts them on their parents.

    Only where a snapshot's layer is independent of its parents (overlayfs); see
    :mod:`pycontainerd.archive.isolated`.
    """

    async def stage(self, layer: Descriptor, key: str, labels: Mapping[str, str]) -> StagedLayer:
        """Prepare ``key`` without a parent and extract ``layer`` into it, in overlay form."""
        ...

    async def settle(self, staged: StagedLayer, parent: str) -> bool:
        """Put ``staged`` on the committed ``parent`` and fix what isolation could not know.

        False when the layer must be applied the ordinary way instead (the caller
        removes ``staged.key``).
        """
        ...


@runtime_checkable
class SharedStores(Stores, Protocol):
    """The daemon's own stores: pulls in it share work (see :mod:`.coordination`)."""

    @property
    def namespace(self) -> str: ...

    @property
    def coordination(self) -> PullCoordination: ...

    async def hold_content(self, digest: str) -> None:
        """Add the stored ``digest`` to the lease the caller runs under (another pull
        may have stored it, under a lease that ends before this one)."""
        ...

    def stager(self, snapshotter: str) -> LayerStager | None:
        """A stager for ``snapshotter``, or None where layers must be applied in order."""
        ...
