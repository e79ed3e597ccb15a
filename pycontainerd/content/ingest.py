"""On-disk layout of one in-progress write: ``ingest/<sha256 of ref>/``.

The directory holds ``ref`` (the client's name for the write), ``startedat``,
``total`` and ``expected`` (what the client announced, if anything) and
``data`` (the bytes written so far). The directory is named by a hash of the
ref so that any client string maps to a fixed-length, path-safe name.

A new directory is populated under a temporary name and renamed into place, so
a reader (or a daemon restarted after its own crash) sees an ingest with all
its metadata or none. That is atomic, not durable: nothing of an ingest is
synced before its commit, as in containerd, because its data is not either (a
Write is acknowledged from the page cache). After a crash of the machine, an
ingest may be missing or unreadable; an unreadable one reports itself as
corrupt, and the next writer of its ref, or garbage collection, starts it over.
Commit syncs what it keeps. Metadata updates replace single files atomically.
The offset is the size of ``data`` and the update time its mtime, so neither
needs a write per chunk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import datetime
from pathlib import Path

from pycontainerd.content.models import IngestStatus
from pycontainerd.digest import Digest
from pycontainerd.errdefs import FailedPrecondition, InvalidArgument, NotFound
from pycontainerd.fsutil import (
    TEMP_PREFIX,
    atomic_write,
    temp_name,
    utc_from_ns,
    write_new_file,
)

REF_FILE = "ref"
STARTED_FILE = "startedat"
TOTAL_FILE = "total"
EXPECTED_FILE = "expected"
DATA_FILE = "data"


def ingest_dir_name(ref: str) -> str:
    """The directory name for ``ref`` (not related to the content's digest)."""
    if not ref:
        raise InvalidArgument("ingest ref must not be empty: name the write with a unique ref")
    return hashlib.sha256(ref.encode("utf-8")).hexdigest()


def is_temporary(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


class IngestDir:
    """Paths and metadata of one ingest directory. Holds no open files."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def data_path(self) -> Path:
        return self.path / DATA_FILE

    def exists(self) -> bool:
        return self.path.is_dir()

    def create(self, ref: str, total: int, expected: Digest | None, started_at: datetime) -> bool:
        """Create the directory atomically; False when it already existed."""
        staging = self.path.with_name(temp_name())
        staging.mkdir(mode=0o755)
        try:
            files = [
                (REF_FILE, ref.encode("utf-8")),
                (STARTED_FILE, started_at.isoformat().encode()),
                (TOTAL_FILE, str(total).encode()),
                (DATA_FILE, b""),
            ]
            if expected is not None:
                files.append((EXPECTED_FILE, expected.encode()))
            for name, content in files:
                write_new_file(staging / name, content, durable=False)
            try:
                os.rename(staging, self.path)
            except OSError:
                if self.path.is_dir():  # a concurrent creator won; use theirs
                    return False
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return True

    def record_expectations(self, total: int | None, expected: Digest | None) -> None:
        """Store a total and/or expected digest announced after the start."""
        if total is not None:
            atomic_write(self.path / TOTAL_FILE, str(total).encode(), durable=False)
        if expected is not None:
            atomic_write(self.path / EXPECTED_FILE, expected.encode(), durable=False)

    def read_ref(self) -> str:
        try:
            ref = (self.path / REF_FILE).read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            if self.exists():
                raise self._corrupt("its ref file is missing") from None
            raise self._not_found() from None
        if not ref:  # a ref is never empty: the file was not synced before a crash
            raise self._corrupt("its ref file is empty")
        return ref

    def read_status(self) -> IngestStatus:
        """Read the status from disk; NotFound if gone, FailedPrecondition if corrupt."""
        ref = self.read_ref()
        try:
            started_at = datetime.fromisoformat((self.path / STARTED_FILE).read_text())
            total = int((self.path / TOTAL_FILE).read_text())
            expected = self._read_expected()
        except FileNotFoundError as exc:
            if not self.exists():  # committed or aborted while we read it
                raise self._not_found() from None
            raise self._corrupt(f"its metadata is unreadable ({exc})", ref) from None
        except (OSError, ValueError, InvalidArgument) as exc:
            raise self._corrupt(f"its metadata is unreadable ({exc})", ref) from None
        try:
            data = self.data_path.stat()
        except FileNotFoundError:
            # Left by a crash right after commit moved the data out.
            offset, updated_at = 0, started_at
        else:
            offset, updated_at = data.st_size, utc_from_ns(data.st_mtime_ns)
        return IngestStatus(
            ref=ref,
            offset=offset,
            total=total,
            expected=expected,
            started_at=started_at,
            updated_at=max(started_at, updated_at),
        )

    def modified_at(self) -> datetime:
        """Last sign of life: the data file's mtime, else the directory's."""
        for candidate in (self.data_path, self.path):
            try:
                return utc_from_ns(candidate.stat().st_mtime_ns)
            except FileNotFoundError:
                continue
        raise self._not_found()

    def remove(self) -> None:
        """Take the directory out of sight in one rename, then delete it.

        A reader racing the removal (a Status or List of the same ref) then
        sees the whole ingest or none of it, never a half-deleted directory
        that looks corrupt. A crash between the two steps leaves a staging
        name, which the stale-ingest sweep removes.
        """
        doomed = self.path.with_name(temp_name())
        try:
            os.rename(self.path, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def _read_expected(self) -> Digest | None:
        try:
            text = (self.path / EXPECTED_FILE).read_text()
        except FileNotFoundError:
            return None
        return Digest(text)

    def _not_found(self) -> NotFound:
        return NotFound(f"ingest {self.path.name} not found")

    def _corrupt(self, why: str, ref: str | None = None) -> FailedPrecondition:
        name = f"ref {ref!r}" if ref is not None else f"directory {self.path.name}"
        return FailedPrecondition(f"ingest for {name} is corrupt: {why}; abort it and start over")
