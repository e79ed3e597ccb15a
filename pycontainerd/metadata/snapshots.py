"""The namespaced view of the snapshotters, over the metadata database.

A snapshotter backend knows nothing of namespaces. Here every snapshot a
client names is a row of the ``snapshots`` table (namespace, snapshotter,
key) that points at a backend snapshot named ``<namespace>/<seq>/<key>``, so
two namespaces can use the same key and a parent is only found in its own
namespace. Labels, parents, kinds and times are read from the row; the
backend is asked only for mounts and disk usage.

Crash safety follows one rule: a row is written only once its backend
snapshot exists, and a backend snapshot is removed only once no row names it.

- Prepare and view create the backend snapshot first and write the row last;
  a crash in between leaves a backend snapshot that no row names, which the
  next garbage collection removes (`NamespacedSnapshotter.sweep_unreferenced`).
- Commit runs the backend commit inside the transaction that swaps the rows.
  A crash after the backend commit but before the transaction commits leaves
  a row whose backend snapshot is gone; `reconcile` drops such rows at
  start-up (the client was never told the commit succeeded).
- Remove deletes the row only; garbage collection removes the backend
  snapshot, children before parents.

Backends and the database are called from worker threads, never from the
event loop. Creations and commits hold a shared lock across their backend
step and row write, the sweep holds it exclusively: otherwise a sweep could
take a backend snapshot whose row is about to be written.
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
from collections.abc import Mapping, Sequence

from pycontainerd import errdefs
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
from pycontainerd.metadata.gc import Collector, Sweep
from pycontainerd.metadata.leases import LeaseStore, Resource
from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.metadata.placement import in_worker
from pycontainerd.mount import Mount
from pycontainerd.rwlock import RWLock
from pycontainerd.snapshots.api import Kind, SnapshotInfo, Snapshotter, Usage

log = logging.getLogger(__name__)

DEFAULT_SNAPSHOTTER = "overlayfs"
#: Labels with these names are also given to the backend, as containerd does.
_INHERITED_LABEL_PREFIX = "containerd.io/snapshot/"
_INHERITED_LABEL_REF = "containerd.io/snapshot.ref"


def _inherited(labels: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in labels.items()
        if k == _INHERITED_LABEL_REF or k.startswith(_INHERITED_LABEL_PREFIX)
    }


def _info(row: sqlite3.Row) -> SnapshotInfo:
    return SnapshotInfo(
        name=row["key"],
        kind=Kind(row["kind"]),
        parent=row["parent"],
        labels=load_labels(row["labels"]),
        created=from_ns(row["created_at"]),
        updated=from_ns(row["updated_at"]),
    )


def lease_resource_type(snapshotter: str) -> str:
    """The lease resource type under which a snapshotter's snapshots are held."""
    return f"snapshots/{snapshotter}"


class NamespacedSnapshotter:
    """One snapshotter backend, seen per namespace. Call from worker threads."""

    def __init__(
        self,
        name: str,
        backend: Snapshotter,
        db: Database,
        namespaces: NamespaceStore,
        leases: LeaseStore,
        collector: Collector,
    ) -> None:
        self.name = name
        self.backend = backend
        self.db = db
        self.namespaces = namespaces
        self.leases = leases
        self.collector = collector
        self._gc_lock = RWLock()
        # True when backend snapshots may have lost their rows; the first
        # sweep after start-up also reclaims what a crash left behind.
        self._dirty = True

    # --- rows ---------------------------------------------------------------

    def _find(self, namespace: str, key: str) -> sqlite3.Row | None:
        rows = self.db.query(
            "SELECT * FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
            (namespace, self.name, key),
        )
        return rows[0] if rows else None

    def _get(self, namespace: str, key: str) -> sqlite3.Row:
        row = self._find(namespace, key)
        if row is None:
            raise errdefs.NotFound(
                f"snapshot {key!r} does not exist in snapshotter {self.name!r} "
                f"of namespace {namespace!r}"
            )
        return row

    def _require_absent(self, namespace: str, key: str) -> None:
        if self._find(namespace, key) is not None:
            raise errdefs.AlreadyExists(f"snapshot {key!r} already exists")

    def _parent_backend_key(self, namespace: str, parent: str) -> str:
        """The backend key of `parent` in `namespace` ("" for no parent)."""
        if not parent:
            return ""
        row = self._find(namespace, parent)
        if row is None:
            raise errdefs.NotFound(
                f"parent snapshot {parent!r} does not exist in namespace {namespace!r}"
            )
        if row["kind"] != Kind.COMMITTED:
            raise errdefs.InvalidArgument(
                f"parent {parent!r} is not a committed snapshot; commit it first"
            )
        return row["backend_key"]

    def _new_backend_key(self, namespace: str, key: str) -> str:
        seq = self.db.next_sequence(f"snapshots/{self.name}")
        return f"{namespace}/{seq}/{key}"

    def _insert(
        self,
        namespace: str,
        key: str,
        backend_key: str,
        parent: str,
        kind: Kind,
        labels: dict[str, str],
    ) -> None:
        stamp = now_ns()
        self.db.conn.execute(
            "INSERT INTO snapshots(namespace, snapshotter, key, backend_key, parent, kind,"
            " labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                self.name,
                key,
                backend_key,
                parent,
                int(kind),
                dump_labels(labels),
                stamp,
                stamp,
            ),
        )

    def _delete_row(self, namespace: str, key: str) -> None:
        self.db.conn.execute(
            "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
            (namespace, self.name, key),
        )

    def _lease(self, namespace: str, lease: str, key: str, add: bool) -> None:
        if not lease:
            return
        resource = Resource(key, lease_resource_type(self.name))
        if add:
            self.leases.add_resource(namespace, lease, resource)
        else:
            self.leases.delete_resource(namespace, lease, resource)

    # --- creating -----------------------------------------------------------

    @in_worker
    def prepare(
        self,
        namespace: str,
        key: str,
        parent: str = "",
        labels: Mapping[str, str] | None = None,
        lease: str = "",
    ) -> list[Mount]:
        """A writable snapshot `key` on top of committed `parent`."""
        return self._create(Kind.ACTIVE, namespace, key, parent, labels, lease)

    @in_worker
    def view(
        self,
        namespace: str,
        key: str,
        parent: str = "",
        labels: Mapping[str, str] | None = None,
        lease: str = "",
    ) -> list[Mount]:
        """A read-only snapshot `key` of committed `parent`."""
        return self._create(Kind.VIEW, namespace, key, parent, labels, lease)

    def _create(
        self,
        kind: Kind,
        namespace: str,
        key: str,
        parent: str,
        labels: Mapping[str, str] | None,
        lease: str,
    ) -> list[Mount]:
        if not key:
            raise errdefs.InvalidArgument("snapshot key must not be empty")
        checked = validate_labels(dict(labels or {}), f"snapshot {key!r} labels")
        with self._gc_lock.shared():
            with self.db.tx():
                self.namespaces.ensure(namespace)
                self._require_absent(namespace, key)
                parent_backend = self._parent_backend_key(namespace, parent)
                backend_key = self._new_backend_key(namespace, key)
            create = self.backend.prepare if kind == Kind.ACTIVE else self.backend.view
            mounts = create(backend_key, parent_backend, _inherited(checked))
            try:
                with self.db.tx():
                    # Checked again: another call may have taken the key or
                    # removed the parent while the backend worked.
                    self._require_absent(namespace, key)
                    if self._parent_backend_key(namespace, parent) != parent_backend:
                        raise errdefs.Aborted(
                            f"parent {parent!r} was replaced while preparing {key!r}; retry"
                        )
                    self._insert(namespace, key, backend_key, parent, kind, checked)
                    self._lease(namespace, lease, key, add=True)
            except BaseException:
                self._remove_backend(backend_key)
                raise
        return mounts

    @in_worker
    def commit(
        self,
        namespace: str,
        name: str,
        key: str,
        labels: Mapping[str, str] | None = None,
        lease: str = "",
    ) -> None:
        """Turn active snapshot `key` into committed snapshot `name`."""
        if not name:
            raise errdefs.InvalidArgument("committed snapshot name must not be empty")
        checked = validate_labels(dict(labels or {}), f"snapshot {name!r} labels")
        with self._gc_lock.shared(), self.db.tx():
            active = self._get(namespace, key)
            if active["kind"] != Kind.ACTIVE:
                kind = Kind(active["kind"]).name.lower()
                raise errdefs.FailedPrecondition(
                    f"snapshot {key!r} is a {kind} snapshot; only active snapshots can be committed"
                )
            self._require_absent(namespace, name)
            backend_name = self._new_backend_key(namespace, name)
            self._delete_row(namespace, key)
            self._insert(namespace, name, backend_name, active["parent"], Kind.COMMITTED, checked)
            self._lease(namespace, lease, name, add=True)
            self._lease(namespace, lease, key, add=False)
            # Last, so that a failure rolls the rows back; see the module notes.
            self.backend.commit(backend_name, active["backend_key"], _inherited(checked))

    @property
    def supports_rebase(self) -> bool:
        """Whether :meth:`rebase` works on this snapshotter (overlayfs: yes)."""
        return self.backend.supports_rebase

    @in_worker
    def rebase(self, namespace: str, key: str, parent: str) -> list[Mount]:
        """Put active `key`, prepared without a parent, on top of committed `parent`.

        Nothing is copied: `key`'s own files become its layer on `parent` (see the
        backend's rebase). Returns the new mounts.
        """
        with self._gc_lock.shared(), self.db.tx():
            row = self._get(namespace, key)
            if row["kind"] != Kind.ACTIVE or row["parent"]:
                raise errdefs.FailedPrecondition(
                    f"snapshot {key!r} cannot be rebased: only an active snapshot without "
                    "a parent can be"
                )
            parent_backend = self._parent_backend_key(namespace, parent)
            if not parent_backend:
                raise errdefs.InvalidArgument(f"rebasing {key!r} needs a parent")
            self.db.conn.execute(
                "UPDATE snapshots SET parent = ?, updated_at = ? "
                "WHERE namespace = ? AND snapshotter = ? AND key = ?",
                (parent, now_ns(), namespace, self.name, key),
            )
            # Last, so that a failure rolls the row back.
            return self.backend.rebase(row["backend_key"], parent_backend)

    # --- reading and changing -----------------------------------------------

    @in_worker
    def mounts(self, namespace: str, key: str) -> list[Mount]:
        return self.backend.mounts(self._get(namespace, key)["backend_key"])

    @in_worker
    def stat(self, namespace: str, key: str) -> SnapshotInfo:
        return _info(self._get(namespace, key))

    @in_worker
    def usage(self, namespace: str, key: str) -> Usage:
        return self.backend.usage(self._get(namespace, key)["backend_key"])

    @in_worker
    def list(self, namespace: str) -> list[SnapshotInfo]:
        rows = self.db.query(
            "SELECT * FROM snapshots WHERE namespace = ? AND snapshotter = ? ORDER BY key",
            (namespace, self.name),
        )
        return [_info(r) for r in rows]

    @in_worker
    def update(
        self, namespace: str, info: SnapshotInfo, fieldpaths: Sequence[str] = ()
    ) -> SnapshotInfo:
        """Change labels: none or ``labels`` replaces all, ``labels.<k>`` sets or drops one."""
        if not info.name:
            raise errdefs.InvalidArgument("snapshot name is required for update")
        with self.db.tx() as c:
            current = _info(self._get(namespace, info.name))
            if fieldpaths:
                labels, rest = apply_map_paths(current.labels, info.labels, fieldpaths, "labels")
                refuse_unknown(rest, "snapshot", info.name)
            else:
                labels = dict(info.labels)
            labels = validate_labels(labels, f"snapshot {info.name!r} labels")
            c.execute(
                "UPDATE snapshots SET labels = ?, updated_at = ?"
                " WHERE namespace = ? AND snapshotter = ? AND key = ?",
                (dump_labels(labels), now_ns(), namespace, self.name, info.name),
            )
            return _info(self._get(namespace, info.name))

    @in_worker
    @frees_space
    def remove(self, namespace: str, key: str, lease: str = "") -> None:
        """Forget `key`; garbage collection then removes it from disk."""
        with self.db.tx():
            self._get(namespace, key)
            child = self.db.conn.execute(
                "SELECT key FROM snapshots WHERE namespace = ? AND snapshotter = ? AND parent = ?"
                " LIMIT 1",
                (namespace, self.name, key),
            ).fetchone()
            if child is not None:
                raise errdefs.FailedPrecondition(
                    f"cannot remove snapshot {key!r}: snapshot {child['key']!r} is based on it; "
                    "remove the children first"
                )
            self._delete_row(namespace, key)
            self._lease(namespace, lease, key, add=False)
        self._dirty = True

    # --- garbage and crash leftovers ----------------------------------------

    def sweep_unreferenced(self, force: bool = False) -> builtins.list[str]:
        """Remove backend snapshots that no row names, children first; returns their keys.

        Does nothing unless something may have been orphaned since the last
        sweep (or `force`). Failures are logged and retried on the next sweep.
        """
        if not (self._dirty or force):
            return []
        removed: list[str] = []
        self._dirty = False
        try:
            with self._gc_lock.exclusive():
                referenced = self.collector.referenced_backend_snapshots(self.name)
                for backend_key in removal_order(list(self.backend.walk()), referenced):
                    if self._remove_backend(backend_key):
                        removed.append(backend_key)
            self.backend.cleanup()
        except BaseException:
            self._dirty = True
            raise
        return removed

    def _remove_backend(self, backend_key: str) -> bool:
        """Remove one backend snapshot; on failure log, mark for a retry, and say so."""
        try:
            self.backend.remove(backend_key)
        except (errdefs.ContainerdError, OSError) as exc:
            log.warning(
                "snapshotter %s: cannot remove unrecorded snapshot %s yet, "
                "the next garbage collection retries: %s",
                self.name,
                backend_key,
                exc,
            )
            self._dirty = True
            return False
        return True

    def reconcile(self) -> builtins.list[tuple[str, str]]:
        """Drop rows whose backend snapshot is gone; returns their (namespace, key).

        Only a crash between a backend commit and its row update leaves such
        a row (the active key that was being committed). Rows with children
        are kept and logged: dropping them would orphan the children.
        """
        existing = {info.name for info in self.backend.walk()}
        dropped: list[tuple[str, str]] = []
        with self.db.tx() as c:
            rows = c.execute(
                "SELECT namespace, key, backend_key FROM snapshots WHERE snapshotter = ?",
                (self.name,),
            ).fetchall()
            for row in rows:
                if row["backend_key"] in existing:
                    continue
                has_child = c.execute(
                    "SELECT 1 FROM snapshots WHERE namespace = ? AND snapshotter = ?"
                    " AND parent = ? LIMIT 1",
                    (row["namespace"], self.name, row["key"]),
                ).fetchone()
                if has_child:
                    log.error(
                        "snapshotter %s: snapshot %r in namespace %r has lost its data (%s) "
                        "but has children; remove them, then the snapshot",
                        self.name,
                        row["key"],
                        row["namespace"],
                        row["backend_key"],
                    )
                    continue
                self._delete_row(row["namespace"], row["key"])
                dropped.append((row["namespace"], row["key"]))
        for namespace, key in dropped:
            log.warning(
                "snapshotter %s: dropped snapshot %r of namespace %r, its data is gone "
                "(interrupted commit)",
                self.name,
                key,
                namespace,
            )
        return dropped

    @in_worker
    def cleanup(self) -> None:
        """Reclaim disk space now: unreferenced backend snapshots and crash leftovers."""
        self.sweep_unreferenced(force=True)


def removal_order(infos: Sequence[SnapshotInfo], referenced: set[str]) -> list[str]:
    """Backend snapshots to remove, deepest first: not referenced, and no kept descendant."""
    parents = {info.name: info.parent for info in infos}
    keep: set[str] = set()
    for name in referenced & parents.keys():
        while name and name not in keep:
            keep.add(name)
            name = parents.get(name, "")

    def depth(name: str) -> int:
        steps = 0
        while (name := parents.get(name, "")) and steps <= len(parents):
            steps += 1
        return steps

    doomed = [name for name in parents if name not in keep]
    return sorted(doomed, key=depth, reverse=True)


class Snapshotters:
    """The namespaced snapshotters, by name."""

    def __init__(
        self,
        backends: Mapping[str, Snapshotter],
        db: Database,
        namespaces: NamespaceStore,
        leases: LeaseStore,
        collector: Collector,
    ) -> None:
        self._by_name = {
            name: NamespacedSnapshotter(name, backend, db, namespaces, leases, collector)
            for name, backend in backends.items()
        }

    def get(self, name: str) -> NamespacedSnapshotter:
        """The snapshotter `name` ("" means the default, overlayfs)."""
        name = name or DEFAULT_SNAPSHOTTER
        try:
            return self._by_name[name]
        except KeyError:
            loaded = ", ".join(sorted(self._by_name)) or "none"
            raise errdefs.InvalidArgument(
                f"snapshotter {name} not loaded (loaded: {loaded})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def reconcile(self) -> None:
        """Repair what a crash left between backends and rows (call at start-up)."""
        for snapshotter in self._by_name.values():
            snapshotter.reconcile()

    def sweep(self, collector: Collector, sweep: Sweep) -> None:
        """The GC backend sweeper: remove backend snapshots whose rows are gone."""
        swept = {snapshotter for _, snapshotter, _, _ in sweep.snapshots}
        for name, snapshotter in self._by_name.items():
            try:
                snapshotter.sweep_unreferenced(force=name in swept)
            except (errdefs.ContainerdError, OSError) as exc:
                log.warning("snapshotter %s: sweep failed, retrying later: %s", name, exc)
