"""Logging binaries: a process whose stdout is a ``binary://`` URI logs through a program.

As containerd's shim does, the program named by the URI's path is started
with each query key and its first value as arguments, ``CONTAINER_ID`` and
``CONTAINER_NAMESPACE`` as its whole environment, the read ends of the
process's stdout and stderr pipes as descriptors 3 and 4 and a readiness pipe
as descriptor 5. The process starts once the program closed descriptor 5
(``binary``) or wrote a byte to it (``binary-v2``, where closing it without a
byte means the program failed). nerdctl's ``run -d`` logs this way: its own
binary writes the container's log files.

The shim keeps no write end once the process started, so the program reads
end of file when the container's last process closes its output and can
finish by itself; closing the process's stdio (delete) sends SIGTERM to a
program still running, as containerd's shim does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import urllib.parse

from pycontainerd import errdefs
from pycontainerd.fdwait import until_ready
from pycontainerd.oci.runtime import Stdio
from pycontainerd.shim_v2.reaper import Reaper

SCHEMES = ("binary", "binary-v2")


def is_binary_uri(target: str) -> bool:
    """True for a ``binary://`` or ``binary-v2://`` stdio destination."""
    scheme, sep, _ = target.partition("://")
    return bool(sep) and scheme in SCHEMES


def binary_command(uri: str) -> list[str]:
    """The program's argv: its path, then each query key followed by its first value."""
    parsed = urllib.parse.urlsplit(uri)
    path = urllib.parse.unquote(parsed.path)
    if not os.path.isabs(path):
        raise errdefs.InvalidArgument(
            f"logging binary URI {uri!r} must name an absolute path (binary:///path/to/program)"
        )
    argv = [path]
    for key, values in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items():
        argv.append(key)
        if values:
            argv.append(values[0])
    return argv


class LoggingBinary:
    """A running logging program and the pipe ends the process writes its output to."""

    def __init__(self, pid: int, exited: asyncio.Future[int], stdout: int, stderr: int) -> None:
        self.pid = pid
        self.exited = exited
        #: Write ends for the process (its stdout and stderr), until `close_process_ends`.
        self.stdout: int | None = stdout
        self.stderr: int | None = stderr

    @classmethod
    async def start(
        cls, uri: str, *, container_id: str, namespace: str, reaper: Reaper
    ) -> LoggingBinary:
        """Start the program of `uri` and wait until it says it is ready."""
        argv = binary_command(uri)
        ours: list[int] = []  # descriptors to close here whatever happens
        try:
            out_read, out_write = os.pipe2(os.O_CLOEXEC)
            ours.append(out_read)
            err_read, err_write = os.pipe2(os.O_CLOEXEC)
            ours.append(err_read)
            ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
            ours += [ready_read, ready_write]
            pid, exited = reaper.spawn(
                argv,
                Stdio(None, None, None),
                extra_fds=(out_read, err_read, ready_write),
                env={"CONTAINER_ID": container_id, "CONTAINER_NAMESPACE": namespace},
            )
            ours.remove(ready_write)
            os.close(ready_write)
            binary = cls(pid, exited, out_write, err_write)
            try:
                said_ready = await _read_ready(ready_read)
                if uri.startswith("binary-v2://") and not said_ready:
                    raise errdefs.FailedPrecondition(
                        f"logging binary {argv[0]} did not say it was ready (binary-v2 needs a "
                        "byte on descriptor 5); it may have failed or exited early"
                    )
            except BaseException:
                binary.close()
                raise
            return binary
        finally:
            for fd in ours:
                os.close(fd)

    def take_stdout(self) -> int:
        """Hand the stdout write end over to a caller that copies into it and closes it."""
        fd, self.stdout = self.stdout, None
        if fd is None:
            raise errdefs.FailedPrecondition("the logging binary's stdout was already handed over")
        return fd

    def close_process_ends(self) -> None:
        """Close the shim's copies of the process's write ends (once it has its own)."""
        for fd in (self.stdout, self.stderr):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdout = self.stderr = None

    async def wait(self, timeout: float) -> None:
        """Wait (up to `timeout`) for the program to finish with the output it read."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), timeout)

    def close(self) -> None:
        """Close the write ends and SIGTERM the program if it still runs."""
        self.close_process_ends()
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)


async def _read_ready(fd: int) -> bool:
    """Wait for a byte or end of file on the readiness pipe; True when a byte came."""
    os.set_blocking(fd, False)
    while True:
        try:
            return bool(os.read(fd, 1))
        except BlockingIOError:
            await until_ready(fd, writable=False)
