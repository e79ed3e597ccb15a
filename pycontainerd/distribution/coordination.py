"""What pulls running side by side in one daemon share, so that they do each thing once.

Two Transfer pulls (or CRI PullImage calls) of the same image at once would
otherwise both download every layer and both unpack every chain. With
:class:`KeyedLocks` each piece of work has a key (``blob://<digest>`` for a
download, ``sn://<snapshotter>/<chain id>`` for an unpack, both per namespace):
the second pull waits on the first one's key, then finds the work done and
only takes it into its own lease. :class:`PullCoordination` also holds the
daemon-wide limit on layer extractions running at once
(``max_concurrent_unpacks``).

One coordination exists per metadata store (:func:`coordination_for`), so the
transfer service and the CRI plugin share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator

from pycontainerd.distribution.gate import PriorityGate

#: Layers extracted at once in the daemon. containerd 2 defaults to 1 (strictly in
#: order). Here 2, as measured on this project's 2-core machine (ctr 2 pulls through
#: Transfer, interleaved, medians of 3-4): a pull of 20,000 small files took 11.6 s
#: against 12.9 s with 1 (file creation waits on the disk with the GIL released, so a
#: second layer extracts meanwhile), and unpacking the same image from the content
#: store 3.5-11 s against 8.7-18 s; a 400 MB pull of large files, bound by its
#: download, was no slower (4.3 s against 5.2 s). 4 measured no better than 2 there.
DEFAULT_MAX_CONCURRENT_UNPACKS = 2


class KeyedLocks:
    """One holder at a time per key; a key's lock lives only while someone wants it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Keys held or waited on right now."""
        return len(self._locks)


class PullCoordination:
    """The keyed locks and the unpack limit of one daemon."""

    def __init__(self, max_concurrent_unpacks: int = DEFAULT_MAX_CONCURRENT_UNPACKS) -> None:
        self.locks = KeyedLocks()
        self._unpacks: PriorityGate | None = None
        self.max_concurrent_unpacks = max_concurrent_unpacks

    @property
    def max_concurrent_unpacks(self) -> int:
        return self._max

    @max_concurrent_unpacks.setter
    def max_concurrent_unpacks(self, value: int) -> None:
        self._max = max(1, value)
        self._unpacks = PriorityGate(self._max)

    def extraction(self, priority: int) -> contextlib.AbstractAsyncContextManager[None]:
        """A place among the extractions running at once; lower layers go first."""
        assert self._unpacks is not None
        return self._unpacks.hold(priority)


_COORDINATION: weakref.WeakKeyDictionary[object, PullCoordination] = weakref.WeakKeyDictionary()


def coordination_for(owner: object) -> PullCoordination:
    """The coordination of the daemon whose metadata store is ``owner``."""
    found = _COORDINATION.get(owner)
    if found is None:
        found = _COORDINATION[owner] = PullCoordination()
    return found
