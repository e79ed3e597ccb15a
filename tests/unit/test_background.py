"""Background tasks are kept until they end, and their failures are logged."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from pycontainerd.background import BackgroundTasks

log = logging.getLogger("test.background")


def test_failure_is_logged_and_task_released(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        tasks = BackgroundTasks(log)

        async def fail() -> None:
            raise ValueError("it broke")

        tasks.spawn(fail(), name="breaker")
        await tasks.wait()
        await asyncio.sleep(0)
        assert len(tasks) == 0

    with caplog.at_level(logging.ERROR, logger="test.background"):
        asyncio.run(main())
    [record] = [r for r in caplog.records if r.name == "test.background"]
    assert "breaker" in record.getMessage() and record.exc_info is not None


def test_a_task_nobody_holds_still_finishes() -> None:
    async def main() -> list[str]:
        done: list[str] = []
        tasks = BackgroundTasks(log)

        async def work() -> None:
            await asyncio.sleep(0.01)
            done.append("yes")

        tasks.spawn(work(), name="kept")
        gc.collect()
        await tasks.wait()
        return done

    assert asyncio.run(main()) == ["yes"]
