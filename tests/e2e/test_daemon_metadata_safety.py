"""A damaged or vanished meta.db never costs data: the daemon refuses to start.

An empty or missing database over existing blobs and snapshots would be made
anew and the first garbage collection would delete everything; a corrupt one
would leave a daemon answering UNIMPLEMENTED everywhere. Both stop start-up
with a message naming the file, and nothing on disk is touched.
"""

from __future__ import annotations

import os

import pytest

from tests.support.daemon import DaemonProcess

pytestmark = pytest.mark.e2e

META_DB = "io.containerd.metadata.v1.sqlite/meta.db"
BLOBS = "io.containerd.content.v1.content/blobs/sha256"


def _start_refused(daemon: DaemonProcess) -> str:
    with pytest.raises(RuntimeError, match="exited early") as refused:
        daemon.start()
    assert daemon.proc is not None and daemon.proc.wait(10) != 0
    return str(refused.value)


def _on_disk(daemon: DaemonProcess) -> tuple[list[str], list[str]]:
    blobs = sorted(os.listdir(daemon.root / BLOBS))
    snapshots = sorted(
        os.listdir(daemon.root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots")
    )
    return blobs, snapshots


@pytest.mark.parametrize("damage", ["emptied", "emptied-with-wal", "removed"])
def test_missing_or_empty_database_over_data_refuses_to_start(daemon, ctr, busybox_pushed, damage):
    ctr.ok("images", "pull", "--plain-http", busybox_pushed.ref)
    before = _on_disk(daemon)
    assert before[0] and before[1]
    daemon.stop()
    meta = daemon.root / META_DB
    wal = meta.with_name("meta.db-wal")
    if damage == "removed":
        meta.unlink()
        wal.unlink(missing_ok=True)
    else:
        meta.write_bytes(b"")
        if damage == "emptied":
            wal.unlink(missing_ok=True)
    message = _start_refused(daemon)
    assert str(meta) in message and "refusing to start" in message
    assert _on_disk(daemon) == before  # nothing deleted


@pytest.mark.parametrize("damage", ["cut-in-half", "garbage-header"])
def test_corrupt_database_makes_start_up_fail(daemon, ctr, busybox_pushed, damage):
    ctr.ok("images", "pull", "--plain-http", busybox_pushed.ref)
    daemon.stop()
    meta = daemon.root / META_DB
    meta.with_name("meta.db-wal").unlink(missing_ok=True)
    data = meta.read_bytes()
    if damage == "cut-in-half":
        meta.write_bytes(data[: len(data) // 2])
    else:
        meta.write_bytes(b"this is not SQLite" + data[18:])
    message = _start_refused(daemon)
    assert str(meta) in message and "damaged" in message
    assert "io.containerd.metadata.v1.sqlite" in message


def test_required_plugins_from_the_config_stop_start_up():
    """containerd's required_plugins: one that is not loaded stops start-up."""
    daemon = DaemonProcess()
    try:
        config = daemon.config_path.read_text()
        daemon.config_path.write_text(
            'required_plugins = ["io.containerd.snapshotter.v1.nosuch"]\n' + config
        )
        message = _start_refused(daemon)
        assert "io.containerd.snapshotter.v1.nosuch" in message
        assert not daemon.address.exists()
    finally:
        daemon.cleanup()
