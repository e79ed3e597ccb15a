"""Fixtures of the snapshotter tests: private temp roots, mounts always undone."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence

import pytest

from pycontainerd import mount
from pycontainerd.mount import Mount
from pycontainerd.snapshots import NativeSnapshotter, OverlaySnapshotter
from pycontainerd.snapshots.base import DirectorySnapshotter

SNAPSHOTTERS: dict[str, type[DirectorySnapshotter]] = {
    "overlayfs": OverlaySnapshotter,
    "native": NativeSnapshotter,
}


@pytest.fixture
def root_only() -> None:
    """Skip where mounting is impossible: mount(2) needs root."""
    if os.geteuid() != 0:
        pytest.skip("mount(2) needs root (CAP_SYS_ADMIN)")


@pytest.fixture
def workdir() -> Iterator[str]:
    """A temp dir that is unmounted and deleted after the test, pass or fail."""
    path = tempfile.mkdtemp(prefix="pycontainerd-snapshots-test-")
    try:
        yield path
    finally:
        with contextlib.suppress(Exception):
            mount.unmount_all(path, flags=mount.MNT_DETACH)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mounted(root_only: None, workdir: str) -> Iterator[Callable[[Sequence[Mount]], str]]:
    """Mount a list of mounts on a fresh directory; all are undone at teardown."""
    with contextlib.ExitStack() as stack:

        def do_mount(mounts: Sequence[Mount]) -> str:
            return stack.enter_context(mount.temp_mount(mounts, parent=workdir))

        yield do_mount


@pytest.fixture(params=sorted(SNAPSHOTTERS))
def kind_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def snapshotter_root(workdir: str, kind_name: str) -> str:
    return os.path.join(workdir, f"io.containerd.snapshotter.v1.{kind_name}")


@pytest.fixture
def open_snapshotter(
    root_only: None, snapshotter_root: str, kind_name: str
) -> Iterator[Callable[[], DirectorySnapshotter]]:
    """Open (or reopen, as after a restart) the snapshotter on the test's root."""
    opened: list[DirectorySnapshotter] = []

    def do_open() -> DirectorySnapshotter:
        snapshotter = SNAPSHOTTERS[kind_name](snapshotter_root)
        opened.append(snapshotter)
        return snapshotter

    try:
        yield do_open
    finally:
        for snapshotter in opened:
            snapshotter.close()


@pytest.fixture
def snapshotter(open_snapshotter: Callable[[], DirectorySnapshotter]) -> DirectorySnapshotter:
    return open_snapshotter()
