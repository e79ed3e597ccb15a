"""The namespaced view of the content store.

Blobs on disk are shared, but each namespace holds its own references (with
labels): a blob written in namespace `a` is not visible in `b` until `b`
writes it too ("isolated" sharing, the bytes are checked again). Deleting a
reference only drops it from the namespace; garbage collection removes bytes
no namespace refers to.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable
from typing import Any

from pycontainerd import errdefs
from pycontainerd.content.blobs import BlobRange
from pycontainerd.content.models import ContentInfo, IngestStatus
from pycontainerd.content.store import LocalContentStore
from pycontainerd.content.writer import IngestWriter
from pycontainerd.digest import Digest, parse_digest
from pycontainerd.identifiers import validate_labels
from pycontainerd.metadata.db import (
    Database,
    dump_labels,
    frees_space,
    from_ns,
    load_labels,
    now_ns,
)
from pycontainerd.metadata.fieldpaths import apply_map_paths, refuse_unknown
from pycontainerd.metadata.leases import LeaseStore, Resource
from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.rwlock import RWLock

#: The columns `_info` reads, in its order (rows as plain tuples: cheaper than sqlite3.Row).
_INFO_COLUMNS = "digest, size, labels, created_at, updated_at"


def _info(row: tuple[Any, ...]) -> ContentInfo:
    digest, size, labels, created_at, updated_at = row
    return ContentInfo(digest, size, load_labels(labels), from_ns(created_at), from_ns(updated_at))


class NamespacedContentStore:
    def __init__(
        self,
        db: Database,
        backend: LocalContentStore,
        namespaces: NamespaceStore,
        leases: LeaseStore,
    ) -> None:
        self.db = db
        self.backend = backend
        self.namespaces = namespaces
        self.leases = leases
        # Commits and new writes hold it shared, the sweeps of unreferenced
        # blobs and writes exclusively: a blob committed on disk but not yet
        # recorded, or an ingest recorded but not yet locked, must not be swept.
        self.commit_lock = RWLock()

    # -- committed content -------------------------------------------------

    def info(self, namespace: str, digest: str) -> ContentInfo:
        return _info(self._record(namespace, digest, _INFO_COLUMNS))

    def _record(self, namespace: str, digest: str, columns: str) -> tuple[Any, ...]:
        """``columns`` of the content record of ``digest``; NotFound without one."""
        parse_digest(digest)
        rows = self.db.query_tuples(
            f"SELECT {columns} FROM content WHERE namespace = ? AND digest = ?",
            (namespace, digest),
        )
        if not rows:
            raise errdefs.NotFound(f"content {digest} not found in namespace {namespace!r}")
        return rows[0]

    def exists(self, namespace: str, digest: str) -> bool:
        return bool(
            self.db.query(
                "SELECT 1 FROM content WHERE namespace = ? AND digest = ?", (namespace, digest)
            )
        )

    def list(self, namespace: str) -> list[ContentInfo]:
        rows = self.db.query_tuples(
            f"SELECT {_INFO_COLUMNS} FROM content WHERE namespace = ? ORDER BY digest",
            (namespace,),
        )
        return [_info(r) for r in rows]

    def update(self, namespace: str, info: ContentInfo, paths: builtins.list[str]) -> ContentInfo:
        with self.db.tx() as c:
            current = self.info(namespace, info.digest)
            if paths:
                labels, rest = apply_map_paths(current.labels, info.labels, paths, "labels")
                refuse_unknown(rest, "content", info.digest)
            else:
                labels = dict(info.labels)
            labels = validate_labels(labels, f"content {info.digest} labels")
            c.execute(
                "UPDATE content SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?",
                (dump_labels(labels), now_ns(), namespace, info.digest),
            )
        return self.info(namespace, info.digest)

    @frees_space
    def delete(self, namespace: str, digest: str) -> None:
        parse_digest(digest)
        with self.db.tx() as c:
            cur = c.execute(
                "DELETE FROM content WHERE namespace = ? AND digest = ?", (namespace, digest)
            )
            if cur.rowcount == 0:
                raise errdefs.NotFound(f"content {digest} not found in namespace {namespace!r}")

    def read(
        self, namespace: str, digest: str, offset: int, size: int
    ) -> tuple[int, int, BlobRange]:
        """(start offset, length, the open range) of a read; size 0 (or past the end) reads to the end.

        As containerd: a negative offset reads from the start, an offset past
        the end is OutOfRange.
        """
        total: int = self._record(namespace, digest, "size")[0]  # no labels to decode
        offset = max(offset, 0)
        if offset > total:
            raise errdefs.OutOfRange(
                f"read offset {offset} is past the end of {digest} ({total} bytes)"
            )
        if size <= 0 or offset + size > total:
            size = total - offset
        if size == 0:
            return offset, 0, BlobRange.empty(offset)
        return offset, size, self.backend.read(digest, offset, size)

    # -- writes ------------------------------------------------------------

    def _backend_ref(self, namespace: str, ref: str) -> str | None:
        rows = self.db.query(
            "SELECT backend_ref FROM ingests WHERE namespace = ? AND ref = ?", (namespace, ref)
        )
        return rows[0]["backend_ref"] if rows else None

    def writer(
        self,
        namespace: str,
        ref: str,
        total: int = 0,
        expected: Digest | None = None,
        lease: str = "",
    ) -> NamespacedWriter:
        """Open (or resume) the write `ref` in a namespace.

        AlreadyExists when the namespace holds ``expected`` already.
        """
        if not ref:
            raise errdefs.InvalidArgument("a write needs a non-empty ref")
        if expected and self.exists(namespace, expected):
            raise errdefs.AlreadyExists(f"content {expected} already exists")
        with self.commit_lock.shared():
            return self._open_writer(namespace, ref, total, expected, lease)

    def _open_writer(
        self, namespace: str, ref: str, total: int, expected: Digest | None, lease: str
    ) -> NamespacedWriter:
        with self.db.tx() as c:
            self.namespaces.ensure(namespace)
            backend_ref = self._backend_ref(namespace, ref)
            if backend_ref is None:
                seq = self.db.next_sequence("ingest")
                backend_ref = f"{namespace}-{seq}-{ref}"
                c.execute(
                    "INSERT INTO ingests(namespace, ref, backend_ref, expected) VALUES (?, ?, ?, ?)",
                    (namespace, ref, backend_ref, expected or ""),
                )
            elif expected:
                c.execute(
                    "UPDATE ingests SET expected = ? WHERE namespace = ? AND ref = ?",
                    (expected, namespace, ref),
                )
            if lease:
                self.leases.add_resource(namespace, lease, Resource(ref, "ingests"))
        # The backend refuses an expected digest it holds already; in isolated
        # sharing the client must still send the bytes, checked on commit.
        backend_expected = expected if expected and not self.backend.exists(expected) else None
        inner = self.backend.writer(backend_ref, total=total, expected=backend_expected)
        return NamespacedWriter(self, namespace, ref, inner, lease)

    def status(self, namespace: str, ref: str) -> IngestStatus:
        backend_ref = self._backend_ref(namespace, ref)
        if backend_ref is None:
            raise errdefs.NotFound(f"no write in progress for ref {ref!r}")
        return _with_ref(self.backend.status(backend_ref), ref)

    def list_statuses(self, namespace: str) -> builtins.list[IngestStatus]:
        rows = self.db.query(
            "SELECT ref, backend_ref FROM ingests WHERE namespace = ? ORDER BY ref", (namespace,)
        )
        result = []
        for row in rows:
            try:
                result.append(_with_ref(self.backend.status(row["backend_ref"]), row["ref"]))
            except errdefs.NotFound:
                continue  # the write was opened but no byte reached the disk yet
        return result

    @frees_space
    def abort(self, namespace: str, ref: str) -> None:
        """End the write ``ref``: its bytes first, so a full disk has room for the row's deletion."""
        backend_ref = self._backend_ref(namespace, ref)
        if backend_ref is None:
            raise errdefs.NotFound(f"no write in progress for ref {ref!r}")
        with contextlib.suppress(errdefs.NotFound):
            self.backend.abort(backend_ref)
        with self.db.tx() as c:
            c.execute(
                "DELETE FROM ingests WHERE namespace = ? AND ref = ? AND backend_ref = ?",
                (namespace, ref, backend_ref),
            )

    def sweep_unreferenced(self, referenced_now: Callable[[], set[str]]) -> builtins.list[str]:
        """Remove blobs that no namespace refers to; returns their digests.

        The referenced set is read under the lock, so no commit slips between.
        """
        removed = []
        with self.commit_lock.exclusive():
            referenced = referenced_now()
            for info in list(self.backend.walk()):
                if str(info.digest) not in referenced:
                    try:
                        self.backend.delete(info.digest)
                    except errdefs.NotFound:
                        continue
                    removed.append(str(info.digest))
        return removed

    def abort_unreferenced_writes(
        self, referenced_now: Callable[[], set[str]]
    ) -> builtins.list[str]:
        """Remove ingests that no namespace records and no writer holds; returns their refs."""
        with self.commit_lock.exclusive():
            return self.backend.abort_unreferenced(referenced_now())

    def _record_commit(
        self, namespace: str, ref: str, digest: str, size: int, labels: dict[str, str], lease: str
    ) -> None:
        stamp = now_ns()
        with self.db.tx() as c:
            # The write is over either way, as in containerd: a later writer with
            # this ref starts at offset 0 instead of resuming committed bytes.
            c.execute("DELETE FROM ingests WHERE namespace = ? AND ref = ?", (namespace, ref))
            if lease:
                self.leases.delete_resource(namespace, lease, Resource(ref, "ingests"))
            exists = c.execute(
                "SELECT 1 FROM content WHERE namespace = ? AND digest = ?", (namespace, digest)
            ).fetchone()
            if not exists:
                c.execute(
                    "INSERT INTO content(namespace, digest, size, labels, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (namespace, digest, size, dump_labels(labels), stamp, stamp),
                )
                if lease:
                    self.leases.add_resource(namespace, lease, Resource(digest, "content"))
        if exists:
            raise errdefs.AlreadyExists(f"content {digest} already exists")


def _with_ref(status: IngestStatus, ref: str) -> IngestStatus:
    return IngestStatus(
        ref, status.offset, status.total, status.expected, status.started_at, status.updated_at
    )


class NamespacedWriter:
    """A backend writer whose commit also records the blob in the namespace."""

    def __init__(
        self,
        store: NamespacedContentStore,
        namespace: str,
        ref: str,
        inner: IngestWriter,
        lease: str,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.ref = ref
        self.inner = inner
        self.lease = lease

    def status(self) -> IngestStatus:
        return _with_ref(self.inner.status(), self.ref)

    def digest(self) -> Digest:
        """The digest of the bytes written so far."""
        return self.inner.digest()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` at the current offset; returns the bytes written."""
        return self.inner.write(data)

    def truncate(self, size: int = 0) -> None:
        """Drop what was written past ``size`` (0: start over)."""
        self.inner.truncate(size)

    def commit(self, size: int, expected: Digest | None, labels: dict[str, str]) -> str:
        """Verify and commit; runs off the event loop (fsync)."""
        labels = validate_labels(labels, "content labels")
        with self.store.commit_lock.shared():
            written = str(self.inner.digest())
            try:
                digest = str(self.inner.commit(size=size, expected=expected))
            except errdefs.AlreadyExists:
                # The bytes were already on disk for another namespace; the
                # writer checked what this client sent before reporting that.
                digest = written
            committed_size = self.store.backend.info(digest).size
            self.store._record_commit(
                self.namespace, self.ref, digest, committed_size, labels, self.lease
            )
        return digest

    def abandon(self) -> None:
        """End the write without a commit, its ingest removed (the content exists already)."""
        self.inner.close()
        with contextlib.suppress(errdefs.NotFound):
            self.store.abort(self.namespace, self.ref)

    def close(self) -> None:
        self.inner.close()
