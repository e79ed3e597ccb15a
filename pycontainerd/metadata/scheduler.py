"""When garbage collection runs: at start-up, soon after deletions, and at lease expiry.

Content nobody refers to stays until something triggers a collection: a
deletion, an expiring lease, or the periodic pass (`interval`, 0 turns it off).
As containerd's scheduler, collections after deletions are spaced so that they
take at most `pause_threshold` of the time (default 2%): a burst of deletions
is collected in one pass, not in one each. Callers that must see the result
(``--sync``) call `collect` and are never kept waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from pycontainerd.metadata.db import Database
from pycontainerd.metadata.gc import BackendSweeper, Collector, Sweep

log = logging.getLogger(__name__)

# Removes what a sweep left unreferenced on disk (blobs, snapshot directories).


class GCScheduler:
    def __init__(
        self,
        db: Database,
        collector: Collector,
        *,
        schedule_delay: float = 0.0,
        interval: float = 0.0,
        startup_delay: float = 0.0,
        pause_threshold: float = 0.02,
    ) -> None:
        self.db = db
        self.collector = collector
        self.sweepers: list[BackendSweeper] = []
        self.schedule_delay = schedule_delay
        self.interval = interval
        self.startup_delay = startup_delay
        self.pause_threshold = pause_threshold
        self._gc_seconds = 0.0
        self._collections = 0
        self._last_end: float | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last: Sweep | None = None
        self._collect_requested = True

    def add_sweeper(self, sweeper: BackendSweeper) -> None:
        self.sweepers.append(sweeper)

    async def collect(self) -> Sweep:
        """Run one full collection now (metadata, then what is on disk)."""
        async with self._lock:
            started = time.monotonic()
            sweep = await self.db.run(self.collector.collect)
            for sweeper in self.sweepers:
                await asyncio.get_running_loop().run_in_executor(
                    None, sweeper, self.collector, sweep
                )
            self._last_end = time.monotonic()
            self._gc_seconds += self._last_end - started
            self._collections += 1
            self.last = sweep
            if sweep.content or sweep.snapshots or sweep.leases or sweep.ingests:
                log.info(
                    "garbage collected %d content, %d snapshots, %d leases, %d writes in %.3fs",
                    len(sweep.content),
                    len(sweep.snapshots),
                    len(sweep.leases),
                    len(sweep.ingests),
                    sweep.duration,
                )
            return sweep

    def pause(self) -> float:
        """Seconds to wait before a deletion's pass, to stay within `pause_threshold`.

        The average pass, divided by the threshold, is the period of passes
        (containerd's rule): the pass itself plus the pause after it.
        """
        if not self.pause_threshold or self._last_end is None or not self._collections:
            return 0.0
        average = self._gc_seconds / self._collections
        period = average / self.pause_threshold
        return max(0.0, self._last_end + period - average - time.monotonic())

    def schedule(self) -> None:
        """Ask for a collection soon (after a deletion)."""
        self._collect_requested = True
        self._wake.set()

    def retime(self) -> None:
        """Recompute when to wake (a lease with an expiry was created)."""
        self._wake.set()

    async def start(self) -> None:
        if self.startup_delay == 0:
            # Collect before the daemon serves, so no client write races it.
            self._collect_requested = False
            await self.collect()
        self._task = asyncio.create_task(self._loop(), name="gc-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _next_timeout(self) -> float | None:
        timeout = self.interval or None
        expiry = await self.db.run(self.collector.next_lease_expiry)
        if expiry is not None:
            until = (expiry - datetime.now(UTC)).total_seconds()
            timeout = max(0.0, min(timeout or until + 0.01, until + 0.01))
        return timeout

    async def _loop(self) -> None:
        await asyncio.sleep(self.startup_delay)
        while True:
            self._wake.clear()
            if self._collect_requested:
                # Requests made while pausing or collecting are served by the
                # next pass: the flag is set again, the loop comes straight back.
                await asyncio.sleep(self.pause())
                self._collect_requested = False
                try:
                    await self.collect()
                except Exception:  # a failed pass must not stop later ones
                    log.exception("garbage collection failed")
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), await self._next_timeout())
            except TimeoutError:
                self._collect_requested = True
            if self.schedule_delay:
                await asyncio.sleep(self.schedule_delay)
