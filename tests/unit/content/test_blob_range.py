"""Blob reads that take the page cache inline and leave the disk to a worker."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.content.blobs import BlobRange, BlobStore
from pycontainerd.digest import IO_CHUNK_SIZE
from pycontainerd.mount import filesystem_type

DATA = os.urandom(3 * IO_CHUNK_SIZE + 12345)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


def _store_in(root: Path) -> BlobStore:
    store = BlobStore(root)
    path = store.path(DIGEST)
    path.parent.mkdir(parents=True)
    path.write_bytes(DATA)
    return store


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def on_disk(tmp_path: Path) -> BlobStore:
    if filesystem_type(str(tmp_path)) in ("tmpfs", "ramfs"):
        pytest.skip("the temporary directory is on a memory file system here: no disk to wait for")
    return _store_in(tmp_path / "blobs")


@pytest.fixture
def on_tmpfs(tmp_path: Path) -> Iterator[BlobStore]:
    root = tmp_path / "mem"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root)], check=True)
    try:
        yield _store_in(root / "blobs")
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def test_a_cached_blob_is_read_without_a_worker(on_disk: BlobStore) -> None:
    blob = on_disk.read(DIGEST, 100, 40000)
    chunks = []
    while (chunk := blob.cached_chunk()) is not None and chunk:
        chunks.append(chunk)
    assert chunk == b""  # every chunk came from the cache, then the end
    assert b"".join(chunks) == DATA[100:40100]


def test_an_uncached_blob_is_left_to_a_blocking_read(on_disk: BlobStore) -> None:
    path = on_disk.path(DIGEST)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # out of the page cache
    finally:
        os.close(fd)
    blob = on_disk.read(DIGEST)
    assert blob.cached_chunk() is None  # reading would wait for the disk
    assert b"".join(blob) == DATA  # the blocking reads get it all


def test_a_blob_on_a_memory_file_system_is_always_read_inline(on_tmpfs: BlobStore) -> None:
    blob = on_tmpfs.read(DIGEST, IO_CHUNK_SIZE - 5)
    got = b""
    while chunk := blob.cached_chunk():
        got += chunk
    assert got == DATA[IO_CHUNK_SIZE - 5 :]


def test_the_descriptor_is_closed_at_the_end_on_close_and_when_dropped(on_disk: BlobStore) -> None:
    before = _open_fds()
    assert b"".join(on_disk.read(DIGEST)) == DATA
    assert _open_fds() == before
    on_disk.read(DIGEST).close()
    assert _open_fds() == before
    dropped = on_disk.read(DIGEST, 0, 10)
    assert _open_fds() == before + 1
    del dropped
    assert _open_fds() == before
    assert list(BlobRange.empty(7)) == []


def test_a_fifo_in_a_blobs_place_is_opened_only_by_the_blocking_read(tmp_path: Path) -> None:
    """Taking the read must not wait on the FIFO (that would be the event loop)."""
    store = BlobStore(tmp_path / "blobs")
    path = store.path(DIGEST)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    blob = store.read(DIGEST)  # returns at once: nothing waits for a writer yet
    assert blob.cached_chunk() is None

    def writer() -> None:
        os.close(os.open(path, os.O_WRONLY))  # waits for the reader's open

    thread = threading.Thread(target=writer)
    thread.start()
    assert blob.read_chunk() == b""  # the worker's open waited for the writer, then the end
    thread.join(5)
    assert not thread.is_alive()
