"""Committed blobs: write, read, info, delete, walk, permissions, usage."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC
from pathlib import Path

import pytest

from pycontainerd.content import LocalContentStore
from pycontainerd.digest import digest_of_bytes
from pycontainerd.errdefs import AlreadyExists, InvalidArgument, NotFound

MISSING = "sha256:" + "0" * 64


def put(store: LocalContentStore, data: bytes, ref: str = "ref") -> str:
    with store.writer(ref, total=len(data)) as writer:
        writer.write(data)
        return writer.commit(len(data), digest_of_bytes(data))


def test_round_trip(store: LocalContentStore) -> None:
    data = os.urandom(3 * (1 << 20) + 123)
    with store.writer("layer", total=len(data)) as writer:
        for start in range(0, len(data), 500_000):
            writer.write(data[start : start + 500_000])
        assert writer.offset == len(data)
        digest = writer.commit()
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.exists(digest)
    info = store.info(digest)
    assert (info.digest, info.size) == (digest, len(data))
    assert info.created_at.tzinfo is UTC
    chunks = list(store.read(digest))
    assert len(chunks) > 1, "large blobs are streamed in chunks"
    assert b"".join(chunks) == data
    assert store.blob_path(digest).read_bytes() == data
    with store.open_blob(digest) as blob:
        assert blob.read() == data


def test_committed_blob_layout_and_permissions(store: LocalContentStore) -> None:
    digest = put(store, b"immutable")
    path = store.blob_path(digest)
    assert path == store.root / "blobs" / "sha256" / digest.split(":")[1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list((store.root / "ingest").iterdir()) == []


def test_writer_with_existing_expected_digest_is_refused(store: LocalContentStore) -> None:
    digest = put(store, b"already here")
    with pytest.raises(AlreadyExists, match=digest):
        store.writer("again", expected=digest)
    assert store.list_statuses() == []


def test_commit_of_existing_content_discards_ingest(store: LocalContentStore) -> None:
    digest = put(store, b"twice", ref="first")
    writer = store.writer("second")
    writer.write(b"twice")
    with pytest.raises(AlreadyExists, match=digest):
        writer.commit()
    assert writer.closed
    with pytest.raises(NotFound):
        store.status("second")
    assert store.blob_path(digest).read_bytes() == b"twice"


@pytest.mark.parametrize(
    ("offset", "size", "expected"),
    [
        (0, 0, b"0123456789"),
        (3, 0, b"3456789"),
        (3, 4, b"3456"),
        (8, 100, b"89"),
        (10, 0, b""),
    ],
)
def test_read_ranges(store: LocalContentStore, offset: int, size: int, expected: bytes) -> None:
    digest = put(store, b"0123456789")
    assert b"".join(store.read(digest, offset, size)) == expected


def test_read_past_end_is_refused_before_streaming(store: LocalContentStore) -> None:
    digest = put(store, b"0123456789")
    with pytest.raises(InvalidArgument, match="offset 11 is beyond the end"):
        store.read(digest, 11)
    with pytest.raises(InvalidArgument, match="offset >= 0"):
        store.read(digest, -1)
    with pytest.raises(NotFound, match=MISSING):
        store.read(MISSING)


def test_missing_blob_is_not_found(store: LocalContentStore) -> None:
    assert not store.exists(MISSING)
    with pytest.raises(NotFound):
        store.info(MISSING)
    with pytest.raises(NotFound):
        store.open_blob(MISSING)
    with pytest.raises(NotFound):
        store.delete(MISSING)


@pytest.mark.parametrize("bad", ["sha256:xyz", "nonsense", "sha256:../../../etc/passwd"])
def test_malformed_digest_is_invalid_argument(store: LocalContentStore, bad: str) -> None:
    for call in (store.info, store.exists, store.blob_path, store.read, store.delete):
        with pytest.raises(InvalidArgument, match="invalid"):
            call(bad)


def test_delete_and_walk(store: LocalContentStore) -> None:
    digests = {put(store, f"blob {i}".encode(), ref=f"r{i}") for i in range(3)}
    (store.root / "blobs" / "sha256" / "not-a-digest").write_bytes(b"stray")
    assert {info.digest for info in store.walk()} == digests
    victim = sorted(digests)[0]
    store.delete(victim)
    assert not store.exists(victim)
    with pytest.raises(NotFound):
        store.delete(victim)
    assert {info.digest for info in store.walk()} == digests - {victim}


def test_disk_usage(store: LocalContentStore) -> None:
    put(store, b"a" * 10, ref="a")
    put(store, b"b" * 20, ref="b")
    with store.writer("pending") as writer:
        writer.write(b"c" * 7)
    usage = store.disk_usage()
    assert (usage.blob_count, usage.blob_bytes) == (2, 30)
    assert (usage.ingest_count, usage.ingest_bytes) == (1, 7)


def test_store_under_daemon_root(content_root: Path) -> None:
    store = LocalContentStore.under_daemon_root(content_root)
    assert store.root == content_root / "io.containerd.content.v1.content"
    assert (store.root / "blobs").is_dir() and (store.root / "ingest").is_dir()
