"""Fixtures shared by the unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

SCENARIO_TIMEOUT = 30.0


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run one async scenario in a fresh event loop, bounded in time."""

    def runner(scenario: Coroutine[Any, Any, Any]) -> Any:
        async def bounded() -> Any:
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                return await scenario

        return asyncio.run(bounded())

    return runner
