"""A process's stdio as the client sees it: FIFOs the client creates and the shim opens.

Like containerd's ``cio``: for each process the client makes a private
directory with a FIFO per stream, names them in the create/exec request, and
copies between them and wherever the caller wants the data. :class:`Stdio`
says where:

* ``Stdio.null()`` - no stdio at all;
* ``Stdio.inherit()`` - this process's own stdin/stdout/stderr;
* ``Stdio.capture(input=b"...")`` - output collected into bytes (``io.stdout``);
* ``Stdio.pipe()`` - asyncio streams (``io.stdin`` writer, ``io.stdout``/``io.stderr``);
* ``Stdio.terminal()`` - a pseudo-terminal in the container, joined to ours;
* ``Stdio.detached()`` - FIFOs kept for a later attach, nobody reading now;
* ``Stdio.log("file:///path")`` - output appended to a file by the shim.

An output FIFO read end reports end-of-file whenever no writer has it open, so
until the shim has opened its ends the client holds a writer of its own
(released by :meth:`ClientIO.connected`); the end of a stream is then the shim
closing it after the process exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from pycontainerd import errdefs
from pycontainerd.fdwait import until_ready
from pycontainerd.stdio_paths import StdioPaths

#: Directories this module creates start with this, so a delete knows what it may remove.
FIFO_DIR_PREFIX = "pycio-"
READ_SIZE = 1 << 16
#: How long a finished process's output may take to arrive before it is cut off.
DRAIN_TIMEOUT = 5.0
#: After the process exited, output that pauses this long is taken as complete.
FINISH_GRACE = 0.1


class StdioMode(enum.StrEnum):
    NULL = "null"
    INHERIT = "inherit"
    CAPTURE = "capture"
    PIPE = "pipe"
    TERMINAL = "terminal"
    DETACHED = "detached"
    LOG = "log"


@dataclass(frozen=True)
class Stdio:
    """Where a process's stdio goes; build it with the class methods."""

    mode: StdioMode = StdioMode.NULL
    stdin: bool = False
    input: bytes | None = None
    log_uri: str = ""
    fifo_dir: str | None = None
    tty: bool = False

    @classmethod
    def null(cls) -> Stdio:
        return cls(StdioMode.NULL)

    @classmethod
    def inherit(cls, *, stdin: bool = True, fifo_dir: str | None = None) -> Stdio:
        return cls(StdioMode.INHERIT, stdin=stdin, fifo_dir=fifo_dir)

    @classmethod
    def capture(cls, input: bytes | None = None, *, fifo_dir: str | None = None) -> Stdio:  # noqa: A002
        """Collect stdout and stderr into bytes; ``input`` (if any) is the process's stdin."""
        return cls(StdioMode.CAPTURE, stdin=input is not None, input=input, fifo_dir=fifo_dir)

    @classmethod
    def pipe(cls, *, stdin: bool = True, fifo_dir: str | None = None) -> Stdio:
        return cls(StdioMode.PIPE, stdin=stdin, fifo_dir=fifo_dir)

    @classmethod
    def terminal(cls, *, stdin: bool = True, fifo_dir: str | None = None) -> Stdio:
        """A pty in the container joined to this process's stdin/stdout (put it in raw mode)."""
        return cls(StdioMode.TERMINAL, stdin=stdin, fifo_dir=fifo_dir)

    @classmethod
    def detached(cls, *, terminal: bool = False, fifo_dir: str | None = None) -> Stdio:
        """Output FIFOs the shim keeps open for a later attach (``pyctr tasks attach``)."""
        return cls(StdioMode.DETACHED, tty=terminal, fifo_dir=fifo_dir)

    @classmethod
    def log(cls, uri: str) -> Stdio:
        """stdout and stderr appended by the shim to ``uri`` (``file:///abs/path``)."""
        if not uri.startswith("file:///"):
            raise errdefs.InvalidArgument(f"log URI {uri!r}: use file:///absolute/path")
        return cls(StdioMode.LOG, log_uri=uri)

    @property
    def is_terminal(self) -> bool:
        return self.mode is StdioMode.TERMINAL or self.tty


class ClientIO:
    """The client's side of one process's stdio; make it with :func:`create_io`."""

    def __init__(self, stdio: Stdio, paths: StdioPaths, directory: str | None) -> None:
        self.stdio = stdio
        self.paths = paths
        self.directory = directory
        self._fds: list[int] = []
        self._placeholders: list[int] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stdin_fd: int | None = None
        self._on_stdin_eof: Callable[[], Awaitable[None]] | None = None
        self._captured = {"stdout": bytearray(), "stderr": bytearray()}
        self._exited = asyncio.Event()
        #: Pipe mode: feed the process's stdin (``write``/``drain``/``close``).
        self.stdin: FifoWriter | None = None
        #: Pipe mode: the process's output.
        self.stdout_stream: asyncio.StreamReader | None = None
        self.stderr_stream: asyncio.StreamReader | None = None

    # -- what callers read --------------------------------------------------------------

    @property
    def stdout(self) -> bytes:
        """Capture mode: everything the process wrote to stdout so far."""
        return bytes(self._captured["stdout"])

    @property
    def stderr(self) -> bytes:
        return bytes(self._captured["stderr"])

    # -- life cycle -----------------------------------------------------------------------

    def open(self, *, own_fifos: bool) -> None:
        """Open our ends; ``own_fifos`` holds placeholder writers until :meth:`connected`."""
        if self.paths.stdin:
            self._stdin_fd = self._keep(_open_fifo(self.paths.stdin, os.O_RDWR))
        for name in ("stdout", "stderr"):
            path = getattr(self.paths, name)
            if not path or self.stdio.mode in (StdioMode.LOG, StdioMode.DETACHED):
                continue
            if path == self.paths.stdout and name == "stderr":
                continue
            fd = self._keep(_open_fifo(path, os.O_RDONLY))
            if own_fifos:
                self._placeholders.append(_open_fifo(path, os.O_WRONLY))
            self._start_output(name, fd)
        self.stdin = FifoWriter(self._stdin_fd) if self._stdin_fd is not None else None
        if self.stdio.mode is not StdioMode.PIPE:
            self.stdin = None

    def on_stdin_eof(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Called (once) after our stdin copy ended, to tell the shim (CloseIO)."""
        self._on_stdin_eof = callback

    def connected(self) -> None:
        """The shim has opened its ends: drop placeholders, start feeding stdin."""
        for fd in self._placeholders:
            os.close(fd)
        self._placeholders.clear()
        if self._stdin_fd is None:
            return
        if self.stdio.mode is StdioMode.CAPTURE:
            self._spawn(self._feed_bytes(self.stdio.input or b""))
        elif self.stdio.mode in (StdioMode.INHERIT, StdioMode.TERMINAL):
            self._spawn(self._feed_from(sys.stdin.fileno()))

    async def wait(self, timeout: float | None = DRAIN_TIMEOUT) -> None:
        """After the process exited: until its output is all copied (or ``timeout``)."""
        self._exited.set()
        outputs = [t for t in self._tasks if t.get_name().startswith("out-")]
        if outputs:
            await asyncio.wait(outputs, timeout=timeout)

    async def close_stdin(self) -> None:
        """End the process's stdin from our side."""
        fd, self._stdin_fd = self._stdin_fd, None
        if fd is not None and fd in self._fds:
            self._fds.remove(fd)
            os.close(fd)
        callback, self._on_stdin_eof = self._on_stdin_eof, None
        if callback is not None:
            with contextlib.suppress(errdefs.NotFound):
                await callback()

    def close(self) -> None:
        """Stop copying and close our ends (the FIFOs stay; see :meth:`remove`)."""
        for task in self._tasks:
            task.cancel()
        for fd in [*self._fds, *self._placeholders]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._placeholders.clear()
        self._stdin_fd = None

    def remove(self) -> None:
        """Close, and delete the FIFO directory when this module made it."""
        self.close()
        remove_fifo_dir(self.paths)

    # -- copying ------------------------------------------------------------------------

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def _spawn(self, coroutine: Awaitable[None], name: str = "in") -> None:
        self._tasks.append(asyncio.ensure_future(coroutine))
        self._tasks[-1].set_name(name)

    def _start_output(self, name: str, fd: int) -> None:
        mode = self.stdio.mode
        if mode is StdioMode.PIPE:
            reader = asyncio.StreamReader()
            setattr(self, f"{name}_stream", reader)
            self._spawn(self._copy_to_stream(fd, reader), f"out-{name}")
        elif mode is StdioMode.CAPTURE:
            self._spawn(self._copy_to_buffer(fd, self._captured[name]), f"out-{name}")
        else:
            target = sys.stdout if name == "stdout" else sys.stderr
            self._spawn(self._copy_to_fd(fd, target.fileno()), f"out-{name}")

    async def _copy_to_stream(self, fd: int, reader: asyncio.StreamReader) -> None:
        try:
            async for chunk in read_chunks(fd, self._exited):
                reader.feed_data(chunk)
        finally:
            reader.feed_eof()

    async def _copy_to_buffer(self, fd: int, buffer: bytearray) -> None:
        async for chunk in read_chunks(fd, self._exited):
            buffer.extend(chunk)

    async def _copy_to_fd(self, fd: int, target: int) -> None:
        async for chunk in read_chunks(fd, self._exited):
            await write_all(target, chunk)

    async def _feed_bytes(self, data: bytes) -> None:
        if self._stdin_fd is not None:
            await write_all(self._stdin_fd, data)
        await self.close_stdin()

    async def _feed_from(self, source: int) -> None:
        try:
            async for chunk in read_chunks(source):
                if self._stdin_fd is None:
                    return
                await write_all(self._stdin_fd, chunk)
        except OSError:
            pass  # our stdin went away: that is its end too
        await self.close_stdin()


class FifoWriter:
    """Pipe mode's stdin: write bytes to the process; end it with ``Process.close_stdin``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, data: bytes) -> None:
        await write_all(self._fd, data)


async def create_io(stdio: Stdio) -> ClientIO:
    """Make the FIFOs ``stdio`` needs and open our ends of them."""
    if stdio.mode is StdioMode.NULL:
        return ClientIO(stdio, StdioPaths(), None)
    if stdio.mode is StdioMode.LOG:
        return ClientIO(stdio, StdioPaths(stdout=stdio.log_uri, stderr=stdio.log_uri), None)
    if stdio.fifo_dir:
        os.makedirs(stdio.fifo_dir, mode=0o700, exist_ok=True)
    directory = tempfile.mkdtemp(prefix=FIFO_DIR_PREFIX, dir=stdio.fifo_dir)
    terminal = stdio.is_terminal
    names = ["stdout"] if terminal else ["stdout", "stderr"]
    if stdio.stdin:
        names.insert(0, "stdin")
    found = {}
    for name in names:
        path = os.path.join(directory, name)
        os.mkfifo(path, 0o600)
        found[name] = path
    paths = StdioPaths(terminal=terminal, **found)
    io = ClientIO(stdio, paths, directory)
    try:
        io.open(own_fifos=True)
    except BaseException:
        io.remove()
        raise
    return io


def attach_io(stdio: Stdio, paths: StdioPaths) -> ClientIO:
    """Join ``stdio`` to the FIFOs of a running process (the shim holds their other ends)."""
    for path in (paths.stdin, paths.stdout, paths.stderr):
        if path and not _is_fifo(path):
            raise errdefs.FailedPrecondition(
                f"cannot attach: {path} is not a FIFO (the process was not started with "
                "FIFOs, e.g. it logs to a file or has no stdio)"
            )
    io = ClientIO(stdio, paths, None)
    io.open(own_fifos=False)
    return io


def remove_fifo_dir(paths: StdioPaths) -> None:
    """Remove the directory holding ``paths`` when this module created it."""
    for path in (paths.stdin, paths.stdout, paths.stderr):
        if path and "://" not in path:
            directory = os.path.dirname(path)
            if os.path.basename(directory).startswith(FIFO_DIR_PREFIX):
                shutil.rmtree(directory, ignore_errors=True)
            return


# -- descriptor helpers ------------------------------------------------------------------


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _open_fifo(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise errdefs.NotFound(f"stdio FIFO {path} does not exist") from None


async def read_chunks(fd: int, finished: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """What ``fd`` yields until end of file, without blocking the event loop.

    Once ``finished`` is set (the process exited and the shim flushed its output),
    the stream also ends when nothing more arrives within a short grace period,
    for shims that keep their end open until the process is deleted.
    """
    blocking = os.get_blocking(fd)
    while True:
        if blocking:  # e.g. our own stdin: never let a read block the event loop
            await until_ready(fd, writable=False)
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            if finished is None:
                await until_ready(fd, writable=False)
                continue
            if finished.is_set():
                if not await until_ready(fd, writable=False, timeout=FINISH_GRACE):
                    return
                continue
            await _until_either(fd, finished)
            continue
        if not data:
            return
        yield data


async def _until_either(fd: int, event: asyncio.Event) -> None:
    readable = asyncio.ensure_future(until_ready(fd, writable=False))
    flagged = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([readable, flagged], return_when=asyncio.FIRST_COMPLETED)
    finally:
        readable.cancel()
        flagged.cancel()


async def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, waiting (without blocking the loop) when it is full."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except (BlockingIOError, InterruptedError):
            await until_ready(fd, writable=True)
            continue
        view = view[written:]
