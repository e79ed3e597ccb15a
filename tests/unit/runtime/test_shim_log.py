"""A shim's log FIFO is drained into the daemon's log, line by line."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

from pycontainerd.runtime.shim_log import ShimLog


def test_lines_written_to_the_fifo_are_logged(run, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pycontainerd.shim")

    async def scenario() -> None:
        shim_log = ShimLog(tmp_path / "log", "t1")
        shim_log.open()
        assert stat.S_ISFIFO(os.lstat(tmp_path / "log").st_mode)
        writer = os.open(tmp_path / "log", os.O_WRONLY | os.O_NONBLOCK)  # a reader exists
        os.write(writer, b"first line\nsecond ")
        os.write(writer, b"line\npartial")
        os.close(writer)
        for _ in range(100):
            if "second line" in caplog.text:
                break
            await asyncio.sleep(0.01)
        shim_log.close()  # flushes the unterminated tail
        shim_log.close()

    run(scenario())
    messages = [r.getMessage() for r in caplog.records if r.name == "pycontainerd.shim"]
    assert messages == ["[t1] first line", "[t1] second line", "[t1] partial"]
