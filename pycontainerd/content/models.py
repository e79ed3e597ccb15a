"""Plain records the content store hands out (no behaviour, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pycontainerd.digest import Digest


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A committed blob. Labels live in the metadata layer, not here."""

    digest: Digest
    size: int
    created_at: datetime
    updated_at: datetime


@dataclass
class ContentInfo:
    """A blob as a namespace sees it: its size and that namespace's labels."""

    digest: str
    size: int
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IngestStatus:
    """Progress of an in-flight (possibly abandoned) write.

    ``total`` is 0 and ``expected`` is None when the client did not say.
    """

    ref: str
    offset: int
    total: int
    expected: Digest | None
    started_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """Bytes and counts on disk, for introspection and GC decisions."""

    blob_count: int
    blob_bytes: int
    ingest_count: int
    ingest_bytes: int
