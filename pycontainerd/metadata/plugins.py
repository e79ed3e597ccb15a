"""Plugin registrations of the content store, the metadata store and GC."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pycontainerd import errdefs, plugin
from pycontainerd.config import duration_seconds, number_setting
from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.gc import Collector, Sweep
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.snapshots.api import Snapshotter


@plugin.register(plugin.CONTENT, "content", required=True)
def init_content(ic: plugin.InitContext) -> LocalContentStore:
    ic.exports["root"] = str(ic.root)
    return LocalContentStore(ic.root)


@plugin.register(
    plugin.METADATA, "sqlite", requires=(plugin.CONTENT, plugin.SNAPSHOTTER), required=True
)
def init_metadata(ic: plugin.InitContext) -> MetadataStore:
    path = ic.root / "meta.db"
    ic.exports["database"] = str(path)
    content: LocalContentStore = ic.get(plugin.CONTENT, "content")
    snapshotters: dict[str, Snapshotter] = ic.get_all(plugin.SNAPSHOTTER)
    if not _holds_data(path):
        refuse_new_database_over_data(path, content, snapshotters)
    ic.make_dirs(ic.root)
    try:
        db = Database(path)
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, exc) from exc
    check_integrity(db)
    metadata = MetadataStore(db, content, snapshotters)
    metadata.snapshots.reconcile()
    return metadata


def _holds_data(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def refuse_new_database_over_data(
    path: Path, content: LocalContentStore, snapshotters: dict[str, Snapshotter]
) -> None:
    """A missing or empty meta.db over existing blobs or snapshots: refuse to start.

    A database made anew would reference nothing, and the first garbage
    collection would delete every blob and snapshot on disk.
    """
    found = []
    if next(iter(content.walk()), None) is not None:
        found.append(f"blobs in {content.root}")
    for name, snapshotter in sorted(snapshotters.items()):
        if next(iter(snapshotter.walk()), None) is not None:
            found.append(f"snapshots of the {name} snapshotter")
    if found:
        raise errdefs.FailedPrecondition(
            f"the metadata database {path} is missing or empty, but there are "
            f"{' and '.join(found)}: refusing to start, because garbage collection would "
            "delete them all. Restore meta.db (and its -wal file) from a backup, or, to "
            "start with nothing, move the content and snapshotter directories away."
        )


def check_integrity(db: Database) -> None:
    """FailedPrecondition naming the file when SQLite finds the database damaged."""
    try:
        rows = db.conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise _damaged(db.path, exc) from exc
    problems = [row[0] for row in rows if row[0] != "ok"]
    if problems:
        raise _damaged(db.path, "; ".join(problems[:5]))


def _damaged(path: Path, problem: object) -> errdefs.FailedPrecondition:
    return errdefs.FailedPrecondition(
        f"the metadata database {path} is damaged ({problem}): refusing to start; "
        "restore it from a backup"
    )


@plugin.register(
    plugin.GC,
    "scheduler",
    requires=(plugin.METADATA,),
    config={
        "pause_threshold": 0.02,
        "schedule_delay": "0s",
        "startup_delay": "0s",
        "interval": "1h",
    },
)
async def init_gc(ic: plugin.InitContext) -> GCScheduler:
    metadata: MetadataStore = ic.get(plugin.METADATA)
    scheduler = GCScheduler(
        metadata.db,
        metadata.collector,
        schedule_delay=duration_seconds(ic.config["schedule_delay"]),
        startup_delay=duration_seconds(ic.config["startup_delay"]),
        interval=duration_seconds(ic.config["interval"]),
        # A share of the time, as containerd bounds it; 0 collects at once every time.
        pause_threshold=number_setting(
            "io.containerd.gc.v1.scheduler", ic.config, "pause_threshold", minimum=0, maximum=0.5
        ),
    )

    def sweep_blobs(collector: Collector, sweep: Sweep) -> None:
        metadata.content.sweep_unreferenced(collector.referenced_digests)
        metadata.content.abort_unreferenced_writes(collector.referenced_ingests)

    scheduler.add_sweeper(sweep_blobs)
    scheduler.add_sweeper(metadata.snapshots.sweep)
    await scheduler.start()
    return scheduler
