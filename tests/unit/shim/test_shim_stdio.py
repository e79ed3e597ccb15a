"""Copying between client FIFOs and a real process's pipes."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.shim_v2.reaper import Reaper
from pycontainerd.shim_v2.stdio import PipeIO, open_output
from pycontainerd.stdio_paths import StdioPaths

SH = shutil.which("sh") or "/bin/sh"


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


async def _read_until_eof(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_stdin_and_stdout_fifos_reach_the_process(tmp_path: Path) -> None:
    stdin, stdout = _fifo(tmp_path / "in"), _fifo(tmp_path / "out")

    async def main() -> None:
        reaper = Reaper()
        reaper.install()
        # The client side, opened the way ctr does: reader first, non-blocking.
        client_out = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)
        io = PipeIO(StdioPaths(stdin=stdin, stdout=stdout))
        client_in = os.open(stdin, os.O_WRONLY)
        try:
            _pid, exited = reaper.spawn([SH, "-c", "tr a-z A-Z"], io.stdio)
            io.after_start()
            os.write(client_in, b"hello fifo\n")
            os.close(client_in)  # EOF on the FIFO ends the process's stdin
            assert await asyncio.wait_for(exited, 10) == 0
            await io.drain()
            io.close()  # closes our (only) writer: the client sees EOF
            assert await asyncio.wait_for(_read_until_eof(client_out), 10) == b"HELLO FIFO\n"
        finally:
            io.close()
            os.close(client_out)
            reaper.uninstall()

    asyncio.run(main())


def test_close_stdin_ends_input_while_the_client_keeps_the_fifo(tmp_path: Path) -> None:
    stdin = _fifo(tmp_path / "in")
    out_file = tmp_path / "out.log"

    async def main() -> None:
        reaper = Reaper()
        reaper.install()
        io = PipeIO(
            StdioPaths(stdin=stdin, stdout=f"file://{out_file}", stderr=f"file://{out_file}")
        )
        client_in = os.open(stdin, os.O_WRONLY)
        try:
            _pid, exited = reaper.spawn([SH, "-c", "cat; echo done >&2"], io.stdio)
            io.after_start()
            os.write(client_in, b"line\n")
            await asyncio.sleep(0.1)
            io.close_stdin()  # what CloseIO does
            assert await asyncio.wait_for(exited, 10) == 0
            await io.drain()
        finally:
            os.close(client_in)
            io.close()
            reaper.uninstall()

    asyncio.run(main())
    assert out_file.read_text() == "line\ndone\n"


def test_output_survives_a_client_that_is_not_reading(tmp_path: Path) -> None:
    """Output FIFOs are opened read-write: no EPIPE, no blocking open without a reader."""
    fd = open_output(_fifo(tmp_path / "out"))
    try:
        assert os.write(fd, b"nobody reads this yet") == 21
    finally:
        os.close(fd)


def test_missing_fifo_and_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(errdefs.NotFound, match="does not exist"):
        PipeIO(StdioPaths(stdout=str(tmp_path / "missing")))
    with pytest.raises(errdefs.NotImplemented_, match="binary"):
        open_output("binary:///usr/bin/logger")
