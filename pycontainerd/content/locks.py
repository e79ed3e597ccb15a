"""Exclusive ownership of an ingest directory by a single writer.

Two layers, because each alone has a gap: a process-wide table gives a clear
"locked since" message and covers every store instance in this process, and an
flock on the directory keeps a second process (say, a restarted daemon racing
its old self, or a debugging tool) from writing the same ingest. The kernel drops
the flock when a process dies, so a crash never leaves a ref locked.
"""

from __future__ import annotations

import fcntl
import os
import threading
from datetime import datetime
from pathlib import Path

from pycontainerd.errdefs import Unavailable
from pycontainerd.fsutil import utc_now

_table_guard = threading.Lock()
_held_since: dict[str, datetime] = {}


def _claim_in_process(key: str, ref: str) -> None:
    with _table_guard:
        since = _held_since.get(key)
        if since is not None:
            raise Unavailable(
                f"ref {ref!r} locked since {since.isoformat()} by another writer in this "
                "process; close that writer or retry later"
            )
        _held_since[key] = utc_now()


def _release_in_process(key: str) -> None:
    with _table_guard:
        _held_since.pop(key, None)


class IngestLock:
    """A held lock on one ingest directory; release() it exactly once."""

    __slots__ = ("_fd", "_key")

    def __init__(self, key: str, fd: int) -> None:
        self._key = key
        self._fd = fd

    @classmethod
    def acquire(cls, directory: Path, ref: str) -> IngestLock:
        """Take the lock without waiting.

        Raises Unavailable when another writer holds it, and FileNotFoundError
        when the directory does not exist or was removed while we were locking
        (the caller decides whether to recreate it or report NotFound).
        """
        key = str(directory)
        _claim_in_process(key, ref)
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except BaseException:
            _release_in_process(key)
            raise
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Unavailable(
                    f"ref {ref!r} locked by another process; retry once it finishes"
                ) from None
            # A remover may have deleted the directory between open and flock.
            if os.fstat(fd).st_ino != os.stat(directory).st_ino:
                raise FileNotFoundError(directory)
        except BaseException:
            os.close(fd)
            _release_in_process(key)
            raise
        return cls(key, fd)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            os.close(fd)  # closing the only descriptor drops the flock
        finally:
            _release_in_process(self._key)
