"""Keeping the C heap of a long-lived process small (glibc's malloc; elsewhere a no-op).

Three habits of glibc's allocator make a daemon that moved a few large images
stay large long after, or move them slowly:

- one malloc arena per thread that ever allocated (up to 8 per core), each
  keeping its own free memory: :func:`tune_allocator` caps them at two;
- a *dynamic* mmap threshold, which rises to 32 MiB as large buffers are
  freed, and then pins freed memory between long-lived objects. It is fixed
  instead, at 2 MiB: the buffers a pull makes by the thousand (1 MiB reads,
  frames and decompressed chunks, and the HTTP client's copies of them) come
  from the heap and are reused there. Were they mmap'ed, each would fault
  its pages in afresh (a 400 MB pull faulted 2.3 GB and doubled its kernel
  time); larger, rare buffers are mmap'ed and given back the moment they
  are freed. The trim threshold is fixed too, at 8 MiB, so that the top of
  a heap is not given back and taken again at every large free;
- free memory inside the heap is returned only at its top: :class:`HeapTrimmer`
  calls ``malloc_trim`` when a large amount of it has piled up, so the daemon
  returns to its size a few seconds after the work is done.

Call :func:`tune_allocator` first thing, before threads are started; this module
is cheap to import.
"""

from __future__ import annotations

import ctypes
import os

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENAS = 2
MMAP_THRESHOLD = 2 * 1024 * 1024  # allocations this large or larger are mmap'ed
TRIM_THRESHOLD = 8 * 1024 * 1024  # free heap top this large is given back at once
TRIM_EVERY = 10.0  # seconds between looks at the heap
TRIM_WHEN_FREE = 8 * 1024 * 1024  # free bytes inside the heap worth a malloc_trim


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc() -> ctypes.CDLL | None:
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, ValueError, AttributeError):  # not glibc, or older than 2.33
        return None
    return libc


_LIBC = _glibc()


def tune_allocator() -> bool:
    """Cap the arenas and fix the mmap and trim thresholds; False where not glibc."""
    if _LIBC is None:
        return False
    ok = True
    for parameter, value in (
        (_M_ARENA_MAX, ARENAS),
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ):
        ok = bool(_LIBC.mallopt(parameter, value)) and ok
    return ok


def free_heap_bytes() -> int:
    """Bytes malloc holds free inside its heaps (0 where unknown)."""
    if _LIBC is None:
        return 0
    return int(_LIBC.mallinfo2().fordblks)


def trim() -> None:
    """Give every arena's free pages back to the kernel."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class HeapTrimmer:
    """Looks at the heap every few seconds and trims it when much of it is free.

    The trim runs in a thread: it walks the free lists under the arena's lock,
    which costs a few milliseconds on a large heap, not worth the event loop's time.
    """

    def __init__(self, every: float = TRIM_EVERY, when_free: int = TRIM_WHEN_FREE) -> None:
        self._every = every
        self._when_free = when_free

    async def run(self) -> None:
        import asyncio  # here: a shim's short-lived `start` imports this module, not asyncio

        if _LIBC is None:
            return
        while True:
            await asyncio.sleep(self._every)
            if free_heap_bytes() >= self._when_free:
                await asyncio.to_thread(trim)
