"""The real ctr against pycontainerd: snapshots on overlayfs and native, crashes, GC, leases."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pycontainerd import mount
from pycontainerd.api.services.events.v1 import events_pb2, events_pb2_grpc
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2 as api
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2_grpc
from tests.support.grpc_client import RawClient
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

SNAPSHOTTERS = ["overlayfs", "native"]


def _snap(ctr, snapshotter: str, *args: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
    return ctr.ok("snapshots", "--snapshotter", snapshotter, *args, **kwargs)


def _snap_fails(ctr, snapshotter: str, *args: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
    return ctr.fails("snapshots", "--snapshotter", snapshotter, *args, **kwargs)


def _listing(ctr, snapshotter: str = "overlayfs", **kwargs) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """`ctr snapshots ls` as {key: (parent, kind)}."""
    rows = {}
    for line in _snap(ctr, snapshotter, "ls", **kwargs).splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3:
            rows[fields[0]] = (fields[1], fields[2])
        elif len(fields) == 2:
            rows[fields[0]] = ("", fields[1])
    return rows


def _on_disk(daemon, snapshotter: str) -> list[str]:  # type: ignore[no-untyped-def]
    directory = daemon.root / f"io.containerd.snapshotter.v1.{snapshotter}" / "snapshots"
    return sorted(p.name for p in directory.iterdir())


@contextlib.contextmanager
def _mounted(ctr, snapshotter: str, key: str, target: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """Run the mount commands `ctr snapshots mounts` prints; always unmount."""
    target.mkdir(exist_ok=True)
    script = _snap(ctr, snapshotter, "mounts", str(target), key)
    assert script.startswith("mount -t "), script
    try:
        subprocess.run(["sh", "-e", "-c", script], check=True, capture_output=True)
        yield target
    finally:
        mount.unmount_all(str(target), flags=mount.MNT_DETACH)


def _trigger_collection(ctr, daemon, snapshotter: str = "overlayfs") -> None:  # type: ignore[no-untyped-def]
    """Delete a throw-away snapshot and wait until a collection removed it from disk."""
    before = set(_on_disk(daemon, snapshotter))
    _snap(ctr, snapshotter, "prepare", "gc-trigger")
    added = set(_on_disk(daemon, snapshotter)) - before
    _snap(ctr, snapshotter, "rm", "gc-trigger")
    wait_for(lambda: not added & set(_on_disk(daemon, snapshotter)), "a garbage collection")


@pytest.mark.parametrize("snapshotter", SNAPSHOTTERS)
def test_layers_through_mounts_commit_and_children(ctr, daemon, tmp_path, snapshotter):
    _snap(ctr, snapshotter, "prepare", "base-work")
    with _mounted(ctr, snapshotter, "base-work", tmp_path / "m1") as root:
        (root / "hello.txt").write_text("from the base layer\n")
    _snap(ctr, snapshotter, "commit", "base", "base-work")
    _snap(ctr, snapshotter, "prepare", "child", "base")
    with _mounted(ctr, snapshotter, "child", tmp_path / "m2") as root:
        assert (root / "hello.txt").read_text() == "from the base layer\n"
        (root / "second.txt").write_text("child\n")
    _snap(ctr, snapshotter, "view", "look", "base")
    with _mounted(ctr, snapshotter, "look", tmp_path / "m3") as root:
        assert (root / "hello.txt").exists() and not (root / "second.txt").exists()

    assert _listing(ctr, snapshotter) == {
        "base": ("", "Committed"),
        "child": ("base", "Active"),
        "look": ("base", "View"),
    }
    tree = _snap(ctr, snapshotter, "tree")
    assert tree.splitlines()[0].strip() == "base"
    assert {line.strip() for line in tree.splitlines()[1:]} == {"\\_ child", "\\_ look"}
    info = json.loads(_snap(ctr, snapshotter, "info", "child"))
    assert (info["Name"], info["Parent"], info["Kind"]) == ("child", "base", "Active")
    assert "containerd.io/gc.root" in info["Labels"]
    usage = {
        ln.split()[0]: ln.split()[1:] for ln in _snap(ctr, snapshotter, "usage").splitlines()[1:]
    }
    assert set(usage) == {"base", "child", "look"}
    assert usage["child"][-1] != "0"  # inodes: the file written in the child counts

    labelled = _snap(ctr, snapshotter, "label", "child", "purpose=test")
    assert "purpose=test" in labelled
    _snap(ctr, snapshotter, "label", "child", "purpose=")
    assert "purpose" not in json.loads(_snap(ctr, snapshotter, "info", "child"))["Labels"]

    err = _snap_fails(ctr, snapshotter, "rm", "base")
    assert "failed precondition" in err and "child" in err
    # ctr gives views no gc.root label: any collection (one follows every rm) takes them.
    _snap(ctr, snapshotter, "rm", "look", "child")
    _snap(ctr, snapshotter, "rm", "base")
    assert _listing(ctr, snapshotter) == {}
    wait_for(lambda: _on_disk(daemon, snapshotter) == [], "removal from disk")


def test_namespaces_are_isolated(ctr):
    _snap(ctr, "overlayfs", "prepare", "work", namespace="team-a")
    _snap(ctr, "overlayfs", "commit", "base", "work", namespace="team-a")
    _snap(ctr, "overlayfs", "prepare", "work", namespace="team-b")  # same key, other namespace
    err = _snap_fails(ctr, "overlayfs", "prepare", "child", "base", namespace="team-b")
    assert "not found" in err
    assert _listing(ctr, namespace="team-a") == {"base": ("", "Committed")}
    assert _listing(ctr, namespace="team-b") == {"work": ("", "Active")}
    assert _listing(ctr, "native", namespace="team-a") == {}


def test_kill9_after_prepare_and_after_commit(ctr, daemon, tmp_path):
    _snap(ctr, "overlayfs", "prepare", "work")
    with _mounted(ctr, "overlayfs", "work", tmp_path / "m") as root:
        (root / "data").write_text("kept\n")
    daemon.kill9()
    daemon.start()
    assert _listing(ctr) == {"work": ("", "Active")}
    _snap(ctr, "overlayfs", "commit", "layer", "work")
    daemon.kill9()
    daemon.start()
    assert _listing(ctr) == {"layer": ("", "Committed")}
    _snap(ctr, "overlayfs", "prepare", "again", "layer")
    with _mounted(ctr, "overlayfs", "again", tmp_path / "m2") as root:
        assert (root / "data").read_text() == "kept\n"
    _snap(ctr, "overlayfs", "rm", "again")
    _snap(ctr, "overlayfs", "rm", "layer")
    assert _listing(ctr) == {}
    wait_for(lambda: _on_disk(daemon, "overlayfs") == [], "removal from disk")


def test_gc_keeps_roots_and_removes_unreferenced(ctr, daemon):
    _snap(ctr, "overlayfs", "prepare", "rooted")  # ctr labels it containerd.io/gc.root
    _snap(ctr, "overlayfs", "prepare", "loose")
    _snap(ctr, "overlayfs", "label", "loose", "containerd.io/gc.root=")
    assert len(_on_disk(daemon, "overlayfs")) == 2
    _trigger_collection(ctr, daemon)
    assert _listing(ctr) == {"rooted": ("", "Active")}
    assert len(_on_disk(daemon, "overlayfs")) == 1


def test_lease_protects_snapshot(ctr, daemon):
    ctr.ok("leases", "create", "--id", "hold")
    raw = RawClient(daemon.address)
    try:
        stub = snapshots_pb2_grpc.SnapshotsStub(raw.channel)
        stub.Prepare(
            api.PrepareSnapshotRequest(snapshotter="overlayfs", key="leased"),
            metadata=(*raw.metadata, ("containerd-lease", "hold")),
            timeout=30,
        )
    finally:
        raw.close()
    assert "Labels" not in json.loads(_snap(ctr, "overlayfs", "info", "leased"))  # no gc.root
    _trigger_collection(ctr, daemon)
    assert "leased" in _listing(ctr)
    ctr.ok("leases", "rm", "--sync", "hold")
    assert _listing(ctr) == {}
    assert _on_disk(daemon, "overlayfs") == []


def _subscribe(raw: RawClient, stub, received: queue.Queue) -> grpc.Future:  # type: ignore[no-untyped-def]
    """Subscribe to default-namespace snapshot events; returns once the stream delivers."""
    events = events_pb2_grpc.EventsStub(raw.channel).Subscribe(
        events_pb2.SubscribeRequest(filters=['topic~="^/snapshot/"']), timeout=30
    )
    probes: queue.Queue[events_pb2.Envelope] = queue.Queue()

    def read() -> None:
        with contextlib.suppress(grpc.RpcError):  # cancelled at the end of the test
            for envelope in events:
                (received if envelope.namespace == "default" else probes).put(envelope)

    threading.Thread(target=read, daemon=True).start()
    probe_namespace = (("containerd-namespace", "probe"),)
    for attempt in range(50):
        stub.Prepare(api.PrepareSnapshotRequest(key=f"p{attempt}"), metadata=probe_namespace)
        with contextlib.suppress(queue.Empty):
            probes.get(timeout=0.1)
            return events
    raise AssertionError("the event subscription never delivered")


def test_status_codes_and_events(daemon):
    raw = RawClient(daemon.address)
    received: queue.Queue[events_pb2.Envelope] = queue.Queue()
    stub = snapshots_pb2_grpc.SnapshotsStub(raw.channel)
    events = _subscribe(raw, stub, received)
    try:
        codes = grpc.StatusCode
        code = raw.code_of
        assert code(stub.Prepare, api.PrepareSnapshotRequest(snapshotter="zfs", key="k")) == (
            codes.INVALID_ARGUMENT
        )
        assert code(stub.Prepare, api.PrepareSnapshotRequest(key="w")) == codes.OK  # overlayfs
        assert code(stub.Commit, api.CommitSnapshotRequest(name="c", key="w")) == codes.OK
        assert code(stub.Prepare, api.PrepareSnapshotRequest(key="w", parent="c")) == codes.OK
        assert code(stub.Remove, api.RemoveSnapshotRequest(key="c")) == codes.FAILED_PRECONDITION
        assert code(stub.Stat, api.StatSnapshotRequest(key="nope")) == codes.NOT_FOUND
        bad_mask = api.UpdateSnapshotRequest(info=api.Info(name="w"))
        bad_mask.update_mask.paths.append("parent")
        assert code(stub.Update, bad_mask) == codes.INVALID_ARGUMENT
        listed = list(
            stub.List(
                api.ListSnapshotsRequest(filters=["kind==committed", "parent==c"]),
                metadata=raw.metadata,
            )
        )
        assert sorted(i.name for r in listed for i in r.info) == ["c", "w"]
        roots = list(
            stub.List(api.ListSnapshotsRequest(filters=['parent==""']), metadata=raw.metadata)
        )
        assert [i.name for r in roots for i in r.info] == ["c"]
        assert code(stub.Remove, api.RemoveSnapshotRequest(key="w")) == codes.OK
        assert code(stub.Cleanup, api.CleanupRequest(snapshotter="overlayfs")) == codes.OK
        no_namespace = RawClient(daemon.address)
        no_namespace.metadata = ()
        try:
            unscoped = snapshots_pb2_grpc.SnapshotsStub(no_namespace.channel)
            assert no_namespace.code_of(unscoped.List, api.ListSnapshotsRequest()) == (
                codes.FAILED_PRECONDITION
            )
        finally:
            no_namespace.close()
        topics = [received.get(timeout=10).topic for _ in range(4)]
        assert topics == [
            "/snapshot/prepare",
            "/snapshot/commit",
            "/snapshot/prepare",
            "/snapshot/remove",
        ]
    finally:
        events.cancel()
        raw.close()
