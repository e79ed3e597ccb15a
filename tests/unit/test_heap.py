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


def _in_a_tuned_interpreter(body: str) -> list[int]:
    code = "from pycontainerd import heap\nassert heap.tune_allocator()\n" + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [int(value) for value in out.stdout.split()]


def test_a_pulls_buffers_are_reused_in_the_heap_not_faulted_in_again():
    # 1 MiB reads, frames and decompressed chunks, made and freed by the
    # thousand in a pull: from mmap, each would fault in its whole size again
    # (768 pages a round here); from the heap, the last round's pages are reused.
    [faults] = _in_a_tuned_interpreter(
        """
        import resource
        def faults():
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        keep = bytearray(1000)
        def one_round():
            read = bytearray(1 << 20)
            copy = bytes(read)
            frame = bytearray(1 << 20)
            del read, copy, frame
        for _ in range(3):  # the heap grows to the working set once
            one_round()
        before = faults()
        for _ in range(200):
            one_round()
        print(faults() - before)
        """
    )
    assert faults < 200 * 768 // 20, faults


def test_buffers_above_the_threshold_go_back_when_freed():
    [free, rss_grew] = _in_a_tuned_interpreter(
        """
        def rss_anon_kib():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        before = rss_anon_kib()
        huge = bytearray(heap.MMAP_THRESHOLD * 4)
        del huge
        print(heap.free_heap_bytes(), rss_anon_kib() - before)
        """
    )
    assert free < 1 << 20 and rss_grew < 4096, (free, rss_grew)
