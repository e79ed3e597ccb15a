"""The local content store: committed blobs plus resumable ingests on one disk.

Layout under the store's root (containerd puts it at
``<daemon root>/io.containerd.content.v1.content``)::

    blobs/sha256/<hex>        committed, immutable, mode 0444
    ingest/<sha256 of ref>/   one in-progress write each (see ingest.py)

Methods are synchronous and may block on disk I/O; the daemon calls them from
a thread pool. They are safe to call from several threads at once.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from pycontainerd.content.blobs import BlobRange, BlobStore
from pycontainerd.content.ingest import IngestDir, ingest_dir_name, is_temporary
from pycontainerd.content.locks import IngestLock
from pycontainerd.content.models import BlobInfo, IngestStatus, StoreUsage
from pycontainerd.content.writer import IngestWriter
from pycontainerd.digest import Digest, Hasher, parse_writable_digest
from pycontainerd.diskspace import reporting_full_disk
from pycontainerd.errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from pycontainerd.fsutil import WRITABLE_MODE, ensure_dir, utc_from_ns, utc_now

CONTENT_PLUGIN_DIR = "io.containerd.content.v1.content"
# Opening races with commit/abort removing the same ingest; a few retries settle it.
_OPEN_ATTEMPTS = 5


class LocalContentStore:
    """Blob storage shared by all namespaces; labels and leases live elsewhere."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = BlobStore(self.root / "blobs")
        self._ingest_root = self.root / "ingest"
        ensure_dir(self._blobs.root)
        ensure_dir(self._ingest_root)

    @classmethod
    def under_daemon_root(cls, daemon_root: Path) -> LocalContentStore:
        return cls(Path(daemon_root) / CONTENT_PLUGIN_DIR)

    # -- committed blobs -------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self._blobs.path(digest)

    def exists(self, digest: str) -> bool:
        return self._blobs.exists(digest)

    def info(self, digest: str) -> BlobInfo:
        return self._blobs.info(digest)

    def read(self, digest: str, offset: int = 0, size: int = 0) -> BlobRange:
        return self._blobs.read(digest, offset, size)

    def open_blob(self, digest: str) -> io.BufferedReader:
        return self._blobs.open(digest)

    def delete(self, digest: str) -> None:
        self._blobs.delete(digest)

    def walk(self) -> Iterator[BlobInfo]:
        return self._blobs.walk()

    # -- writes ----------------------------------------------------------

    def writer(self, ref: str, total: int = 0, expected: str | None = None) -> IngestWriter:
        """Open the ingest for ``ref``, resuming it if it exists.

        Raises AlreadyExists when ``expected`` is already committed (so the
        client can skip the upload), Unavailable when another writer holds the
        ref, FailedPrecondition when ``total``/``expected`` contradict what the
        existing ingest recorded.
        """
        if total < 0:
            raise InvalidArgument(f"total for ref {ref!r} must be >= 0, got {total}")
        wanted = parse_writable_digest(expected) if expected else None
        if wanted is not None and self._blobs.exists(wanted):
            raise AlreadyExists(f"content {wanted} already exists")
        ingest = self._ingest(ref)
        with reporting_full_disk(self._ingest_root, f"starting the write of ref {ref!r}"):
            lock, status = self._lock_or_create(ingest, ref, total, wanted)
        try:
            status = self._reconcile_expectations(ingest, status, total, wanted)
            return self._resume(ingest, lock, status)
        except BaseException:
            lock.release()
            raise

    def status(self, ref: str) -> IngestStatus:
        try:
            status = self._ingest(ref).read_status()
        except NotFound:
            raise NotFound(f"no ingest for ref {ref!r}") from None
        _require_same_ref(status, ref)
        return status

    def list_statuses(self) -> list[IngestStatus]:
        """Every readable ingest, active or abandoned, sorted by ref."""
        statuses = []
        for path in self._ingest_dirs():
            try:
                statuses.append(IngestDir(path).read_status())
            except (NotFound, FailedPrecondition):
                continue  # finished meanwhile, or corrupt (GC removes it)
        return sorted(statuses, key=lambda status: status.ref)

    def update_ingest_total(self, ref: str, total: int, expected: str | None = None) -> None:
        """Record a total (and expected digest) for an ingest no writer holds now."""
        if total < 0:
            raise InvalidArgument(f"total for ref {ref!r} must be >= 0, got {total}")
        wanted = parse_writable_digest(expected) if expected else None
        ingest, lock = self._lock_existing(ref)
        try:
            ingest.record_expectations(total, wanted)
        finally:
            lock.release()

    def abort(self, ref: str) -> None:
        """Delete the ingest for ``ref``, cancelling a writer that still holds it.

        As in containerd, an active write is cancelled rather than waited for:
        its next commit raises Aborted. A new writer for the same ref can start
        once the cancelled one is closed.
        """
        ingest = self._ingest(ref)
        if not ingest.exists():
            raise NotFound(f"no ingest for ref {ref!r}")
        ingest.remove()

    # -- maintenance -----------------------------------------------------

    def abort_unreferenced(self, keep: set[str]) -> list[str]:
        """Remove every ingest whose ref is not in ``keep`` and no writer holds.

        Garbage collection's sweep of abandoned writes; returns the refs removed.
        """
        removed: list[str] = []
        for path in self._ingest_dirs():
            ingest = IngestDir(path)
            try:
                ref = ingest.read_ref()
            except (NotFound, FailedPrecondition):
                ref = None  # corrupt: nobody can resume it
            if ref is not None and ref in keep:
                continue
            if self._remove_unless_held(ingest, ref):
                removed.append(ref or path.name)
        return removed

    def cleanup_stale_ingests(self, older_than: timedelta) -> list[str]:
        """Remove ingests untouched for ``older_than``; returns their refs.

        Ingests held by a writer are skipped whatever their age. Leftover
        staging directories from interrupted creations are removed too.
        """
        cutoff = utc_now() - older_than
        removed: list[str] = []
        for entry in os.scandir(self._ingest_root):
            path = Path(entry.path)
            if is_temporary(entry.name):
                if _mtime(path) < cutoff:
                    IngestDir(path).remove()
                continue
            ref = self._remove_if_stale(IngestDir(path), cutoff)
            if ref is not None:
                removed.append(ref)
        return removed

    def disk_usage(self) -> StoreUsage:
        blob_count = blob_bytes = ingest_count = ingest_bytes = 0
        for info in self._blobs.walk():
            blob_count += 1
            blob_bytes += info.size
        for path in self._ingest_dirs():
            ingest_count += 1
            try:
                ingest_bytes += IngestDir(path).data_path.stat().st_size
            except FileNotFoundError:
                continue
        return StoreUsage(blob_count, blob_bytes, ingest_count, ingest_bytes)

    # -- internals -------------------------------------------------------

    def _ingest(self, ref: str) -> IngestDir:
        return IngestDir(self._ingest_root / ingest_dir_name(ref))

    def _ingest_dirs(self) -> list[Path]:
        return [
            Path(entry.path)
            for entry in os.scandir(self._ingest_root)
            if not is_temporary(entry.name) and entry.is_dir(follow_symlinks=False)
        ]

    def _lock_or_create(
        self, ingest: IngestDir, ref: str, total: int, expected: Digest | None
    ) -> tuple[IngestLock, IngestStatus]:
        for _ in range(_OPEN_ATTEMPTS):
            if not ingest.exists():
                ingest.create(ref, total, expected, utc_now())
            try:
                lock = IngestLock.acquire(ingest.path, ref)
            except FileNotFoundError:
                continue  # committed or aborted between our create and lock
            try:
                status = ingest.read_status()
            except FailedPrecondition:
                ingest.remove()  # corrupt and ours to fix: start it over
                lock.release()
                continue
            except BaseException:
                lock.release()
                raise
            if status.ref != ref:
                lock.release()
                _require_same_ref(status, ref)
            return lock, status
        raise Unavailable(f"ingest for ref {ref!r} keeps changing under us; retry the write")

    def _reconcile_expectations(
        self, ingest: IngestDir, status: IngestStatus, total: int, expected: Digest | None
    ) -> IngestStatus:
        """Check the writer's total/expected against the ingest's and fill gaps."""
        if total and status.total and total != status.total:
            raise FailedPrecondition(
                f"ref {status.ref!r} was started with total {status.total}, now {total}; "
                "abort the ingest to change it"
            )
        if expected and status.expected and expected != status.expected:
            raise FailedPrecondition(
                f"ref {status.ref!r} was started expecting {status.expected}, now {expected}; "
                "abort the ingest to change it"
            )
        new_total = total if total and not status.total else None
        new_expected = expected if expected and not status.expected else None
        if new_total is None and new_expected is None:
            return status
        ingest.record_expectations(new_total, new_expected)
        return dataclasses.replace(
            status,
            total=new_total or status.total,
            expected=new_expected or status.expected,
        )

    def _resume(self, ingest: IngestDir, lock: IngestLock, status: IngestStatus) -> IngestWriter:
        """Open the data file and re-hash what is there (hash state is not saved)."""
        fd = os.open(ingest.data_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, WRITABLE_MODE)
        try:
            os.fchmod(fd, WRITABLE_MODE)  # undo the read-only bit of an interrupted commit
            hasher = Hasher()
            with open(fd, "rb", closefd=False) as data:
                offset = hasher.update_from(data)
            os.lseek(fd, offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return IngestWriter(
            ingest=ingest,
            lock=lock,
            blobs=self._blobs,
            status=dataclasses.replace(status, offset=offset),
            data_fd=fd,
            hasher=hasher,
        )

    def _lock_existing(self, ref: str) -> tuple[IngestDir, IngestLock]:
        ingest = self._ingest(ref)
        try:
            return ingest, IngestLock.acquire(ingest.path, ref)
        except FileNotFoundError:
            raise NotFound(f"no ingest for ref {ref!r}") from None

    def _remove_if_stale(self, ingest: IngestDir, cutoff: datetime) -> str | None:
        try:
            if ingest.modified_at() >= cutoff:
                return None
            ref = ingest.read_ref()
        except NotFound:
            return None
        except FailedPrecondition:
            ref = None
        return (ref or ingest.path.name) if self._remove_unless_held(ingest, ref) else None

    @staticmethod
    def _remove_unless_held(ingest: IngestDir, ref: str | None) -> bool:
        """Remove ``ingest`` unless a writer holds it; True when removed."""
        try:
            lock = IngestLock.acquire(ingest.path, ref or ingest.path.name)
        except (Unavailable, FileNotFoundError):
            return False
        try:
            ingest.remove()
        finally:
            lock.release()
        return True


def _mtime(path: Path) -> datetime:
    try:
        return utc_from_ns(path.stat().st_mtime_ns)
    except FileNotFoundError:
        return utc_now()


def _require_same_ref(status: IngestStatus, ref: str) -> None:
    if status.ref != ref:
        raise FailedPrecondition(
            f"ingest directory for ref {ref!r} records ref {status.ref!r}; the ingest area "
            "is damaged, abort it"
        )
