"""Fixtures shared by the end-to-end tests: a private daemon and the real ctr."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.daemon import Ctr, DaemonProcess


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


@pytest.fixture(scope="session")
def registry():
    """A real docker-registry on loopback for the whole session."""
    from tests.support.registry import TestRegistry

    with TestRegistry() as running:
        yield running


@pytest.fixture(scope="session")
def busybox_pushed(registry):
    """The busybox test image (OCI, gzip) in the session registry."""
    from tests.support.images import push_busybox

    return push_busybox(registry)
