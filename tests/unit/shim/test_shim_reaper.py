"""The reaper with real child processes: exit statuses, waiters, unclaimed exits."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import Awaitable, Callable

import pytest

from pycontainerd.oci.runtime import Stdio, exit_code
from pycontainerd.shim_v2.reaper import Reaper, exit_status

SH = shutil.which("sh") or "/bin/sh"


def run_with_reaper(body: Callable[[Reaper], Awaitable[None]]) -> None:
    async def main() -> None:
        reaper = Reaper()
        reaper.install()
        try:
            await asyncio.wait_for(body(reaper), 20)
        finally:
            reaper.uninstall()

    asyncio.run(main())


@pytest.mark.parametrize(
    "script, expected",
    [("exit 0", 0), ("exit 7", 7), ("kill -9 $$", 137), ("kill -TERM $$", 143)],
)
def test_exit_status_of_real_children(script: str, expected: int) -> None:
    async def body(reaper: Reaper) -> None:
        assert await reaper.run([SH, "-c", script], Stdio()) == expected

    run_with_reaper(body)


def test_exit_status_mapping() -> None:
    assert exit_status(3 << 8) == 3  # exited with 3
    assert exit_status(signal.SIGKILL) == 137  # killed by signal 9
    assert exit_code(-15) == 143 and exit_code(2) == 2


def test_unwaited_children_go_to_the_callback_or_are_kept() -> None:
    seen: list[tuple[int, int]] = []
    wanted: set[int] = set()

    def on_exit(pid: int, status: int) -> bool:
        seen.append((pid, status))
        return pid in wanted

    async def body(reaper: Reaper) -> None:
        reaper.on_exit = on_exit
        # A grandchild orphaned to nobody in particular would be reaped by init; a direct
        # child started outside `spawn` is what the shim sees for container processes.
        claimed = os.posix_spawn(SH, [SH, "-c", "exit 4"], os.environ)
        kept = os.posix_spawn(SH, [SH, "-c", "exit 5"], os.environ)
        wanted.add(claimed)
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        assert sorted(seen) == sorted([(claimed, 4), (kept, 5)])
        assert reaper.claim(claimed) is None  # the callback took it
        assert reaper.claim(kept) == 5  # kept for a late claimer ...
        assert reaper.claim(kept) is None  # ... once

    run_with_reaper(body)


def test_runtime_exit_is_not_reported_as_another_process() -> None:
    """A spawned command's exit resolves its waiter and never reaches on_exit."""
    reported: list[int] = []

    async def body(reaper: Reaper) -> None:
        reaper.on_exit = lambda pid, status: reported.append(pid) is None
        results = await asyncio.gather(
            *(reaper.run([SH, "-c", f"exit {n}"], Stdio()) for n in range(5))
        )
        assert results == [0, 1, 2, 3, 4]

    run_with_reaper(body)
    assert reported == []


def test_spawn_passes_stdio(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"

    async def body(reaper: Reaper) -> None:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            assert await reaper.run([SH, "-c", "echo to-stdout; echo to-stderr >&2"],
                                    Stdio(stdout=fd, stderr=fd)) == 0  # fmt: skip
        finally:
            os.close(fd)

    run_with_reaper(body)
    assert out.read_text() == "to-stdout\nto-stderr\n"
