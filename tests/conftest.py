"""Fixtures shared by the end-to-end tests: a private daemon and the real ctr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.daemon import Ctr, DaemonProcess  # noqa: E402


@pytest.fixture
def daemon() -> Iterator[DaemonProcess]:
    proc = DaemonProcess()
    try:
        yield proc.start()
    finally:
        proc.cleanup()


@pytest.fixture
def ctr(daemon: DaemonProcess) -> Ctr:
    return Ctr(daemon.address)
