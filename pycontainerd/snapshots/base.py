"""What the directory-backed snapshotters share: records, life cycle, crash safety.

On disk, under the snapshotter's root::

    metadata.db        the `MetaStore`
    snapshots/<id>/    one directory per snapshot, named by its never-reused id
    staging/<tmp>/     snapshots being built, not yet recorded
    removing/<tmp>/    snapshots no longer recorded, being deleted

The database is the truth; a directory counts only when its id is recorded.
Creating builds in ``staging``, then records the snapshot and renames the
directory into ``snapshots`` inside one transaction. Removing deletes the
record first, then renames the directory into ``removing`` and deletes it.
A crash at any step leaves at most a directory that no record names, and
`cleanup()` reclaims exactly those.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence

from pycontainerd import errdefs
from pycontainerd.diskspace import reporting_full_disk
from pycontainerd.fsutil import fsync_dir
from pycontainerd.mount import Mount
from pycontainerd.snapshots import fsutil
from pycontainerd.snapshots.api import Kind, SnapshotInfo, Usage, WalkFilter
from pycontainerd.snapshots.storage import MetaStore, Snapshot

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.db"


class DirectorySnapshotter:
    """A snapshotter keeping each snapshot in ``snapshots/<id>``.

    Subclasses decide what goes into a new snapshot's directory
    (`_populate`), which mounts expose it (`_mounts`) and which part of it
    is the snapshot's own layer for disk usage (`_layer_path`).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(root)
        self._snapshots_dir = os.path.join(self.root, "snapshots")
        self._staging_dir = os.path.join(self.root, "staging")
        self._removing_dir = os.path.join(self.root, "removing")
        for path in (self.root, self._snapshots_dir, self._staging_dir, self._removing_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self._store = MetaStore(os.path.join(self.root, METADATA_FILE))
        # Staging and removal directories this process is working on right now;
        # cleanup() must leave them alone.
        self._in_flight: set[str] = set()
        self._in_flight_lock = threading.Lock()

    # --- hooks for subclasses -------------------------------------------------

    def _populate(
        self, directory: str, kind: Kind, parent: str | None, labels: dict[str, str]
    ) -> None:
        """Fill a new snapshot `directory`; `parent` is the parent's directory."""
        raise NotImplementedError

    def _mounts(self, snapshot: Snapshot) -> list[Mount]:
        raise NotImplementedError

    def _layer_path(self, snapshot_id: int) -> str:
        """The directory whose disk usage is the snapshot's usage."""
        raise NotImplementedError

    #: Whether `rebase` works: the snapshot's own layer must not depend on its parent.
    supports_rebase = False

    def _rebased(self, directory: str, parent: str, labels: dict[str, str]) -> None:
        """Adjust `directory` (a snapshot that now has the parent directory `parent`)."""
        raise NotImplementedError

    # --- paths and bookkeeping ------------------------------------------------

    def snapshot_dir(self, snapshot_id: int) -> str:
        return os.path.join(self._snapshots_dir, str(snapshot_id))

    def _new_in_flight_dir(self, parent: str, prefix: str) -> str:
        """A fresh directory under `parent`, registered before anyone can list it."""
        with self._in_flight_lock:
            path = tempfile.mkdtemp(prefix=prefix, dir=parent)
            self._in_flight.add(path)
        return path

    def _forget_in_flight(self, path: str) -> None:
        with self._in_flight_lock:
            self._in_flight.discard(path)

    def _move_to_trash(self, path: str) -> str:
        """Rename `path` into ``removing``; the trash stays in flight until deleted."""
        name = os.path.basename(path)
        trash = self._new_in_flight_dir(self._removing_dir, f"{name}-")
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, os.path.join(trash, name))
        return trash

    def _delete_trash(self, trash: str) -> None:
        try:
            fsutil.remove_tree(trash)
        except (OSError, errdefs.ContainerdError) as exc:
            log.warning("leaving %s for the next cleanup: %s", trash, exc)
        finally:
            self._forget_in_flight(trash)

    # --- the Snapshotter interface -----------------------------------------

    def prepare(
        self, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def _create(
        self, kind: Kind, key: str, parent: str, labels: dict[str, str] | None
    ) -> list[Mount]:
        # Fail fast before a possibly slow populate; the write below re-checks.
        with self._store.transaction() as tx:
            if tx.exists(key):
                raise errdefs.AlreadyExists(f"snapshot {key!r} already exists")
            parent_id = tx.check_parent(parent)
        staging = self._new_in_flight_dir(self._staging_dir, "new-")
        try:
            parent_dir = self.snapshot_dir(parent_id) if parent_id is not None else None
            with reporting_full_disk(self.root, f"preparing snapshot {key!r}"):
                self._populate(staging, kind, parent_dir, labels or {})
            snapshot = self._record(kind, key, parent, labels, staging)
        finally:
            fsutil.remove_tree(staging)  # gone already when the snapshot was recorded
            self._forget_in_flight(staging)
        return self._mounts(snapshot)

    def _record(
        self, kind: Kind, key: str, parent: str, labels: dict[str, str] | None, staging: str
    ) -> Snapshot:
        """Record the snapshot and move `staging` into place, all or nothing.

        The rename happens inside the transaction: if the commit fails, the
        directory goes back to `staging`; if the process dies first, the
        directory has no record and cleanup() reclaims it.
        """
        final = ""
        try:
            with self._store.transaction(writable=True) as tx:
                snapshot = tx.create(kind, key, parent, labels)
                final = self.snapshot_dir(snapshot.id)
                if os.path.lexists(final):
                    # Only a crash before a commit leaves a directory with a fresh id.
                    fsutil.remove_tree(final)
                os.rename(staging, final)
                fsync_dir(self._snapshots_dir)
        except BaseException:
            if final and os.path.lexists(final) and not os.path.lexists(staging):
                os.rename(final, staging)
            raise
        return snapshot

    def mounts(self, key: str) -> list[Mount]:
        with self._store.transaction() as tx:
            snapshot = tx.get(key)
        return self._mounts(snapshot)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        with self._store.transaction() as tx:
            snapshot = tx.get(key)
        if snapshot.kind != Kind.ACTIVE:
            raise errdefs.FailedPrecondition(
                f"snapshot {key!r} is a view; only active snapshots can be committed"
            )
        usage = fsutil.disk_usage(self._layer_path(snapshot.id))
        with self._store.transaction(writable=True) as tx:
            committed_id = tx.commit(key, name, usage, labels)
            if committed_id != snapshot.id:
                raise errdefs.Aborted(
                    f"snapshot {key!r} was replaced while being committed; retry the commit"
                )

    def rebase(self, key: str, parent: str) -> list[Mount]:
        """Put active `key`, prepared without a parent, on top of committed `parent`.

        Its files stay where they are (nothing is copied): what was written into it
        alone becomes its layer over `parent`, as if it had been prepared there.
        NotImplemented_ on snapshotters whose layers are full copies.
        """
        if not self.supports_rebase:
            raise errdefs.NotImplemented_(
                f"the {type(self).__name__} cannot rebase snapshots: its layers are not "
                "independent of their parents"
            )
        with self._store.transaction(writable=True) as tx:
            snapshot = tx.rebase(key, parent)
            labels = tx.info(key)[1].labels
            # Inside the transaction: a failure leaves the snapshot without its parent.
            self._rebased(
                self.snapshot_dir(snapshot.id), self.snapshot_dir(snapshot.parent_ids[0]), labels
            )
        return self._mounts(snapshot)

    def remove(self, key: str) -> None:
        snapshot_id = self._store.freeing(lambda: self._forget(key))
        # The id is never handed out again, so nothing can claim the directory
        # between the commit and this rename; a crash in between leaves an
        # orphan for cleanup().
        self._delete_trash(self._move_to_trash(self.snapshot_dir(snapshot_id)))

    def _forget(self, key: str) -> int:
        with self._store.transaction(writable=True) as tx:
            return tx.remove(key)[0]

    def stat(self, key: str) -> SnapshotInfo:
        with self._store.transaction() as tx:
            return tx.info(key)[1]

    def update(self, info: SnapshotInfo, fieldpaths: Sequence[str] = ()) -> SnapshotInfo:
        with self._store.transaction(writable=True) as tx:
            return tx.update(info, fieldpaths)

    def usage(self, key: str) -> Usage:
        with self._store.transaction() as tx:
            snapshot_id, info, stored = tx.info(key)
        if info.kind == Kind.ACTIVE:
            return fsutil.disk_usage(self._layer_path(snapshot_id))
        return stored

    def walk(self, filter: WalkFilter | None = None) -> Iterator[SnapshotInfo]:
        with self._store.transaction() as tx:
            infos = tx.walk(filter)
        yield from infos

    def cleanup(self) -> None:
        """Delete directories that no record names: crash leftovers and failed removals."""
        # Orphans move to the trash inside the transaction, so a prepare that
        # reuses a crashed transaction's id can never have its directory taken.
        with self._store.transaction(writable=True) as tx:
            orphans = tx.names_not_in_db(os.listdir(self._snapshots_dir))
            trash = [self._move_to_trash(os.path.join(self._snapshots_dir, n)) for n in orphans]
            with self._in_flight_lock:
                leftovers = [
                    path
                    for directory in (self._staging_dir, self._removing_dir)
                    for path in (os.path.join(directory, n) for n in os.listdir(directory))
                    if path not in self._in_flight
                ]
                self._in_flight.update(leftovers)
        for path in trash + leftovers:
            self._delete_trash(path)

    def close(self) -> None:
        self._store.close()
