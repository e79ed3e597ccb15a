"""containerd's Go client library (v2.4.2) against pycontainerd, through the socket.

The Go side is tests/go/client: it creates a client, labels a new namespace
with the default snapshotter before anything else, pulls from the test
registry, runs a container in a user namespace, commits existing content twice,
expects containerd's wording for a missing runtime binary, and places a shim in
the cgroup of the runc options' ShimCgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.shim_v2.shim_cgroup import MOUNTINFO, cgroup_dirs
from tests.support.daemon import DaemonProcess
from tests.support.go_client import build_go_client, run_go_client

pytestmark = pytest.mark.e2e

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Where a test shim cgroup goes on a host with v1 hierarchies: a controller
#: without limits, so the shim does not leave the test run's memory or cpu cgroups.
V1_HIERARCHY = CGROUP_ROOT / "pids"
EMPTY_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def go_client() -> Path:
    return build_go_client()


def _run(go_client: Path, daemon: DaemonProcess, image: str, tests: str, **extra: str) -> str:
    result = run_go_client(
        go_client, tests, {"PCD_ADDRESS": str(daemon.address), "PCD_IMAGE": image, **extra}
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{output}\n--- daemon log ---\n{daemon.log()[-4000:]}"
    assert "--- FAIL" not in output and "no tests to run" not in output, output
    return output


@pytest.mark.parametrize(
    "tests",
    [
        "TestDefaultSnapshotterLabelOnANewNamespace",
        "TestPullAndRunInAUserNamespace",
        "TestCommitOfExistingContentTwice",
        "TestMissingRuntimeBinaryIsNamed",
    ],
)
def test_go_client(go_client: Path, daemon: DaemonProcess, busybox_pushed, tests: str) -> None:  # type: ignore[no-untyped-def]
    output = _run(go_client, daemon, busybox_pushed.ref, f"^{tests}$")
    assert f"--- PASS: {tests}" in output, output


@contextlib.contextmanager
def shim_cgroup() -> Iterator[tuple[str, list[Path]]]:
    """A new, empty cgroup (its path, its directories); removed afterwards."""
    name = f"/pcd-test-{uuid.uuid4().hex[:10]}"
    unified = not V1_HIERARCHY.is_dir() and (CGROUP_ROOT / "cgroup.procs").exists()
    directory = (CGROUP_ROOT if unified else V1_HIERARCHY) / name.lstrip("/")
    directory.mkdir()
    try:
        yield name, [directory]
    finally:
        _remove_cgroup(directory)


def _remove_cgroup(directory: Path) -> None:
    """Wait for the cgroup to empty (shims exit after their task), else kill what is left."""
    procs = directory / "cgroup.procs"
    deadline = time.monotonic() + EMPTY_TIMEOUT
    while procs.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in procs.read_text().split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + EMPTY_TIMEOUT
    while True:
        try:
            directory.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_go_client_shim_cgroup(go_client: Path, daemon: DaemonProcess, busybox_pushed) -> None:  # type: ignore[no-untyped-def]
    with shim_cgroup() as (name, directories):
        assert cgroup_dirs(name, MOUNTINFO.read_text()) == directories
        procs = ":".join(str(d / "cgroup.procs") for d in directories)
        output = _run(
            go_client, daemon, busybox_pushed.ref, "^TestShimCgroup$",
            PCD_SHIM_CGROUP=name, PCD_CGROUP_PROCS=procs,
        )  # fmt: skip
        assert "--- PASS: TestShimCgroup" in output, output
