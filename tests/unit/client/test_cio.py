"""The client's FIFOs, driven by a stand-in for the shim's side."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.client.cio import (
    Stdio,
    StdioMode,
    StdioPaths,
    attach_io,
    create_io,
    remove_fifo_dir,
)


def _shim_opens(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


def test_capture_collects_output_and_feeds_input(tmp_path: Path) -> None:
    async def scenario() -> None:
        io = await create_io(Stdio.capture(b"input", fifo_dir=str(tmp_path)))
        closed: list[bool] = []

        async def close_io() -> None:
            closed.append(True)

        io.on_stdin_eof(close_io)
        stdin = _shim_opens(io.paths.stdin, os.O_RDONLY)
        out = _shim_opens(io.paths.stdout, os.O_RDWR)
        err = _shim_opens(io.paths.stderr, os.O_RDWR)
        io.connected()
        os.write(out, b"hello ")
        os.write(err, b"oops")
        await asyncio.sleep(0.05)
        os.write(out, b"world")
        assert os.read(stdin, 100) == b"input"
        # The shim keeps its ends open: the exit (wait) ends the streams.
        await asyncio.wait_for(io.wait(), 5)
        assert (io.stdout, io.stderr) == (b"hello world", b"oops")
        assert closed == [True]
        for fd in (stdin, out, err):
            os.close(fd)
        directory = io.directory
        io.remove()
        assert directory is not None and not os.path.exists(directory)

    asyncio.run(scenario())


def test_pipe_mode_streams_until_the_shim_closes(tmp_path: Path) -> None:
    async def scenario() -> None:
        io = await create_io(Stdio.pipe(stdin=False, fifo_dir=str(tmp_path)))
        assert io.paths.stdin == "" and io.stdin is None
        out = _shim_opens(io.paths.stdout, os.O_WRONLY)
        io.connected()
        os.write(out, b"line\n")
        assert io.stdout_stream is not None
        assert await asyncio.wait_for(io.stdout_stream.readline(), 5) == b"line\n"
        os.close(out)
        assert await asyncio.wait_for(io.stdout_stream.read(), 5) == b""
        io.remove()

    asyncio.run(scenario())


def test_terminal_has_no_stderr_and_null_has_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        io = await create_io(Stdio.terminal(fifo_dir=str(tmp_path)))
        assert io.paths.terminal and io.paths.stdin and io.paths.stdout and not io.paths.stderr
        io.remove()
        null = await create_io(Stdio.null())
        assert null.paths.stdout == "" and null.directory is None

    asyncio.run(scenario())


def test_detached_fifos_stay_for_attach(tmp_path: Path) -> None:
    async def scenario() -> None:
        io = await create_io(Stdio.detached(fifo_dir=str(tmp_path)))
        assert io.stdio.mode is StdioMode.DETACHED
        out = _shim_opens(io.paths.stdout, os.O_RDWR)
        io.close()
        attached = attach_io(Stdio.capture(), io.paths)
        os.write(out, b"later")
        await asyncio.wait_for(attached.wait(), 5)
        assert attached.stdout == b"later"
        os.close(out)
        attached.close()
        remove_fifo_dir(io.paths)
        assert not os.path.exists(io.paths.stdout)

    asyncio.run(scenario())


def test_attach_refuses_what_is_not_a_fifo(tmp_path: Path) -> None:
    plain = tmp_path / "file"
    plain.write_text("")
    with pytest.raises(errdefs.FailedPrecondition, match="not a FIFO"):
        attach_io(Stdio.inherit(), StdioPaths(stdout=str(plain)))
    with pytest.raises(errdefs.InvalidArgument):
        Stdio.log("relative/path")
