"""One daemon per root: an exclusive lock on a file under the root."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pycontainerd import errdefs

LOCK_NAME = "pycontainerd.lock"


class RootLock:
    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise errdefs.FailedPrecondition(
                f"another pycontainerd (pid {holder}) is already using root {self.path.parent}; "
                "stop it or pass a different --root"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
