"""What a content store offers its callers, as containerd's ``content.Store``.

The namespace is an argument where containerd carries it in the context. The
metadata layer's :class:`~pycontainerd.metadata.content.NamespacedContentStore`
implements these over the local blob store; every implementation runs the one
conformance suite in ``tests/unit/content/conformance.py``. The calls block
(they touch the database and files); async callers hold
:class:`~pycontainerd.metadata.async_content.AsyncContentStore`, which decides
where each runs.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from pycontainerd.content.models import ContentInfo, IngestStatus
from pycontainerd.digest import Digest


class ContentWriter(Protocol):
    """One resumable write (an ingest) of a ref."""

    @property
    def ref(self) -> str: ...

    def status(self) -> IngestStatus: ...

    def digest(self) -> Digest:
        """Of the bytes written so far."""
        ...

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def truncate(self, size: int = 0) -> None: ...

    def commit(self, size: int, expected: Digest | None, labels: dict[str, str]) -> str:
        """Check ``size``/``expected`` (0/None: what was announced) and commit.

        FailedPrecondition on a mismatch (the write stays open); AlreadyExists
        when the namespace holds the digest already (the write is over).
        """
        ...

    def close(self) -> None:
        """Stop writing; the ingest is kept for a later writer to resume."""
        ...


class ContentStore(Protocol):
    def info(self, namespace: str, digest: str) -> ContentInfo: ...

    def exists(self, namespace: str, digest: str) -> bool: ...

    def list(self, namespace: str) -> builtins.list[ContentInfo]: ...

    def update(
        self, namespace: str, info: ContentInfo, paths: builtins.list[str]
    ) -> ContentInfo: ...

    def delete(self, namespace: str, digest: str) -> None: ...

    def read(
        self, namespace: str, digest: str, offset: int, size: int
    ) -> tuple[int, int, Iterator[bytes]]:
        """(start, length, chunks); size 0 reads to the end; OutOfRange past it."""
        ...

    def writer(
        self,
        namespace: str,
        ref: str,
        total: int = 0,
        expected: Digest | None = None,
        lease: str = "",
    ) -> ContentWriter: ...

    def status(self, namespace: str, ref: str) -> IngestStatus: ...

    def list_statuses(self, namespace: str) -> builtins.list[IngestStatus]: ...

    def abort(self, namespace: str, ref: str) -> None: ...


if TYPE_CHECKING:  # the type checker holds the implementations to the protocols
    from pycontainerd.metadata.content import NamespacedContentStore, NamespacedWriter

    _store: type[ContentStore] = NamespacedContentStore
    _writer: type[ContentWriter] = NamespacedWriter
