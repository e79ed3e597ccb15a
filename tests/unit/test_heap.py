"""The allocator tuning of pycontainerd.heap, each in a fresh interpreter (it is process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not os.confstr("CS_GNU_LIBC_VERSION"), reason="glibc's malloc only")

_FRAGMENT = """
    from pycontainerd import heap

    def rss_anon_kib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    assert heap.tune_allocator()
    # 200 MB in 64 KiB chunks (below the mmap threshold: from the heap), every
    # 16th kept, so the heap cannot shrink from its top when the rest is freed.
    chunks = [bytearray(b"x" * 65536) for _ in range(3200)]
    kept = chunks[::16]
    del chunks
    before = rss_anon_kib()
    free = heap.free_heap_bytes()
    {action}
    after = rss_anon_kib()
    print(before, after, free, heap.free_heap_bytes())
"""


def _run(action: str) -> tuple[int, int, int, int]:
    code = textwrap.dedent(_FRAGMENT).replace("{action}", action)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    before, after, free, free_after = (int(v) for v in out.split())
    return before, after, free, free_after


def test_freed_memory_inside_the_heap_is_kept_until_trimmed():
    before, after, free, _ = _run("pass")
    assert free > 100_000_000  # malloc holds the freed chunks
    assert after > before - 10_000  # and the process keeps them resident


def test_trim_gives_free_heap_pages_back():
    before, after, free, _ = _run("heap.trim()")
    assert free > 100_000_000
    assert after < before - 100_000  # KiB: most of the freed 190 MB went back


def test_the_trimmer_trims_when_much_is_free():
    action = textwrap.dedent(
        """
        import asyncio
        async def main():
            task = asyncio.ensure_future(heap.HeapTrimmer(every=0.05, when_free=1 << 20).run())
            await asyncio.sleep(0.5)
            task.cancel()
        asyncio.run(main())
        """
    )
    before, after, _, _ = _run(action)
    assert after < before - 100_000


def test_large_buffers_stay_out_of_the_heap_after_a_larger_one_was_freed():
    # glibc raises its mmap threshold to the size of a freed mmap'ed buffer; then
    # later large buffers come from the heap, and small objects allocated between
    # them pin what they leave behind. With the threshold fixed they stay mmap'ed.
    code = textwrap.dedent(
        """
        from pycontainerd import heap
        assert heap.tune_allocator()
        first = bytearray(1 << 20)
        del first
        kept, buffers = [], []
        for _ in range(100):
            buffers.append(bytearray(512 * 1024))
            kept.append(bytearray(1000))
        del buffers
        print(heap.free_heap_bytes())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 8 * (1 << 20)  # untuned: about 50 MB
