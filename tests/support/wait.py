"""Polling for a condition in end-to-end tests (no timing assertions, only deadlines)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], object], what: str = "condition", timeout: float = 10.0
) -> None:
    """Return once `predicate()` is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
