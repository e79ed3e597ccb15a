"""A snapshotter's own record of its snapshots, in SQLite.

Every snapshot gets a numeric id that never changes (committing keeps it) and
is never reused, so directories on disk can be named by id. Active and view
snapshots are found by key, committed ones by name; keys and names share one
space. Every operation runs inside `MetaStore.transaction()`, so other threads
never see half of a change, and a snapshotter can put its filesystem steps
between the database change and its commit.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pycontainerd import errdefs
from pycontainerd.diskspace import SpaceReserve, reporting_full_disk, retry_after_release
from pycontainerd.snapshots.api import Kind, SnapshotInfo, Usage, WalkFilter

T = TypeVar("T")

#: Bytes kept beside the database so that removals can commit on a full disk.
RESERVE_SIZE = 1 << 20
#: Like containerd's label rule: key and value together at most this many bytes.
MAX_LABEL_SIZE = 4096
_LABELS_PREFIX = "labels."

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    parent_id INTEGER REFERENCES snapshots(id),
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    inodes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
CREATE TABLE IF NOT EXISTS labels (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, name)
);
"""

_INFO_QUERY = """
SELECT s.id, s.key, s.kind, p.key, s.created_ns, s.updated_ns, s.size, s.inodes
FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id
"""


@dataclass(frozen=True)
class Snapshot:
    """Where a snapshot lives: its id and its parents' ids, nearest first."""

    id: int
    kind: Kind
    parent_ids: tuple[int, ...] = ()


def validate_labels(labels: dict[str, str]) -> None:
    for name, value in labels.items():
        if len(name.encode()) + len(value.encode()) > MAX_LABEL_SIZE:
            raise errdefs.InvalidArgument(
                f"label {name[:64]!r}: key and value exceed {MAX_LABEL_SIZE} bytes"
            )


def _to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


class Transaction:
    """Operations on the store; valid only inside `MetaStore.transaction()`."""

    def __init__(self, conn: sqlite3.Connection, writable: bool) -> None:
        self._conn = conn
        self._writable = writable

    def _require_writable(self) -> None:
        if not self._writable:
            raise errdefs.FailedPrecondition("snapshot store: write in a read-only transaction")

    def _row(self, key: str) -> tuple[int, Kind, int | None]:
        row = self._conn.execute(
            "SELECT id, kind, parent_id FROM snapshots WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            raise errdefs.NotFound(f"snapshot {key!r} does not exist")
        return row[0], Kind(row[1]), row[2]

    def _labels(self, snapshot_id: int) -> dict[str, str]:
        rows = self._conn.execute(
            "SELECT name, value FROM labels WHERE snapshot_id = ? ORDER BY name", (snapshot_id,)
        )
        return dict(rows.fetchall())

    def _set_labels(self, snapshot_id: int, labels: dict[str, str]) -> None:
        validate_labels(labels)
        self._conn.execute("DELETE FROM labels WHERE snapshot_id = ?", (snapshot_id,))
        self._conn.executemany(
            "INSERT INTO labels (snapshot_id, name, value) VALUES (?, ?, ?)",
            [(snapshot_id, k, v) for k, v in labels.items()],
        )

    def _info_from_row(self, row: tuple) -> tuple[int, SnapshotInfo, Usage]:
        sid, key, kind, parent, created, updated, size, inodes = row
        info = SnapshotInfo(
            name=key,
            kind=Kind(kind),
            parent=parent or "",
            labels=self._labels(sid),
            created=_to_datetime(created),
            updated=_to_datetime(updated),
        )
        return sid, info, Usage(inodes=inodes, size=size)

    def parent_ids(self, snapshot_id: int) -> tuple[int, ...]:
        """The chain of ancestors of `snapshot_id`, nearest first."""
        rows = self._conn.execute(
            """
            WITH RECURSIVE chain(id, parent_id, depth) AS (
                SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
                UNION ALL
                SELECT s.id, s.parent_id, c.depth + 1
                FROM snapshots s JOIN chain c ON s.id = c.parent_id
            )
            SELECT id FROM chain WHERE depth > 0 ORDER BY depth
            """,
            (snapshot_id,),
        ).fetchall()
        return tuple(r[0] for r in rows)

    def get(self, key: str) -> Snapshot:
        """The id and parent chain of an active or view snapshot."""
        sid, kind, _ = self._row(key)
        if kind not in (Kind.ACTIVE, Kind.VIEW):
            raise errdefs.FailedPrecondition(f"snapshot {key!r} is committed, not active or view")
        return Snapshot(id=sid, kind=kind, parent_ids=self.parent_ids(sid))

    def info(self, key: str) -> tuple[int, SnapshotInfo, Usage]:
        """Id, info and stored usage of any snapshot."""
        row = self._conn.execute(_INFO_QUERY + " WHERE s.key = ?", (key,)).fetchone()
        if row is None:
            raise errdefs.NotFound(f"snapshot {key!r} does not exist")
        return self._info_from_row(row)

    def exists(self, key: str) -> bool:
        return (
            self._conn.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone()
            is not None
        )

    def check_parent(self, parent: str) -> int | None:
        """The id of `parent`, which must be committed; None for no parent."""
        if not parent:
            return None
        try:
            pid, pkind, _ = self._row(parent)
        except errdefs.NotFound:
            raise errdefs.NotFound(f"parent snapshot {parent!r} does not exist") from None
        if pkind != Kind.COMMITTED:
            # containerd answers InvalidArgument here, so clients see the same code.
            raise errdefs.InvalidArgument(
                f"parent {parent!r} is not a committed snapshot; commit it first"
            )
        return pid

    def create(
        self, kind: Kind, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> Snapshot:
        """Record a new active or view snapshot."""
        self._require_writable()
        if kind not in (Kind.ACTIVE, Kind.VIEW):
            raise errdefs.InvalidArgument(
                f"snapshot kind {kind!r} cannot be created; only active or view"
            )
        if not key:
            raise errdefs.InvalidArgument("snapshot key must not be empty")
        parent_id = self.check_parent(parent)
        if self.exists(key):
            raise errdefs.AlreadyExists(f"snapshot {key!r} already exists")
        now = time.time_ns()
        cursor = self._conn.execute(
            "INSERT INTO snapshots (key, kind, parent_id, created_ns, updated_ns) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, int(kind), parent_id, now, now),
        )
        sid = cursor.lastrowid
        assert sid is not None
        self._set_labels(sid, labels or {})
        return Snapshot(id=sid, kind=kind, parent_ids=self.parent_ids(sid))

    def commit(
        self, key: str, name: str, usage: Usage, labels: dict[str, str] | None = None
    ) -> int:
        """Turn active `key` into committed `name`; labels are replaced, not inherited."""
        self._require_writable()
        if not name:
            raise errdefs.InvalidArgument("committed snapshot name must not be empty")
        sid, kind, _ = self._row(key)
        if kind != Kind.ACTIVE:
            raise errdefs.FailedPrecondition(
                f"snapshot {key!r} is a {kind.name.lower()} snapshot; only active ones commit"
            )
        if self.exists(name):
            raise errdefs.AlreadyExists(f"snapshot {name!r} already exists")
        now = time.time_ns()
        self._conn.execute(
            "UPDATE snapshots SET key = ?, kind = ?, created_ns = ?, updated_ns = ?, "
            "size = ?, inodes = ? WHERE id = ?",
            (name, int(Kind.COMMITTED), now, now, usage.size, usage.inodes, sid),
        )
        self._set_labels(sid, labels or {})
        return sid

    def rebase(self, key: str, parent: str) -> Snapshot:
        """Put active `key`, made without a parent, on top of committed `parent`."""
        self._require_writable()
        sid, kind, parent_id = self._row(key)
        if kind != Kind.ACTIVE or parent_id is not None:
            raise errdefs.FailedPrecondition(
                f"snapshot {key!r} cannot be rebased: only an active snapshot without a "
                "parent can be"
            )
        new_parent = self.check_parent(parent)
        if new_parent is None:
            raise errdefs.InvalidArgument(f"rebasing {key!r} needs a parent")
        self._conn.execute(
            "UPDATE snapshots SET parent_id = ?, updated_ns = ? WHERE id = ?",
            (new_parent, time.time_ns(), sid),
        )
        return Snapshot(id=sid, kind=kind, parent_ids=self.parent_ids(sid))

    def remove(self, key: str) -> tuple[int, Kind]:
        """Delete the record of a snapshot without children."""
        self._require_writable()
        sid, kind, _ = self._row(key)
        child = self._conn.execute(
            "SELECT key FROM snapshots WHERE parent_id = ? LIMIT 1", (sid,)
        ).fetchone()
        if child is not None:
            raise errdefs.FailedPrecondition(
                f"cannot remove snapshot {key!r}: snapshot {child[0]!r} is based on it; "
                "remove the children first"
            )
        self._conn.execute("DELETE FROM snapshots WHERE id = ?", (sid,))
        return sid, kind

    def update(self, info: SnapshotInfo, fieldpaths: Sequence[str] = ()) -> SnapshotInfo:
        """Apply label changes from `info`; only labels may change.

        No fieldpaths replaces all labels; ``labels`` does the same;
        ``labels.<k>`` sets `k` from `info.labels`, or deletes it when absent.
        """
        self._require_writable()
        sid, _, _ = self._row(info.name)
        labels = self._labels(sid)
        if not fieldpaths:
            labels = dict(info.labels)
        for path in fieldpaths:
            if path == "labels":
                labels = dict(info.labels)
            elif path.startswith(_LABELS_PREFIX) and len(path) > len(_LABELS_PREFIX):
                name = path[len(_LABELS_PREFIX) :]
                if name in info.labels:
                    labels[name] = info.labels[name]
                else:
                    labels.pop(name, None)
            else:
                raise errdefs.InvalidArgument(
                    f"cannot update field {path!r} of snapshot {info.name!r}; "
                    "only 'labels' and 'labels.<key>' can change"
                )
        self._set_labels(sid, labels)
        self._conn.execute(
            "UPDATE snapshots SET updated_ns = ? WHERE id = ?", (time.time_ns(), sid)
        )
        return self.info(info.name)[1]

    def walk(self, filter: WalkFilter | None = None) -> list[SnapshotInfo]:
        """Infos of all snapshots for which `filter` is true, ordered by key."""
        rows = self._conn.execute(_INFO_QUERY + " ORDER BY s.key").fetchall()
        infos = [self._info_from_row(row)[1] for row in rows]
        return [i for i in infos if filter is None or filter(i)]

    def ids(self) -> set[int]:
        return {r[0] for r in self._conn.execute("SELECT id FROM snapshots")}

    def names_not_in_db(self, names: Iterable[str]) -> list[str]:
        """Of directory `names` on disk, those that are not the id of a snapshot."""
        known = {str(i) for i in self.ids()}
        return sorted(n for n in names if n not in known)


class MetaStore:
    """The SQLite database of one snapshotter (WAL, fsync on every commit).

    One connection serves all threads, one at a time: a snapshotter's database
    operations are short, and the slow parts (copying, walking directories)
    happen outside transactions. ``reserve`` (``metadata.db.reserve``) keeps
    room for removals on a full disk (`MetaStore.freeing`).
    """

    def __init__(self, path: str | Path, reserve_size: int = RESERVE_SIZE) -> None:
        self.path = Path(path)
        self.reserve = SpaceReserve(self.path.with_name(self.path.name + ".reserve"), reserve_size)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.execute("PRAGMA temp_store=MEMORY")
        with self.transaction(writable=True):
            # Statement by statement: executescript() would commit on its own.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
        self.reserve.retake()

    @contextlib.contextmanager
    def transaction(self, writable: bool = False) -> Iterator[Transaction]:
        """All-or-nothing: committed when the block ends, rolled back if it raises."""
        with self._lock, reporting_full_disk(self.path, f"snapshot database {self.path}"):
            if writable and not self.reserve.held:
                self.reserve.retake()
            self._conn.execute("BEGIN IMMEDIATE" if writable else "BEGIN")
            try:
                yield Transaction(self._conn, writable)
                self._conn.execute("COMMIT")
            finally:
                # A COMMIT that failed (a full disk) may leave the transaction open.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    def freeing(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, a removal; on a full disk, once more with the reserve released."""
        return retry_after_release(self.reserve, self._truncate_wal, fn)

    def _truncate_wal(self) -> None:
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
