"""Waiting for a non-blocking file descriptor on the event loop."""

from __future__ import annotations

import asyncio


async def until_ready(fd: int, *, writable: bool, timeout: float | None = None) -> bool:
    """Wait until ``fd`` is readable (or writable); False when ``timeout`` passed first.

    A regular file or /dev/null cannot be watched, and never blocks: ready at once.
    """
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add, remove = (
        (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    )
    try:
        add(fd, wake)
    except (PermissionError, ValueError):
        return True
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        remove(fd)
    return True
