"""Copy bytes between two non-blocking file descriptors on the event loop.

Pipes, FIFOs and pty masters all work. asyncio's pipe transports do not fit: the
write transport treats a FIFO that becomes readable as closed, and a FIFO the
shim opened read-write (to never block on open) is readable as soon as anything
is written to it.
"""

from __future__ import annotations

import errno
import os

from pycontainerd.fdwait import until_ready

_CHUNK = 32 * 1024


async def wait_readable(fd: int) -> None:
    await _wait(fd, writable=False)


async def wait_writable(fd: int) -> None:
    await _wait(fd, writable=True)


async def _wait(fd: int, *, writable: bool) -> None:
    await until_ready(fd, writable=writable)


def set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


async def read_some(fd: int) -> bytes:
    """Up to one chunk from `fd`; b"" at end of file (EIO from a closed pty counts as end)."""
    while True:
        try:
            return os.read(fd, _CHUNK)
        except BlockingIOError:
            await wait_readable(fd)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise


async def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await wait_writable(fd)
            continue
        view = view[written:]


async def pump(source: int, destination: int) -> None:
    """Copy `source` to `destination` until `source` ends or the destination breaks.

    Neither descriptor is closed here; the caller owns both.
    """
    set_nonblocking(source)
    set_nonblocking(destination)
    while data := await read_some(source):
        try:
            await write_all(destination, data)
        except (BrokenPipeError, ConnectionResetError):
            return
