"""The real ctr against pycontainerd: version, plugins, namespaces, content, leases."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time

import pytest

from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e


def _blob(size: int = 3 << 20) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def test_version_and_plugins(ctr):
    out = ctr.ok("version")
    assert "Server:" in out and "pycontainerd" in out
    plugins = ctr.ok("plugins", "ls")
    for type_, id_ in [
        ("io.containerd.content.v1", "content"),
        ("io.containerd.metadata.v1", "sqlite"),
        ("io.containerd.gc.v1", "scheduler"),
        ("io.containerd.grpc.v1", "content"),
        ("io.containerd.grpc.v1", "images"),
        ("io.containerd.grpc.v1", "leases"),
        ("io.containerd.grpc.v1", "namespaces"),
        ("io.containerd.grpc.v1", "events"),
        ("io.containerd.grpc.v1", "introspection"),
        ("io.containerd.grpc.v1", "version"),
    ]:
        assert any(
            line.split()[:2] == [type_, id_] and line.split()[-1] == "ok"
            for line in plugins.splitlines()
        ), f"{type_} {id_} missing or not ok in:\n{plugins}"
    filtered = ctr.ok("plugins", "ls", "type==io.containerd.grpc.v1,id==images")
    assert len(filtered.strip().splitlines()) == 2  # header and one plugin


def test_socket_is_not_world_accessible(daemon):
    mode = daemon.address.stat().st_mode & 0o777
    assert mode == 0o660


def test_namespaces_lifecycle(ctr):
    ctr.ok("namespaces", "create", "team-a", "owner=alice")
    ctr.ok("namespaces", "label", "team-a", "tier=gold")
    listing = ctr.ok("namespaces", "ls")
    line = next(ln for ln in listing.splitlines() if ln.startswith("team-a"))
    assert "owner=alice" in line and "tier=gold" in line
    ctr.ok("namespaces", "label", "team-a", "owner=")  # empty value removes the label
    line = next(ln for ln in ctr.ok("namespaces", "ls").splitlines() if ln.startswith("team-a"))
    assert "owner" not in line
    assert "already exists" in ctr.fails("namespaces", "create", "team-a")

    data, digest = _blob(1024)
    ctr.ok("content", "ingest", "blob1", input=data, namespace="team-a")
    err = ctr.fails("namespaces", "rm", "team-a")
    assert "must be empty" in err and "failed precondition" in err
    ctr.ok("content", "rm", digest, namespace="team-a")
    ctr.ok("namespaces", "rm", "team-a")
    assert "team-a" not in ctr.ok("namespaces", "ls")
    # ctr ignores NotFound on rm; the code itself is checked in test_bad_input.


def test_content_ingest_list_get_label_rm(ctr, daemon):
    data, digest = _blob()
    ctr.ok(
        "content",
        "ingest",
        "--expected-digest",
        digest,
        "--expected-size",
        str(len(data)),
        "ref-1",
        input=data,
    )
    listing = ctr.ok("content", "ls")
    assert digest in listing
    got = subprocess.run(
        [ctr.binary, "-a", str(daemon.address), "content", "get", digest],
        capture_output=True,
        check=True,
    ).stdout
    assert got == data
    ctr.ok("content", "label", digest, "purpose=test", "containerd.io/gc.root=1")
    line = next(ln for ln in ctr.ok("content", "ls").splitlines() if ln.startswith(digest))
    assert "purpose=test" in line
    blob_path = daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256" / digest[7:]
    assert blob_path.read_bytes() == data
    # Namespaces are isolated: another namespace does not see the blob.
    assert digest not in ctr.ok("content", "ls", namespace="other")
    ctr.ok("content", "rm", digest)
    assert digest not in ctr.ok("content", "ls")
    wait_for(lambda: not blob_path.exists(), "garbage collection of the removed blob")


def test_wrong_expected_digest_commits_nothing(ctr, daemon):
    data, _ = _blob(4096)
    wrong = "sha256:" + "0" * 64
    err = ctr.fails("content", "ingest", "--expected-digest", wrong, "ref-bad", input=data)
    assert "failed precondition" in err or "unexpected commit digest" in err
    assert ctr.ok("content", "ls").strip().splitlines()[1:] == []
    blobs = daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    assert not blobs.exists() or list(blobs.iterdir()) == []


def test_interrupted_ingest_resumes(ctr, daemon, tmp_path):
    data, digest = _blob(8 << 20)
    cmd = [ctr.binary, "-a", str(daemon.address), "content", "ingest", "ref-resume"]
    writer = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        writer.stdin.write(data[: 5 << 20])
        writer.stdin.flush()
        wait_for(lambda: _active_offset(ctr, "ref-resume") >= (1 << 20), "partial ingest")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    partial = _active_offset(ctr, "ref-resume")
    assert 0 < partial < len(data)
    # ctr resumes by seeking its input to the offset the daemon reports.
    source = tmp_path / "blob"
    source.write_bytes(data)
    ctr.ok(
        "content",
        "ingest",
        "--expected-digest",
        digest,
        "--expected-size",
        str(len(data)),
        "ref-resume",
        stdin=source,
    )
    assert digest in ctr.ok("content", "ls")
    assert "ref-resume" not in ctr.ok("content", "active")


def _active_offset(ctr, ref: str) -> int:
    for line in ctr.ok("content", "active").splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == ref:
            size = fields[1]
            return _parse_size(size)
    return 0


def _parse_size(text: str) -> int:
    units = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * units[unit])
    return int(float(text))


def test_leases_protect_content(ctr, daemon):
    lease_id = ctr.ok("leases", "create", "--id", "hold-1").strip()
    assert lease_id == "hold-1"
    assert "hold-1" in ctr.ok("leases", "ls")
    data, digest = _blob(2048)
    # Written under the lease: the lease holds the blob.
    ctr.ok("content", "ingest", "ref-l", input=data, namespace="default")
    from pycontainerd.api.services.leases.v1 import leases_pb2, leases_pb2_grpc
    from tests.support.grpc_client import RawClient

    raw = RawClient(daemon.address)
    try:
        stub = leases_pb2_grpc.LeasesStub(raw.channel)
        stub.AddResource(
            leases_pb2.AddResourceRequest(
                id="hold-1", resource=leases_pb2.Resource(id=digest, type="content")
            ),
            metadata=raw.metadata,
        )
        resources = stub.ListResources(
            leases_pb2.ListResourcesRequest(id="hold-1"), metadata=raw.metadata
        ).resources
        assert [(r.id, r.type) for r in resources] == [(digest, "content")]
    finally:
        raw.close()
    # Trigger a collection by deleting something else; the leased blob stays.
    other, other_digest = _blob(512)
    ctr.ok("content", "ingest", "ref-o", input=other)
    ctr.ok("content", "rm", other_digest)
    time.sleep(1.0)
    assert digest in ctr.ok("content", "ls")
    ctr.ok("leases", "rm", "--sync", "hold-1")
    assert "hold-1" not in ctr.ok("leases", "ls")
    wait_for(lambda: digest not in ctr.ok("content", "ls"), "collection after lease removal")


def _hold(daemon, lease: str, digest: str) -> None:
    """Put a blob in a lease (ctr has no command for it)."""
    from pycontainerd.api.services.leases.v1 import leases_pb2, leases_pb2_grpc
    from tests.support.grpc_client import RawClient

    raw = RawClient(daemon.address)
    try:
        leases_pb2_grpc.LeasesStub(raw.channel).AddResource(
            leases_pb2.AddResourceRequest(
                id=lease, resource=leases_pb2.Resource(id=digest, type="content")
            ),
            metadata=raw.metadata,
        )
    finally:
        raw.close()


def test_lease_expiry_is_honoured(ctr, daemon):
    ctr.ok("leases", "create", "--id", "short", "--expires", "3s")
    data, digest = _blob(4096)
    ctr.ok("content", "ingest", "ref-short", input=data)
    _hold(daemon, "short", digest)
    other, other_digest = _blob(100)
    ctr.ok("content", "ingest", "ref-other", input=other)
    ctr.ok("content", "rm", other_digest)  # a collection runs: the lease still holds
    wait_for(lambda: not _blob_path(daemon, other_digest).exists(), "the removed blob's collection")
    assert digest in ctr.ok("content", "ls")
    # At expiry the lease goes, and with it what only it held: no other trigger.
    wait_for(lambda: "short" not in ctr.ok("leases", "ls"), "expired lease removal", 15)
    wait_for(lambda: not _blob_path(daemon, digest).exists(), "collection at lease expiry")


def _blob_path(daemon, digest: str):
    return daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256" / digest[7:]


@pytest.fixture
def often_collecting_daemon():
    from tests.support.daemon import DaemonProcess

    proc = DaemonProcess(
        extra_config='[plugins."io.containerd.gc.v1.scheduler"]\n  interval = "1s"\n'
    )
    try:
        yield proc.start()
    finally:
        proc.cleanup()


def test_collection_runs_on_a_schedule(often_collecting_daemon):
    from tests.support.daemon import Ctr

    ctr = Ctr(often_collecting_daemon.address)
    data, digest = _blob(1000)
    ctr.ok("content", "ingest", "unreferenced", input=data)
    # Nothing refers to the blob and nothing is deleted: only the periodic pass removes it.
    wait_for(
        lambda: not _blob_path(often_collecting_daemon, digest).exists(), "a periodic pass", 10
    )


def test_slow_blob_read_does_not_hold_up_other_calls(ctr, daemon):
    """A Read whose blob file stalls (here a FIFO with no writer) blocks only itself:
    other calls that need the metadata database still answer."""
    data, digest = _blob(1 << 10)
    ctr.ok("content", "ingest", "--expected-digest", digest, "ref-slow", input=data)
    blob_path = daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256" / digest[7:]
    blob_path.unlink()
    os.mkfifo(blob_path)
    reader = subprocess.Popen(
        [ctr.binary, "-a", str(daemon.address), "-n", ctr.namespace, "content", "get", digest],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # let the Read reach the FIFO's open
        assert reader.poll() is None, "the read should be stalled on the FIFO"
        assert digest in ctr.ok("content", "ls", timeout=20)
        ctr.ok("images", "ls", timeout=20)
    finally:
        # Give the stalled open a writer, so the daemon's worker is released.
        fd = os.open(blob_path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        reader.kill()
        reader.wait()
