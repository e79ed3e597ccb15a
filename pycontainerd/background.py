"""Fire-and-forget work that is kept, and whose failures are logged.

asyncio holds only weak references to tasks, so a task nobody keeps can be
collected mid-flight; and an exception in a task nobody awaits is reported
only when the task is garbage collected, if ever. Work started with
:meth:`BackgroundTasks.spawn` is kept until it ends, and a failure is logged
at once with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any


class BackgroundTasks:
    """The tasks one component started and does not await itself."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._log.error("background task %s failed", task.get_name(), exc_info=exc)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self) -> None:
        """Wait for every task still running (failures are already logged)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
