"""The metadata database: SQLite in WAL mode with synchronous commits.

Writes and large reads run on one dedicated thread (`Database.run`), so that
the asyncio loop never blocks on fsync and SQLite sees a single writer; point
lookups run inline on the loop when that thread is idle (`Database.read`).
Stores are plain classes whose methods use `Database.tx` for writes; where
each method runs is declared by the store (metadata/placement.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from pycontainerd.diskspace import (
    SpaceReserve,
    reporting_full_disk,
    retry_after_release,
)

T = TypeVar("T")
P = ParamSpec("P")

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS images (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    annotations TEXT NOT NULL DEFAULT '{}',
    labels TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE IF NOT EXISTS content (
    namespace TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, digest)
);
CREATE TABLE IF NOT EXISTS ingests (
    namespace TEXT NOT NULL,
    ref TEXT NOT NULL,
    backend_ref TEXT NOT NULL UNIQUE,
    expected TEXT NOT NULL DEFAULT '',
    expires_at INTEGER,
    PRIMARY KEY (namespace, ref)
);
CREATE TABLE IF NOT EXISTS leases (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS lease_resources (
    namespace TEXT NOT NULL,
    lease TEXT NOT NULL,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (namespace, lease, type, id)
);
CREATE TABLE IF NOT EXISTS containers (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    image TEXT NOT NULL DEFAULT '',
    runtime_name TEXT NOT NULL DEFAULT '',
    runtime_options BLOB,
    runtime_options_type TEXT NOT NULL DEFAULT '',
    spec BLOB,
    spec_type TEXT NOT NULL DEFAULT '',
    snapshotter TEXT NOT NULL DEFAULT '',
    snapshot_key TEXT NOT NULL DEFAULT '',
    sandbox TEXT NOT NULL DEFAULT '',
    extensions TEXT NOT NULL DEFAULT '{}',
    labels TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS snapshots (
    namespace TEXT NOT NULL,
    snapshotter TEXT NOT NULL,
    key TEXT NOT NULL,
    backend_key TEXT NOT NULL,
    parent TEXT NOT NULL DEFAULT '',
    kind INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, snapshotter, key)
);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def now_ns() -> int:
    return time.time_ns()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ns(stamp: int) -> datetime:
    """A stored nanosecond timestamp as an aware UTC datetime (microseconds kept)."""
    return _EPOCH + timedelta(microseconds=stamp // 1000)


def dump_labels(labels: dict[str, str] | None) -> str:
    return json.dumps(dict(labels or {}), sort_keys=True)


def load_labels(text: str | None) -> dict[str, str]:
    return json.loads(text) if text and text != "{}" else {}


#: Bytes kept free beside the database for deletions to commit on a full disk.
RESERVE_SIZE = 4 << 20
RESERVE_SUFFIX = ".reserve"


class Database:
    """One SQLite database file, used from one worker thread.

    A `SpaceReserve` beside the file (``meta.db.reserve``) keeps room for
    deletions when the disk is full: store methods that only delete are
    marked `frees_space` and retried once with the reserve released.
    """

    def __init__(self, path: Path, reserve_size: int = RESERVE_SIZE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.reserve = SpaceReserve(path.with_name(path.name + RESERVE_SUFFIX), reserve_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metadata")
        self._thread_lock = threading.RLock()
        self._tx_thread: int | None = None  # the thread inside a transaction, if any
        # Opening writes the WAL index and maybe a schema row: on a full disk
        # that needs the reserve too, or the daemon could not even start.
        self.conn = retry_after_release(self.reserve, lambda: None, self._open)
        self.reserve.retake()

    def _open(self) -> sqlite3.Connection:
        with reporting_full_disk(self.path, f"opening the metadata database {self.path}"):
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30
            )
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                # Sorts and temporary indexes in memory: reads need no disk space.
                conn.execute("PRAGMA temp_store=MEMORY")
                conn.executescript(SCHEMA)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            except BaseException:
                conn.close()
                raise
        return conn

    @property
    def in_transaction(self) -> bool:
        """True when the calling thread is inside a transaction (`tx` calls join it)."""
        return self._tx_thread == threading.get_ident()

    def truncate_wal(self) -> None:
        """Copy the WAL into the database and cut it to nothing, giving its blocks back."""
        with self._thread_lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store function on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read (a lookup, a namespace's rows) inline when the database is idle.

        A hop to the database thread costs ~0.1 ms, more than such a lookup
        itself; when a writer holds the database (it may be in fsync), the read
        waits its turn on the database thread instead of blocking the loop.
        Only for reads that write nothing (filters run elsewhere, see placement.py).
        """
        if not self._thread_lock.acquire(blocking=False):
            return await self.run(fn, *args)
        try:
            return fn(*args)
        finally:
            self._thread_lock.release()

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._thread_lock:
            return fn(*args)

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed (and fsynced) on success, rolled back on error.

        Nested use joins the outer transaction.
        """
        with self._thread_lock:
            if self._tx_thread is not None:  # only this thread can be in it: the lock is ours
                yield self.conn
                return
            if not self.reserve.held:
                self.reserve.retake()
            self._tx_thread = threading.get_ident()
            try:
                with reporting_full_disk(self.path, f"metadata database {self.path}"):
                    self.conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self.conn
                        self.conn.execute("COMMIT")
                    finally:
                        # A failed COMMIT (a full disk) may leave the transaction
                        # open; every later BEGIN would fail.
                        if self.conn.in_transaction:
                            self.conn.execute("ROLLBACK")
            finally:
                self._tx_thread = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._thread_lock:
            return self.conn.execute(sql, params).fetchall()

    def query_tuples(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows as plain tuples: cheaper than `query`'s sqlite3.Row for wide scans."""
        with self._thread_lock:
            cursor = self.conn.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    def next_sequence(self, name: str) -> int:
        with self.tx() as c:
            c.execute(
                "INSERT INTO sequences(name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (name,),
            )
            return int(
                c.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()[0]
            )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._thread_lock:
            self.conn.close()


class _HasDatabase(Protocol):
    db: Database


S = TypeVar("S", bound=_HasDatabase)


def frees_space(fn: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Mark a store method that only deletes: on a full disk it runs again with the reserve.

    Without this, a full disk would keep every Abort, Remove and garbage
    collection from committing, and so from ever freeing space. A call inside
    an outer transaction is not retried; the outermost marked call is.
    """

    @functools.wraps(fn)
    def call(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if store.db.in_transaction:
            return fn(store, *args, **kwargs)
        db = store.db
        return retry_after_release(db.reserve, db.truncate_wal, fn, store, *args, **kwargs)

    return call
