"""A full disk: the error kind, the space reserve, and databases that can still delete.

The database tests run on a small tmpfs mounted in a temp dir (as root, like
every test here) and filled to the last block.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import diskspace, errdefs
from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.leases import LeaseStore
from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.snapshots.api import Kind
from pycontainerd.snapshots.storage import MetaStore

MiB = 1 << 20


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards whatever happens."""
    target = tmp_path / "fs"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def fill(directory: Path) -> Path:
    """A file taking every block left under ``directory``."""
    path = directory / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (MiB, 64 << 10, 4 << 10, 512, 1):
            block = bytes(size)
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    assert diskspace.free_bytes(directory) == 0
    return path


def test_full_disk_errors_are_resource_exhausted() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]  # set by sqlite3 itself
    for exc in (OSError(errno.ENOSPC, "No space"), OSError(errno.EDQUOT, "Quota"), full):
        assert diskspace.is_disk_full(exc)
        assert errdefs.code_of(exc) == errdefs.Code.RESOURCE_EXHAUSTED
    assert not diskspace.is_disk_full(OSError(errno.EIO, "I/O"))
    assert errdefs.code_of(sqlite3.OperationalError("no such table")) == errdefs.Code.UNKNOWN


def test_the_error_names_the_file_system(small_fs: Path) -> None:
    error = diskspace.full_error(OSError(errno.ENOSPC, "x"), small_fs / "a" / "b", "writing")
    assert isinstance(error, errdefs.ResourceExhausted)
    assert str(error).startswith(f"writing: the file system mounted at {small_fs} is full")
    assert errdefs.status_message(error).endswith(": resource exhausted")


def test_the_reserve_is_taken_only_with_room_to_spare(small_fs: Path) -> None:
    reserve = diskspace.SpaceReserve(small_fs / "reserve", 3 * MiB)
    assert reserve.retake() and (small_fs / "reserve").stat().st_blocks * 512 >= 3 * MiB
    assert reserve.release() and not (small_fs / "reserve").exists()
    filler = small_fs / "big"
    filler.write_bytes(bytes(6 * MiB))  # 2 MiB left: not twice the reserve
    reserve._next_attempt = 0.0
    assert not reserve.retake()
    assert reserve.retake(what_is_left=True) is False  # partial: held in part, not all
    assert 0 < (small_fs / "reserve").stat().st_size <= 3 * MiB


def test_the_metadata_database_deletes_on_a_full_disk(small_fs: Path) -> None:
    db = Database(small_fs / "meta.db", reserve_size=MiB)
    namespaces = NamespaceStore(db)
    leases = LeaseStore(db, namespaces)
    try:
        for index in range(200):
            leases.create("ns", f"lease-{index}", {"label": "x" * 200})
        filler = fill(small_fs)
        with pytest.raises(errdefs.ResourceExhausted, match=f"mounted at {small_fs} is full"):
            for index in range(200, 2000):  # until the WAL needs a new block
                leases.create("ns", f"lease-{index}", {"label": "x" * 2000})
        # The failed commit left no transaction open, and deletions commit.
        for index in range(200):
            leases.delete("ns", f"lease-{index}")
        assert not [lease for lease in leases.list("ns") if int(lease.id[6:]) < 200]
        filler.unlink()
    finally:
        db.close()


def test_the_snapshot_database_removes_on_a_full_disk(small_fs: Path) -> None:
    store = MetaStore(small_fs / "metadata.db", reserve_size=MiB)
    try:
        with store.transaction(writable=True) as tx:
            for index in range(300):
                tx.create(Kind.ACTIVE, f"key-{index}", labels={"l": "v" * 500})
        fill(small_fs)

        def remove_all() -> None:
            with store.transaction(writable=True) as tx:
                for index in range(300):
                    tx.remove(f"key-{index}")

        with pytest.raises(errdefs.ResourceExhausted), store.transaction(writable=True) as tx:
            for index in range(300, 3000):
                tx.create(Kind.ACTIVE, f"key-{index}", labels={"l": "v" * 3000})
        store.freeing(remove_all)
        with store.transaction() as tx:
            assert tx.walk() == []
    finally:
        store.close()


def test_a_content_write_that_fills_the_disk_keeps_the_ingest_consistent(small_fs: Path) -> None:
    store = LocalContentStore(small_fs / "content")
    chunk = os.urandom(3 * MiB)
    writer = store.writer("ref")
    writer.write(chunk)
    with pytest.raises(diskspace.DiskFull, match=f"mounted at {small_fs} is full"):
        writer.write(chunk + chunk)  # 6 MiB more do not fit in 8
    # The part that got out is given back: offset, file and hash agree.
    assert writer.offset == len(chunk)
    assert (store._ingest("ref").data_path).stat().st_size == len(chunk)
    writer.write(b"tail")
    expected = "sha256:" + hashlib.sha256(chunk + b"tail").hexdigest()
    assert writer.commit(expected=expected) == expected
