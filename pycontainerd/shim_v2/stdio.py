"""A container process's stdio: the client's FIFOs joined to the process by pipes.

The client (ctr, the daemon's SDK) creates FIFOs and names them in the request.
The process gets pipes; the shim copies stdin FIFO -> pipe and pipe -> stdout/
stderr FIFO, so the process never blocks on a FIFO open and its output outlives
a client that comes and goes. Output FIFOs are opened read-write: that never
blocks, and a client that went away cannot make writes fail with EPIPE (like
containerd's shim, which holds a reader open too). Once the process side of an
output ends, the shim closes its FIFO, so the client reads end of file. A
``file://`` URI writes the output to a file instead; a ``binary://`` URI hands it
to a logging program (`log_binary.py`).

With a terminal there are no pipes: the runtime hands over the pty master
(`console.py`) and `TerminalIO` copies between it and the FIFOs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat

from pycontainerd import errdefs
from pycontainerd.oci.runtime import Stdio
from pycontainerd.shim_v2.log_binary import LoggingBinary
from pycontainerd.shim_v2.pump import pump
from pycontainerd.stdio_paths import StdioPaths

log = logging.getLogger(__name__)

#: How long an exit waits for the last output to reach the client.
OUTPUT_DRAIN_SECONDS = 2.0


def open_output(target: str) -> int:
    """Open an output destination: a FIFO (read-write) or a ``file://`` path (append)."""
    scheme, sep, rest = target.partition("://")
    if not sep or scheme == "fifo":
        path = rest if sep else target
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError as exc:
            raise errdefs.NotFound(f"stdio FIFO {path} does not exist; create it first") from exc
        if stat.S_ISFIFO(mode):
            return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    if scheme == "file":
        os.makedirs(os.path.dirname(rest) or ".", exist_ok=True)
        return os.open(rest, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    raise errdefs.NotImplemented_(
        f"stdio destination {target!r}: scheme {scheme!r} is not supported (use a FIFO "
        "path or file://)"
    )


def open_input(path: str) -> int:
    """Open the stdin FIFO for reading without waiting for a writer."""
    path = path.removeprefix("fifo://")
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise errdefs.NotFound(f"stdin FIFO {path} does not exist; create it first") from exc


class _Copies:
    """Running copy tasks and the descriptors they use; closes them all at the end."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.outputs: list[asyncio.Task[None]] = []
        self._writers: dict[int, int] = {}  # output descriptor -> copies still writing to it
        self.stdin_task: asyncio.Task[None] | None = None
        self.stdin_fd: int | None = None  # our end feeding the process's stdin

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def copy_output(self, source: int, destination: int) -> None:
        self._writers[destination] = self._writers.get(destination, 0) + 1

        async def copy() -> None:
            try:
                await pump(source, destination)
            finally:
                self._release_output(destination)

        self.outputs.append(asyncio.get_running_loop().create_task(copy()))

    def _release_output(self, fd: int) -> None:
        """Close an output once every copy into it ended, so the client reads end of file.

        containerd's shim does the same: a client that closes its FIFOs right after
        deleting an exec must already have seen all of the output.
        """
        self._writers[fd] -= 1
        if self._writers[fd] == 0:
            del self._writers[fd]
            if fd in self.fds:  # not yet closed by close()
                self.fds.remove(fd)
                os.close(fd)

    def copy_input(self, source: int, destination: int) -> None:
        async def feed() -> None:
            try:
                await pump(source, destination)
            finally:
                self.close_stdin()

        self.stdin_fd = destination
        self.stdin_task = asyncio.get_running_loop().create_task(feed())

    def close_stdin(self) -> None:
        """End the process's stdin (CloseIO, or the client closed the FIFO)."""
        fd, self.stdin_fd = self.stdin_fd, None
        if fd is not None:
            if fd in self.fds:
                self.fds.remove(fd)
            os.close(fd)
        task = self.stdin_task
        if task is not None and task is not _current_task():
            task.cancel()

    async def drain(self, timeout: float) -> None:
        """Wait (up to `timeout`) until every output copy reached end of file."""
        if self.outputs:
            await asyncio.wait(self.outputs, timeout=timeout)

    def close(self) -> None:
        self.close_stdin()
        for task in self.outputs:
            task.cancel()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class _CopyingIO:
    """What both kinds of stdio offer the process: end stdin, drain output, close."""

    def __init__(self, paths: StdioPaths, logger: LoggingBinary | None = None) -> None:
        self.paths = paths
        self._copies = _Copies()
        self._logger = logger

    def close_stdin(self) -> None:
        self._copies.close_stdin()

    async def drain(self, timeout: float = OUTPUT_DRAIN_SECONDS) -> None:
        await self._copies.drain(timeout)
        if self._logger is not None:
            await self._logger.wait(timeout)

    def close(self) -> None:
        self._copies.close()
        if self._logger is not None:
            self._logger.close()


class PipeIO(_CopyingIO):
    """Pipes for a process without a terminal, with the copying to and from FIFOs.

    With a `logger` the process writes straight into the logging program's
    pipes and has no stdin, as with containerd's shim.
    """

    def __init__(
        self,
        paths: StdioPaths,
        *,
        uid: int = 0,
        gid: int = 0,
        logger: LoggingBinary | None = None,
    ) -> None:
        super().__init__(paths, logger)
        self._child_fds: list[int] = []
        try:
            self.stdio = self._open(uid, gid)
        except BaseException:
            self.close()
            raise

    def _open(self, uid: int, gid: int) -> Stdio:
        if self._logger is not None:
            return Stdio(None, self._logger.stdout, self._logger.stderr)
        copies = self._copies
        stdin = stdout = stderr = None
        if self.paths.stdin:
            fifo = copies.keep(open_input(self.paths.stdin))
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            copies.keep(write_end)
            stdin = self._child(read_end, uid, gid)
            copies.copy_input(fifo, write_end)
        destinations: dict[str, int] = {}
        outputs: list[int | None] = []
        for path in (self.paths.stdout, self.paths.stderr):
            if not path:
                outputs.append(None)
                continue
            if path not in destinations:
                destinations[path] = copies.keep(open_output(path))
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            copies.keep(read_end)
            outputs.append(self._child(write_end, uid, gid))
            copies.copy_output(read_end, destinations[path])
        stdout, stderr = outputs
        return Stdio(stdin, stdout, stderr)

    def _child(self, fd: int, uid: int, gid: int) -> int:
        self._child_fds.append(fd)
        if uid or gid:
            os.fchown(fd, uid, gid)
        return fd

    def after_start(self) -> None:
        """Close the process's ends in the shim (the process has its own copies now)."""
        for fd in self._child_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._child_fds.clear()
        if self._logger is not None:
            self._logger.close_process_ends()

    def close(self) -> None:
        self.after_start()
        super().close()


class TerminalIO(_CopyingIO):
    """Copies between a pty master and the client's FIFOs."""

    def __init__(self, master: int, paths: StdioPaths, logger: LoggingBinary | None = None) -> None:
        super().__init__(paths, logger)
        self.master = master
        self._copies.keep(master)
        try:
            if logger is not None:  # the terminal's output to the program's stdout
                self._copies.copy_output(master, self._copies.keep(logger.take_stdout()))
                logger.close_process_ends()
            elif paths.stdout:
                destination = self._copies.keep(open_output(paths.stdout))
                self._copies.copy_output(master, destination)
            if paths.stdin:
                fifo = self._copies.keep(open_input(paths.stdin))
                self._copies.copy_input(fifo, os.dup(master))
        except BaseException:
            self.close()
            raise
