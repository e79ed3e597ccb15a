"""Committed blobs: ``blobs/<algorithm>/<hex>``, immutable and read-only.

Blobs are shared by every namespace; who may see which blob is decided by the
metadata layer. Everything here is addressed by a validated digest, so a client
string never becomes a path without passing the digest grammar first.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

from pycontainerd.content.models import BlobInfo
from pycontainerd.digest import HEX_LENGTHS, IO_CHUNK_SIZE, Digest
from pycontainerd.errdefs import AlreadyExists, InvalidArgument, NotFound
from pycontainerd.fsutil import ensure_dir, fsync_dir, utc_from_ns

READ_ONLY_MODE = 0o444


class BlobStore:
    """The committed half of the content store (the ingest half lives elsewhere)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        parsed = Digest(digest)
        return self.root / parsed.algorithm / parsed.hex

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def info(self, digest: str) -> BlobInfo:
        path = self.path(digest)
        try:
            return _info_from_stat(Digest(digest), path.stat())
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None

    def open(self, digest: str) -> io.BufferedReader:
        try:
            return open(self.path(digest), "rb")  # noqa: SIM115 - the caller owns it
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None

    def read(self, digest: str, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        """Chunks of the blob from ``offset``; ``size`` 0 means up to the end.

        Checks run now, not at the first ``next()``, so errors reach the caller
        before it starts streaming a reply.
        """
        if offset < 0 or size < 0:
            raise InvalidArgument(
                f"read of {digest} needs offset >= 0 and size >= 0, got {offset} and {size}"
            )
        blob_size = self.info(digest).size
        if offset > blob_size:
            raise InvalidArgument(
                f"read offset {offset} is beyond the end of {digest} ({blob_size} bytes)"
            )
        remaining = blob_size - offset if size == 0 else min(size, blob_size - offset)
        return self._chunks(digest, offset, remaining)

    def _chunks(self, digest: str, offset: int, remaining: int) -> Iterator[bytes]:
        with self.open(digest) as blob:
            blob.seek(offset)
            while remaining > 0:
                chunk = blob.read(min(IO_CHUNK_SIZE, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    def delete(self, digest: str) -> None:
        path = self.path(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None
        fsync_dir(path.parent)

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob; files whose names are not digests are skipped."""
        for algorithm, hex_length in HEX_LENGTHS.items():
            directory = self.root / algorithm
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if len(entry.name) != hex_length or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    digest = Digest.from_parts(algorithm, entry.name)
                    yield _info_from_stat(digest, entry.stat(follow_symlinks=False))
                except (InvalidArgument, FileNotFoundError):
                    continue  # a stray file, or deleted while we walked

    def publish(self, source: Path, digest: Digest) -> None:
        """Move a finished, fsynced file into place as ``digest``.

        Raises AlreadyExists when the blob is already there. Readers never see
        a partial blob: the rename is atomic, and only complete data is renamed.
        """
        target = self.path(digest)
        ensure_dir(target.parent)
        if target.exists():
            raise AlreadyExists(f"content {digest} already exists")
        os.rename(source, target)
        fsync_dir(target.parent)


def _info_from_stat(digest: Digest, stat: os.stat_result) -> BlobInfo:
    committed_at = utc_from_ns(stat.st_mtime_ns)
    return BlobInfo(
        digest=digest, size=stat.st_size, created_at=committed_at, updated_at=committed_at
    )
