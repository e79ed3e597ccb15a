"""Running coroutines side by side, failing as the first of them fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence


async def run_together(jobs: Sequence[Awaitable[object]]) -> None:
    """Run ``jobs`` concurrently; the first to fail cancels the others and its error is raised.

    Unlike a TaskGroup, the error comes out as itself, not in an ExceptionGroup.
    """
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
