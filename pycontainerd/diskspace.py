"""A full disk: recognising it, reporting it, and keeping room to recover from it.

When the daemon's root file system fills up, writes fail with ENOSPC (EDQUOT
under a quota) and SQLite with "database or disk is full". Both become
`DiskFull` (RESOURCE_EXHAUSTED) naming the file system, at the place the write
failed, so the client learns what is full rather than an errno.

Recovering means deleting, and a SQLite commit needs room for its WAL frames
even when it only deletes rows. Each database therefore keeps a
`SpaceReserve`: a preallocated file beside it that is given back to the file
system when a deletion's commit finds the disk full, so that the deletion
commits and then frees the files it describes. The reserve is taken again
once there is room.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

from pycontainerd import errdefs

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Seconds between attempts to take a released reserve back.
_RETAKE_INTERVAL = 1.0
#: Bytes left free when re-taking what is left of a reserve after an emergency.
_KEEP_FREE = 64 << 10


class DiskFull(errdefs.ResourceExhausted):
    """A write failed because the file system (or the quota) holding it is full."""


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT and for SQLite's "database or disk is full"."""
    return isinstance(exc, DiskFull) or errdefs.is_disk_full(exc)


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    current = os.path.abspath(path)
    while not os.path.exists(current) and current != os.sep:
        current = os.path.dirname(current)
    device = os.stat(current).st_dev
    while current != os.sep:
        parent = os.path.dirname(current)
        if os.stat(parent).st_dev != device:
            break
        current = parent
    return current


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes an unprivileged writer could still use on the file system of ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def full_error(exc: BaseException, path: str | os.PathLike[str], what: str) -> DiskFull:
    """`DiskFull` for ``exc``, saying which file system under ``path`` is full."""
    try:
        where = f"the file system mounted at {mount_point(path)}"
    except OSError:
        where = f"the file system holding {os.fspath(path)}"
    reason = (
        "disk quota exceeded"
        if isinstance(exc, OSError) and exc.errno == errno.EDQUOT
        else "no space left on device"
    )
    error = DiskFull(
        f"{what}: {where} is full ({reason}); free space there (remove images, "
        "snapshots or abandoned writes) and retry"
    )
    error.errno = exc.errno if isinstance(exc, OSError) else errno.ENOSPC
    return error


@contextlib.contextmanager
def reporting_full_disk(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turn a full-disk failure inside the block into `DiskFull` naming the file system."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        raise full_error(exc, path, what) from exc


class SpaceReserve:
    """A preallocated file whose blocks can be handed back when the disk is full.

    Thread-safe. `release` gives the blocks back at once. `retake` allocates
    them again once the file system has room for the reserve and as much
    again, so that taking it never makes the next ordinary write fail; right
    after an emergency, `retake(what_is_left=True)` holds what the deletion
    did not use, so that ordinary writes still find the disk full until the
    deletion's files are gone.
    """

    def __init__(self, path: str | os.PathLike[str], size: int) -> None:
        self.path = Path(path)
        self.size = size
        self._lock = threading.Lock()
        self._held = False
        self._next_attempt = 0.0

    @property
    def held(self) -> bool:
        """True when the whole reserve is allocated."""
        return self._held

    def retake(self, what_is_left: bool = False) -> bool:
        """Allocate what is missing of the reserve if there is room; True when all is held."""
        if self._held:
            return True
        now = time.monotonic()
        if not what_is_left and now < self._next_attempt:
            return False
        with self._lock:
            if self._held:
                return True
            self._next_attempt = now + _RETAKE_INTERVAL
            try:
                have = self._current_size()
                missing = self.size - have
                if missing > 0:
                    free = free_bytes(self.path.parent)
                    if what_is_left:
                        missing = min(missing, free - _KEEP_FREE)
                    elif free < missing + self.size:
                        return False
                    if missing <= 0:
                        return False
                    self._allocate(have + missing)
                self._held = self._current_size() >= self.size
            except OSError as exc:
                if not is_disk_full(exc):
                    log.warning("cannot keep the space reserve %s: %s", self.path, exc)
            return self._held

    def release(self) -> bool:
        """Give the reserve's blocks back; True when that freed anything."""
        with self._lock:
            self._held = False
            self._next_attempt = time.monotonic() + _RETAKE_INTERVAL
            freed = self._current_size() > 0
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
            if freed:
                log.warning(
                    "%s is full: released the space reserve %s so that deletions can commit",
                    mount_point(self.path.parent),
                    self.path,
                )
            return freed

    def _current_size(self) -> int:
        try:
            return os.stat(self.path).st_blocks * 512
        except FileNotFoundError:
            return 0

    def _allocate(self, size: int) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                _write_zeros(fd, size)  # a file system without fallocate
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_zeros(fd: int, size: int) -> None:
    block = bytes(1 << 16)
    written = os.lseek(fd, 0, os.SEEK_END)
    while written < size:
        written += os.write(fd, block[: size - written])


def retry_after_release(
    reserve: SpaceReserve,
    settle: Callable[[], None],
    fn: Callable[P, T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run a deletion; when it finds the disk full, release ``reserve`` and run it once more.

    After the second run, ``settle`` gives back what it can (a database
    truncates its WAL) and the reserve takes what is left, so that the next
    deletion on a still-full disk finds room again.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if not is_disk_full(exc) or not reserve.release():
            raise
    try:
        return fn(*args, **kwargs)
    finally:
        try:
            settle()
        except Exception as exc:  # best effort: the deletion itself is done
            log.warning("after a deletion on a full disk: %s", exc)
        reserve.retake(what_is_left=True)
