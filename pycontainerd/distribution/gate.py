"""A gate of limited places, handed out lowest priority first.

Downloads pass it for each chunk they write (the layer an unpack needs next goes
first) and unpacks for each layer they extract. It has a module of its own so that
the daemon's pull coordination can use it without importing the registry client.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator


class PriorityGate:
    """At most ``capacity`` holders at once; a freed place goes to the lowest ``priority``.

    A freed place is handed out on the next turn of the event loop, not at once,
    so a holder that releases and asks again straight away (the next chunk of
    the same blob) competes with the waiters instead of always going last.
    """

    def __init__(self, capacity: int) -> None:
        self._free = capacity
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()  # FIFO among equal priorities
        self._wake_pending = False

    @contextlib.asynccontextmanager
    async def hold(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrival), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # handed a place just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        self._free += 1
        if self._waiters and not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        while self._free > 0 and self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():  # cancelled waiters are skipped
                self._free -= 1
                granted.set_result(None)
