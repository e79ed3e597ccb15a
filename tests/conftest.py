"""Fixtures shared by the end-to-end tests: a private daemon and the real ctr."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest

from tests.support.daemon import Ctr, DaemonProcess
from tests.support.grpc_client import RawClient

# What the tests drive. scripts/install.sh --test installs all of it; a missing
# one is a broken set-up, never a reason to skip.
REQUIRED_PROGRAMS = (
    "ctr",
    "ctr2",
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "crun",
    "docker-registry",
    "busybox",
    "dockerd",
    "unshare",
    "containerd-shim-pyrunc-v2",
    "pyctr",
    "nerdctl",
    "buildkitd",
    "buildctl",
    "nsenter",
    "crictl",
    "critest",
)


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [name for name in REQUIRED_PROGRAMS if shutil.which(name) is None]
    if missing:
        pytest.exit(
            f"missing programs: {', '.join(missing)}; run `make test` (it runs "
            "scripts/install.sh --test and puts .venv/bin on PATH)",
            returncode=3,
        )


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


@pytest.fixture
def raw(daemon: DaemonProcess) -> Iterator[RawClient]:
    """Raw gRPC stubs' channel on the daemon's socket, in namespace "default"."""
    with contextlib.closing(RawClient(daemon.address)) as client:
        yield client


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
