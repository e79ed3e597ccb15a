"""Running a process in the foreground: terminal in raw mode, signals and size forwarded.

As ``ctr run`` does: SIGINT, SIGTERM and the other catchable signals pyctr
receives go to the process; with a terminal, keys (Ctrl-C included) travel as
bytes to the container's pty and a resize of ours resizes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator

from pycontainerd import errdefs
from pycontainerd.client import Process
from pycontainerd.client.console import raw_mode, terminal_size

FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class _Background:
    """Fire-and-forget calls from signal handlers, kept referenced until done."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: object) -> None:
        async def quietly() -> None:
            with contextlib.suppress(errdefs.ContainerdError):
                await coroutine  # type: ignore[misc]

        task = asyncio.get_running_loop().create_task(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _forward_signal(background: _Background, process: Process, number: int) -> None:
    background.spawn(process.kill(number))


@contextlib.contextmanager
def forwarded_signals(process: Process, *, tty: bool) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    background = _Background()
    installed = []
    for number in FORWARDED_SIGNALS:
        loop.add_signal_handler(number, _forward_signal, background, process, number)
        installed.append(number)
    if tty:

        def resize() -> None:
            background.spawn(process.resize(*terminal_size(sys.stdout.fileno())))

        loop.add_signal_handler(signal.SIGWINCH, resize)
        installed.append(signal.SIGWINCH)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


async def _resize_to_ours(process: Process) -> None:
    with contextlib.suppress(errdefs.ContainerdError):
        await process.resize(*terminal_size(sys.stdout.fileno()))


async def run_in_foreground(process: Process, *, tty: bool, start: bool = True) -> int:
    """Start (unless already started) and wait for ``process``; returns its exit code."""
    with (
        raw_mode(sys.stdin.fileno()) if tty else contextlib.nullcontext(),
        forwarded_signals(process, tty=tty),
    ):
        if start:
            if tty:
                # A created task's console already exists: sizing it before start
                # means the process never sees a 0x0 terminal (a shell that asks
                # at once would otherwise race the resize).
                await _resize_to_ours(process)
            await process.start()
        if tty:
            await _resize_to_ours(process)
        status = await process.wait()
    return status.code
