"""When garbage collection runs: at start-up, soon after deletions, and at lease expiry.

Content nobody refers to stays until something triggers a collection: a
deletion, an expiring lease, or the periodic pass (`interval`, 0 turns it off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from pycontainerd.metadata.db import Database
from pycontainerd.metadata.gc import Collector, Sweep

log = logging.getLogger(__name__)

# Removes what a sweep left unreferenced on disk (blobs, snapshot directories).
BackendSweeper = Callable[[Collector, Sweep], None]


class GCScheduler:
    def __init__(
        self,
        db: Database,
        collector: Collector,
        *,
        schedule_delay: float = 0.0,
        interval: float = 0.0,
        startup_delay: float = 0.0,
    ) -> None:
        self.db = db
        self.collector = collector
        self.sweepers: list[BackendSweeper] = []
        self.schedule_delay = schedule_delay
        self.interval = interval
        self.startup_delay = startup_delay
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
            sweep = await self.db.run(self.collector.collect)
            for sweeper in self.sweepers:
                await asyncio.get_running_loop().run_in_executor(
                    None, sweeper, self.collector, sweep
                )
            self.last = sweep
            if sweep.content or sweep.snapshots or sweep.leases:
                log.info(
                    "garbage collected %d content, %d snapshots, %d leases in %.3fs",
                    len(sweep.content),
                    len(sweep.snapshots),
                    len(sweep.leases),
                    sweep.duration,
                )
            return sweep

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
                # A request made while this pass runs sets the flag again,
                # and the loop comes straight back for another pass.
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
