"""kill -9 of the daemon: what was acknowledged survives, nothing half-written shows."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e


def test_acknowledged_writes_survive_kill9(ctr, daemon, busybox_pushed):
    data = os.urandom(1 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ctr.ok("content", "ingest", "--expected-digest", digest, "r-kill", input=data)
    ctr.ok("content", "label", digest, "keep=yes", "containerd.io/gc.root=x")
    ctr.ok("content", "fetch", "--plain-http", busybox_pushed.ref)
    ctr.ok("images", "label", busybox_pushed.ref, "tier=gold")
    ctr.ok("namespaces", "create", "survivor", "k=v")
    ctr.ok("leases", "create", "--id", "l-kill")

    daemon.kill9()
    daemon.start()

    line = next(ln for ln in ctr.ok("content", "ls").splitlines() if ln.startswith(digest))
    assert "keep=yes" in line
    assert ctr.run("content", "get", digest).stdout == data
    images = ctr.ok("images", "ls")
    image_line = next(ln for ln in images.splitlines() if ln.startswith(busybox_pushed.ref))
    assert "tier=gold" in image_line
    assert "k=v" in ctr.ok("namespaces", "ls")
    assert "l-kill" in ctr.ok("leases", "ls")
    content = ctr.ok("content", "ls")
    for layer in busybox_pushed.layer_digests:
        assert layer in content


def test_kill9_mid_write_leaves_nothing_committed(ctr, daemon):
    data = os.urandom(8 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    writer = subprocess.Popen(
        [ctr.binary, "-a", str(daemon.address), "content", "ingest", "r-mid"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        writer.stdin.write(data[: 4 << 20])
        writer.stdin.flush()
        deadline = time.monotonic() + 10
        while "r-mid" not in ctr.ok("content", "active") and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.kill9()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    daemon.start()
    assert digest not in ctr.ok("content", "ls")
    blobs = daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    assert not (blobs / digest.split(":")[1]).exists()
    # The interrupted write is still resumable, and no stray blob appeared.
    assert not blobs.exists() or list(blobs.iterdir()) == []
