"""The shim's log FIFO: created in the bundle, drained into the daemon's log.

A shim writes its log to ``<bundle>/log``; opening a FIFO for writing blocks
until a reader exists, so the daemon opens it read-write (never blocking, never
seeing end-of-file) before starting the shim, and again after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("pycontainerd.shim")

_READ_SIZE = 65536
_MAX_PENDING = 65536


class ShimLog:
    """Reads a shim's log FIFO on the event loop and logs each line."""

    def __init__(self, path: Path, task_id: str) -> None:
        self.path = path
        self.task_id = task_id
        self._fd: int | None = None
        self._pending = b""

    def open(self) -> None:
        """Create the FIFO if needed and start draining it."""
        try:
            mode = os.lstat(self.path).st_mode
            if not stat.S_ISFIFO(mode):
                self.path.unlink()
                os.mkfifo(self.path, 0o700)
        except FileNotFoundError:
            os.mkfifo(self.path, 0o700)
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        asyncio.get_running_loop().add_reader(self._fd, self._drain)

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            asyncio.get_running_loop().remove_reader(fd)
        except RuntimeError:  # no running loop: the daemon is stopping, nothing to remove
            log.debug("shim log of %s closed without a running loop", self.task_id)
        os.close(fd)
        self._flush(final=True)

    def _drain(self) -> None:
        if self._fd is None:
            return
        try:
            chunk = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("reading the log of shim %s failed: %s", self.task_id, exc)
            self.close()
            return
        self._pending += chunk
        self._flush(final=len(self._pending) > _MAX_PENDING)

    def _flush(self, final: bool) -> None:
        *lines, rest = self._pending.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        self._pending = rest
        for line in lines:
            if line.strip():
                log.info("[%s] %s", self.task_id, line.decode(errors="replace"))
