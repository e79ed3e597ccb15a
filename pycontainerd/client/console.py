"""The local terminal for a process with a pty: raw mode and its size."""

from __future__ import annotations

import contextlib
import os
import shutil
import termios
import tty
from collections.abc import Iterator


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[bool]:
    """Put the terminal ``fd`` in raw mode for the block (yields False if it is no terminal).

    In raw mode keys such as Ctrl-C reach the container's pty as bytes, where its
    own line discipline turns them into signals, as with ``ctr run -t``.
    """
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(fd: int) -> tuple[int, int]:
    """(columns, lines) of the terminal ``fd``; a default 80x24 when it is none."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        size = shutil.get_terminal_size()
    return size.columns, size.lines
