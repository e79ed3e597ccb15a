"""Receiving a pty master over a console socket, as runc sends it."""

from __future__ import annotations

import array
import asyncio
import fcntl
import os
import socket
import struct
import termios

import pytest

from pycontainerd import errdefs
from pycontainerd.shim_v2.console import ConsoleSocket, resize


def _send_master(path: str, master: int) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        fds = array.array("i", [master])
        conn.sendmsg([b"/dev/pts/x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])


def test_master_is_received_and_works() -> None:
    master, slave = os.openpty()

    async def main() -> int:
        with ConsoleSocket() as console:
            loop = asyncio.get_running_loop()
            sender = loop.run_in_executor(None, _send_master, console.path, master)
            received = await console.receive_master(timeout=10)
            await sender
        return received

    received = asyncio.run(main())
    try:
        os.close(master)  # only the received copy remains
        os.write(slave, b"from the container\n")
        assert b"from the container" in os.read(received, 100)
        resize(received, 120, 40)
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
        assert (cols, rows) == (120, 40)
    finally:
        os.close(received)
        os.close(slave)


def test_socket_directory_is_removed() -> None:
    console = ConsoleSocket()
    directory = os.path.dirname(console.path)
    assert len(console.path.encode()) < 108
    console.close()
    assert not os.path.exists(directory)


def test_no_connection_times_out() -> None:
    async def main() -> None:
        with ConsoleSocket() as console:
            await console.receive_master(timeout=0.1)

    with pytest.raises(errdefs.DeadlineExceeded, match="did not send a terminal"):
        asyncio.run(main())
