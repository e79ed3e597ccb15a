"""The shim's log follows the bundles it serves: a deleted bundle's FIFO hands over to another."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pycontainerd.shim_v2.shim_log import LOG_FIFO, BundleLogHandler, _open_fifo


def _bundle_with_reader(base: Path, name: str) -> tuple[Path, int]:
    """A bundle whose log FIFO is held open for reading, as the daemon does."""
    bundle = base / name
    bundle.mkdir()
    os.mkfifo(bundle / LOG_FIFO, 0o700)
    return bundle, os.open(bundle / LOG_FIFO, os.O_RDWR | os.O_NONBLOCK)


def _read(fd: int) -> str:
    try:
        return os.read(fd, 65536).decode()
    except BlockingIOError:
        return ""


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("shim", logging.INFO, __file__, 1, message, None, None)


def test_the_log_moves_to_a_live_bundle_when_its_reader_goes(tmp_path: Path) -> None:
    first, first_reader = _bundle_with_reader(tmp_path, "first")
    second, second_reader = _bundle_with_reader(tmp_path, "second")
    fd = _open_fifo(str(first))
    assert fd is not None
    live = [str(first), str(second)]
    handler = BundleLogHandler(fd, bundles=lambda: list(live))
    try:
        handler.emit(_record("to the first"))
        assert "msg=to the first runtime=pyrunc" in _read(first_reader)

        # The first container is deleted: the daemon stops reading, the bundle goes.
        os.close(first_reader)
        (first / LOG_FIFO).unlink()
        live.remove(str(first))
        handler.emit(_record("to the second"))
        assert "msg=to the second" in _read(second_reader)

        # Nobody reads any more: lines are dropped, nothing is raised or blocked.
        os.close(second_reader)
        handler.emit(_record("dropped"))
        assert handler.fd is None
    finally:
        handler.close()


def test_without_a_reader_the_fifo_is_not_opened(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    os.mkfifo(bundle / LOG_FIFO, 0o700)
    assert _open_fifo(str(bundle)) is None
    assert _open_fifo(str(tmp_path / "missing")) is None
