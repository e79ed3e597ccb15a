"""A full disk under the daemon's root: clear errors, nothing half-done kept, no wedge.

Each daemon here has a small tmpfs as its root, mounted by the test. Pulls and
writes that fill it must fail with RESOURCE_EXHAUSTED naming that file system;
Abort, snapshot Remove and garbage collection must still free the space (the
metadata databases keep a reserve to commit deletions), and the next pull that
fits must succeed without a restart.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pycontainerd.api.services.content.v1 import content_pb2, content_pb2_grpc
from pycontainerd.api.services.leases.v1 import leases_pb2, leases_pb2_grpc
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from tests.support import layers as L
from tests.support.daemon import Ctr, DaemonProcess, unmount_below
from tests.support.images import PushedImage, build_image, large_image, push_image
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

MiB = 1 << 20
ROOT_SIZE = 64 * MiB
#: Free space may differ this much from the start once everything is cleaned up
#: (database pages, the WAL, directories).
SLACK = 2 * MiB
NAMESPACE = "default"
SNAPSHOTTER = "overlayfs"


@contextlib.contextmanager
def daemon_on_tmpfs(size: int = ROOT_SIZE) -> Iterator[DaemonProcess]:
    """A daemon whose root is a fresh tmpfs of ``size`` bytes; unmounted whatever happens."""
    base = Path(tempfile.mkdtemp(prefix="pcd-"))
    root = base / "root"
    root.mkdir()
    daemon = DaemonProcess(base=base)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", str(root)],
            check=True,
            capture_output=True,
        )
        yield daemon.start()
    finally:
        daemon.cleanup()  # stops it, unmounts everything below base, removes base
        unmount_below(base)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill_up(path: Path) -> None:
    """Append to ``path`` until its file system has not one block left."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        for chunk in (MiB, 64 << 10, 4 << 10, 512, 1):
            block = bytes(chunk)
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    assert free_bytes(path.parent) == 0


def active_writes(ctr: Ctr) -> list[str]:
    return ctr.ok("content", "active").splitlines()[1:]


def snapshot_keys(ctr: Ctr) -> list[str]:
    lines = ctr.ok("snapshots", "--snapshotter", SNAPSHOTTER, "ls").splitlines()[1:]
    return [line.split()[0] for line in lines if line.strip()]


def assert_full_disk_error(stderr: str, daemon: DaemonProcess) -> None:
    assert "resource exhausted" in stderr, stderr
    assert f"the file system mounted at {daemon.root} is full" in stderr, stderr


def assert_recovers(daemon: DaemonProcess, ctr: Ctr, free_at_start: int, fits: PushedImage) -> None:
    """Everything half-done goes away by itself, the space comes back, a pull that fits works."""
    wait_for(lambda: not active_writes(ctr), "the failed pull's writes to be removed", 30)
    wait_for(
        lambda: not any(key.startswith("extract-") for key in snapshot_keys(ctr)),
        "no extract- snapshot",
        30,
    )
    wait_for(
        lambda: free_bytes(daemon.root) >= free_at_start - SLACK,
        f"the space to come back (free now {free_bytes(daemon.root)}, at start {free_at_start})",
        30,
    )
    ctr.ok("images", "pull", "--plain-http", fits.ref, timeout=120)
    assert fits.ref in ctr.ok("images", "ls", "-q").split()
    assert ctr.ok("version")


@pytest.fixture(scope="module")
def too_big(registry, tmp_path_factory) -> PushedImage:
    """Incompressible layers, larger together than the daemon's root."""
    work = tmp_path_factory.mktemp("too-big")
    image = large_image(work, total_size=ROOT_SIZE + 32 * MiB, file_count=6, layer_count=3)
    return push_image(registry, image, "disk-full/too-big")


@pytest.fixture(scope="module")
def bomb(registry) -> PushedImage:
    """A layer of a few hundred KiB that unpacks to twice the daemon's root (zeros)."""
    entries = [L.directory("data"), L.file("data/zeros", bytes(2 * ROOT_SIZE))]
    return push_image(registry, build_image([entries]), "disk-full/bomb")


def test_a_pull_that_fills_the_disk_fails_cleanly_and_the_next_pull_succeeds(
    registry, busybox_pushed: PushedImage, too_big: PushedImage
) -> None:
    with daemon_on_tmpfs() as daemon:
        ctr = Ctr(daemon.address)
        free_at_start = free_bytes(daemon.root)
        failed = ctr.run("images", "pull", "--plain-http", too_big.ref, timeout=300)
        assert failed.returncode != 0
        assert_full_disk_error(failed.stderr.decode(), daemon)
        assert too_big.ref not in ctr.ok("images", "ls", "-q").split()
        assert_recovers(daemon, ctr, free_at_start, busybox_pushed)


def test_an_unpack_that_fills_the_disk_leaves_no_extract_snapshot(
    registry, busybox_pushed: PushedImage, bomb: PushedImage
) -> None:
    with daemon_on_tmpfs() as daemon:
        ctr = Ctr(daemon.address)
        free_at_start = free_bytes(daemon.root)
        failed = ctr.run("images", "pull", "--plain-http", bomb.ref, timeout=300)
        assert failed.returncode != 0
        assert_full_disk_error(failed.stderr.decode(), daemon)
        # The image's (small) content may stay; what the unpack wrote may not.
        ctr.run("images", "rm", bomb.ref)
        assert_recovers(daemon, ctr, free_at_start, busybox_pushed)


def _write_until_full(channel: grpc.Channel, lease: str, ref: str) -> grpc.RpcError:
    stub = content_pb2_grpc.ContentStub(channel)
    chunk = os.urandom(MiB)

    def requests() -> Iterator[content_pb2.WriteContentRequest]:
        for index in range(2 * ROOT_SIZE // MiB):
            yield content_pb2.WriteContentRequest(
                action=content_pb2.WRITE, ref=ref, offset=index * MiB, data=chunk
            )

    metadata = (("containerd-namespace", NAMESPACE), ("containerd-lease", lease))
    with pytest.raises(grpc.RpcError) as raised:
        for _ in stub.Write(requests(), metadata=metadata, timeout=120):
            pass
    return raised.value


def test_deletions_free_the_space_when_the_disk_is_completely_full(
    registry, busybox_pushed: PushedImage
) -> None:
    with daemon_on_tmpfs() as daemon, grpc.insecure_channel(f"unix://{daemon.address}") as channel:
        ctr = Ctr(daemon.address)
        metadata = (("containerd-namespace", NAMESPACE),)
        free_at_start = free_bytes(daemon.root)
        leases = leases_pb2_grpc.LeasesStub(channel)
        snapshots = snapshots_pb2_grpc.SnapshotsStub(channel)
        content = content_pb2_grpc.ContentStub(channel)
        leases.Create(leases_pb2.CreateRequest(id="filling"), metadata=metadata)
        snapshots.Prepare(
            snapshots_pb2.PrepareSnapshotRequest(snapshotter=SNAPSHOTTER, key="kept-until-rm"),
            metadata=(*metadata, ("containerd-lease", "filling")),
        )

        filler = daemon.root / "filler"
        error = _write_until_full(channel, "filling", "fills-the-disk")
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        assert f"the file system mounted at {daemon.root} is full" in (error.details() or "")

        # Not a block left, not even for the databases' journals; then a crash.
        fill_up(filler)
        daemon.kill9()
        daemon.start()
        refused = ctr.run("images", "pull", "--plain-http", busybox_pushed.ref)
        assert refused.returncode != 0, daemon.log()
        assert "resource exhausted" in refused.stderr.decode(), refused.stderr.decode()

        written = os.stat(daemon.root / "filler").st_size  # for the message only
        ctr.ok("snapshots", "--snapshotter", SNAPSHOTTER, "rm", "kept-until-rm")
        content.Abort(content_pb2.AbortRequest(ref="fills-the-disk"), metadata=metadata)
        leases.Delete(leases_pb2.DeleteRequest(id="filling", sync=True), metadata=metadata)
        wait_for(lambda: "kept-until-rm" not in snapshot_keys(ctr), "the snapshot to go", 30)
        assert not active_writes(ctr)
        # Everything the daemon wrote is gone: only the filler holds the disk now.
        wait_for(
            lambda: free_bytes(daemon.root) + os.stat(filler).st_size >= free_at_start - SLACK,
            f"the daemon's space to come back (filler {written} bytes)",
            30,
        )
        filler.unlink()
        assert_recovers(daemon, ctr, free_at_start, busybox_pushed)
