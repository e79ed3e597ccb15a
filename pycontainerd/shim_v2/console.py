"""Receive a container's pty master from the runtime over a console socket.

With ``--console-socket PATH`` runc (and crun) create the pty inside the
container, connect to PATH and send the master with SCM_RIGHTS (the message text
is the terminal's name). `ConsoleSocket` listens on a fresh path in a private
directory and hands back the descriptor.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import shutil
import socket
import struct
import tempfile
import termios

from pycontainerd import errdefs
from pycontainerd.shim_v2.pump import wait_readable

RECEIVE_TIMEOUT = 30.0


class ConsoleSocket:
    """A listening Unix socket whose `path` goes to ``--console-socket``."""

    def __init__(self, directory: str | None = None) -> None:
        self._directory = tempfile.mkdtemp(prefix="pty-", dir=directory)
        self.path = os.path.join(self._directory, "c.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._listener.bind(self.path)
            self._listener.listen(1)
            self._listener.setblocking(False)
        except OSError:
            self.close()
            raise

    async def receive_master(self, timeout: float = RECEIVE_TIMEOUT) -> int:
        """Accept the runtime's connection and return the pty master it sends."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                conn, _ = await loop.sock_accept(self._listener)
                with conn:
                    return await _receive_fd(conn)
        except TimeoutError:
            raise errdefs.DeadlineExceeded(
                f"the runtime did not send a terminal on {self.path} within {timeout:.0f}s"
            ) from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _receive_fd(conn: socket.socket) -> int:
    conn.setblocking(False)
    while True:
        try:
            _msg, ancdata, _flags, _addr = conn.recvmsg(
                4096, socket.CMSG_SPACE(4 * array.array("i").itemsize), socket.MSG_CMSG_CLOEXEC
            )
            break
        except BlockingIOError:
            await wait_readable(conn.fileno())
    received: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            received.extend(fds)
    if not received:
        raise errdefs.FailedPrecondition(
            "the runtime connected to the console socket but sent no fd"
        )
    for extra in received[1:]:
        os.close(extra)
    return received[0]


def resize(fd: int, width: int, height: int) -> None:
    """Set the window size of the terminal behind `fd` (TIOCSWINSZ)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
