"""The shim's log: lines written to a bundle's ``log`` FIFO, which the daemon drains.

The daemon keeps each task's FIFO open for reading while the task exists. A shim
serving several containers (a pool or group) starts with its first container's
FIFO; when that container is deleted, the FIFO loses its reader, and the log
moves on to the FIFO of a container the shim still serves. With none left (or
no daemon reading), lines are dropped: a shim never blocks or fails on its log.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable

LOG_FIFO = "log"
#: Built at import (in the zygote, so forked shims share it rather than build their own).
_FORMAT = logging.Formatter("time=%(asctime)s level=%(levelname)s msg=%(message)s runtime=pyrunc")


def _open_fifo(bundle: str) -> int | None:
    """The bundle's log FIFO opened for writing; None when nobody reads it."""
    try:
        fd = os.open(os.path.join(bundle, LOG_FIFO), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    os.set_blocking(fd, True)
    return fd


class BundleLogHandler(logging.Handler):
    """Writes records to a bundle's FIFO, moving to another live bundle's when it breaks."""

    def __init__(self, fd: int, bundles: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self.fd: int | None = fd
        #: The bundles of the containers the shim serves now; set once the service exists.
        self.bundles = bundles
        self.setFormatter(_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", errors="replace")
        except Exception:  # noqa: BLE001 - a bad record is dropped, never raised
            return
        for _attempt in range(2):
            if self.fd is None and not self._reopen():
                return
            try:
                os.write(self.fd, line)  # type: ignore[arg-type]
                return
            except OSError:
                self._close_fd()

    def _reopen(self) -> bool:
        for bundle in self.bundles():
            self.fd = _open_fifo(bundle)
            if self.fd is not None:
                return True
        return False

    def _close_fd(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        self._close_fd()
        super().close()


def setup_logging(bundle: str, debug: bool) -> BundleLogHandler | None:
    """Log to `bundle`'s FIFO when the daemon has it open; otherwise nowhere (None)."""
    logging.raiseExceptions = False
    fd = _open_fifo(bundle)
    if fd is None:
        logging.basicConfig(level=logging.CRITICAL + 1, handlers=[logging.NullHandler()])
        return None
    handler = BundleLogHandler(fd)
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.DEBUG if debug else logging.INFO)
    return handler
