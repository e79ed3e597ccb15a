"""The namespaced snapshotter over the metadata database, with a real native backend.

The native backend needs no mounts: a snapshot's files are plain directories,
so the tests read and write them directly. Crashes are simulated by forked
children that die with os._exit() at a chosen step, as after a kill -9.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycontainerd import errdefs, plugin
from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.gc import LABEL_GC_ROOT
from pycontainerd.metadata.leases import Resource
from pycontainerd.metadata.snapshots import NamespacedSnapshotter, removal_order
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.snapshots import Kind, NativeSnapshotter, OverlaySnapshotter, SnapshotInfo
from pycontainerd.snapshots import plugins as snapshot_plugins

NAME = "native"
ROOT_LABEL = {LABEL_GC_ROOT: "now"}
CRASH_STATUS = 77


class Daemon:
    """The metadata store and a native backend on one root, reopenable like a daemon."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backend = NativeSnapshotter(root / "native")
        self.metadata = MetadataStore(
            Database(root / "meta.db"), LocalContentStore(root / "content"), {NAME: self.backend}
        )
        self.sn: NamespacedSnapshotter = self.metadata.snapshots.get(NAME)

    def close(self) -> None:
        self.metadata.close()
        self.backend.close()

    def backend_keys(self) -> list[str]:
        return sorted(info.name for info in self.backend.walk())

    def snapshot_dir(self, namespace: str, key: str) -> Path:
        """The native backend's directory of a snapshot (its mount source)."""
        return Path(self.sn.mounts(namespace, key)[0].source)

    def collect(self) -> None:
        """One garbage collection: metadata, then the backend sweeper."""
        sweep = self.metadata.collector.collect()
        self.metadata.snapshots.sweep(self.metadata.collector, sweep)


@pytest.fixture
def open_daemon(tmp_path: Path) -> Iterator[Callable[[], Daemon]]:
    opened: list[Daemon] = []

    def open_() -> Daemon:
        daemon = Daemon(tmp_path)
        opened.append(daemon)
        return daemon

    try:
        yield open_
    finally:
        for daemon in opened:
            daemon.close()


@pytest.fixture
def d(open_daemon: Callable[[], Daemon]) -> Daemon:
    return open_daemon()


def _committed(d: Daemon, namespace: str, name: str, parent: str = "", files=None) -> None:  # type: ignore[no-untyped-def]
    key = f"{name}-active"
    d.sn.prepare(namespace, key, parent, ROOT_LABEL)
    for rel, text in (files or {}).items():
        (d.snapshot_dir(namespace, key) / rel).write_text(text)
    d.sn.commit(namespace, name, key, ROOT_LABEL)


def _crash_in_child(open_daemon: Callable[[], Daemon], step: Callable[[Daemon], None]) -> None:
    """Fork; the child opens the root and runs `step`, which must die with CRASH_STATUS."""
    pid = os.fork()
    if pid == 0:
        try:
            step(open_daemon())
        finally:
            os._exit(1)  # the crash point was not reached
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CRASH_STATUS


def _die_after(obj: object, method: str) -> None:
    original = getattr(obj, method)

    def run_then_die(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)
        os._exit(CRASH_STATUS)

    setattr(obj, method, run_then_die)


# --- namespaces --------------------------------------------------------------


def test_same_key_in_two_namespaces_is_two_snapshots(d: Daemon) -> None:
    d.sn.prepare("ns-a", "k", labels={"owner": "a"})
    d.sn.prepare("ns-b", "k", labels={"owner": "b"})
    assert d.sn.stat("ns-a", "k").labels == {"owner": "a"}
    assert d.sn.stat("ns-b", "k").labels == {"owner": "b"}
    keys = d.backend_keys()
    assert len(keys) == 2
    assert {k.split("/")[0] for k in keys} == {"ns-a", "ns-b"}
    assert all(k.endswith("/k") for k in keys)
    assert [i.name for i in d.sn.list("ns-a")] == ["k"]
    assert d.sn.list("ns-c") == []


def test_parent_is_resolved_in_its_own_namespace(d: Daemon) -> None:
    _committed(d, "ns-a", "base")
    with pytest.raises(errdefs.NotFound, match="parent"):
        d.sn.prepare("ns-b", "child", "base")
    with pytest.raises(errdefs.NotFound):
        d.sn.stat("ns-b", "base")
    with pytest.raises(errdefs.NotFound):
        d.sn.remove("ns-b", "base")
    assert d.sn.list("ns-b") == []


# --- life cycle --------------------------------------------------------------


def test_prepare_commit_child_sees_parent_files(d: Daemon) -> None:
    _committed(d, "ns", "base", files={"hello.txt": "hi"})
    d.sn.prepare("ns", "work", "base")
    assert (d.snapshot_dir("ns", "work") / "hello.txt").read_text() == "hi"
    info = d.sn.stat("ns", "work")
    assert (info.kind, info.parent) == (Kind.ACTIVE, "base")
    base = d.sn.stat("ns", "base")
    assert (base.kind, base.parent, base.labels) == (Kind.COMMITTED, "", ROOT_LABEL)
    assert d.sn.usage("ns", "base").inodes >= 1
    d.sn.view("ns", "look", "base")
    assert d.sn.stat("ns", "look").kind == Kind.VIEW
    assert [(i.name, i.kind) for i in d.sn.list("ns")] == [
        ("base", Kind.COMMITTED),
        ("look", Kind.VIEW),
        ("work", Kind.ACTIVE),
    ]


def test_refusals_carry_containerd_error_kinds(d: Daemon) -> None:
    _committed(d, "ns", "base")
    d.sn.prepare("ns", "active")
    d.sn.view("ns", "view", "base")
    with pytest.raises(errdefs.AlreadyExists):
        d.sn.prepare("ns", "active")
    with pytest.raises(errdefs.AlreadyExists):
        d.sn.commit("ns", "base", "active")
    with pytest.raises(errdefs.InvalidArgument, match="not a committed"):
        d.sn.prepare("ns", "x", "active")
    with pytest.raises(errdefs.FailedPrecondition, match="only active"):
        d.sn.commit("ns", "v2", "view")
    with pytest.raises(errdefs.FailedPrecondition):
        d.sn.mounts("ns", "base")
    with pytest.raises(errdefs.NotFound):
        d.sn.commit("ns", "n", "missing")
    with pytest.raises(errdefs.InvalidArgument):
        d.sn.prepare("ns", "")
    with pytest.raises(errdefs.InvalidArgument):
        d.sn.prepare("ns", "big", labels={"k": "v" * 5000})
    # Nothing half-made was left in the backend by the refusals.
    assert len(d.backend_keys()) == 3


def test_update_labels_by_field_path(d: Daemon) -> None:
    d.sn.prepare("ns", "k", labels={"a": "1", "b": "2"})
    before = d.sn.stat("ns", "k")
    info = d.sn.update("ns", SnapshotInfo(name="k", labels={"a": "9", "c": "3"}), ["labels.a"])
    assert info.labels == {"a": "9", "b": "2"}
    assert info.updated >= before.updated and info.created == before.created
    info = d.sn.update("ns", SnapshotInfo(name="k", labels={}), ["labels.b"])
    assert info.labels == {"a": "9"}
    info = d.sn.update("ns", SnapshotInfo(name="k", labels={"x": "y"}), ["labels"])
    assert info.labels == {"x": "y"}
    info = d.sn.update("ns", SnapshotInfo(name="k", labels={"z": "1"}))
    assert info.labels == {"z": "1"}
    with pytest.raises(errdefs.InvalidArgument, match="parent"):
        d.sn.update("ns", SnapshotInfo(name="k", parent="p"), ["parent"])
    with pytest.raises(errdefs.InvalidArgument):
        d.sn.update("ns", SnapshotInfo(name="k", labels={"k": "v" * 5000}))
    with pytest.raises(errdefs.NotFound):
        d.sn.update("other", SnapshotInfo(name="k", labels={}))


def test_remove_refuses_parents_and_leaves_disk_to_gc(d: Daemon) -> None:
    _committed(d, "ns", "base")
    d.sn.prepare("ns", "child", "base")
    with pytest.raises(errdefs.FailedPrecondition, match="child"):
        d.sn.remove("ns", "base")
    d.sn.remove("ns", "child")
    assert len(d.backend_keys()) == 2  # the row is gone, the data waits for GC
    d.sn.remove("ns", "base")
    assert d.sn.list("ns") == []
    d.collect()
    assert d.backend_keys() == []


# --- garbage collection -------------------------------------------------------


def test_gc_keeps_roots_and_their_parents_and_removes_the_rest(d: Daemon) -> None:
    _committed(d, "ns", "base")
    d.sn.update("ns", SnapshotInfo(name="base", labels={}), ["labels"])  # no longer a root
    d.sn.prepare("ns", "kept", "base", ROOT_LABEL)
    d.sn.prepare("ns", "loose", "base")
    d.collect()
    assert [i.name for i in d.sn.list("ns")] == ["base", "kept"]
    assert len(d.backend_keys()) == 2
    d.sn.remove("ns", "kept")
    d.collect()
    assert d.sn.list("ns") == [] and d.backend_keys() == []


def test_lease_holds_snapshots_and_follows_commit(d: Daemon) -> None:
    d.metadata.leases.create("ns", "hold", {})
    d.sn.prepare("ns", "k", lease="hold")
    resource_type = f"snapshots/{NAME}"
    assert d.metadata.leases.list_resources("ns", "hold") == [Resource("k", resource_type)]
    d.collect()
    assert [i.name for i in d.sn.list("ns")] == ["k"]
    d.sn.commit("ns", "done", "k", lease="hold")
    assert d.metadata.leases.list_resources("ns", "hold") == [Resource("done", resource_type)]
    d.collect()
    assert [i.name for i in d.sn.list("ns")] == ["done"]
    d.metadata.leases.delete("ns", "hold")
    d.collect()
    assert d.sn.list("ns") == [] and d.backend_keys() == []


def test_unknown_lease_is_refused_without_leftovers(d: Daemon) -> None:
    with pytest.raises(errdefs.NotFound, match="lease"):
        d.sn.prepare("ns", "k", lease="nope")
    assert d.sn.list("ns") == [] and d.backend_keys() == []


def test_removal_order_children_first_and_ancestors_of_kept_stay() -> None:
    infos = [
        SnapshotInfo("a"),
        SnapshotInfo("b", parent="a"),
        SnapshotInfo("c", parent="b"),
        SnapshotInfo("x"),
        SnapshotInfo("y", parent="x"),
    ]
    assert removal_order(infos, {"y"}) == ["c", "b", "a"]
    assert removal_order(infos, {"a", "x", "y"}) == ["c", "b"]
    order = removal_order(infos, set())
    assert order.index("c") < order.index("b") < order.index("a")
    assert order.index("y") < order.index("x")


def test_racing_prepares_of_one_key_leave_one_snapshot(d: Daemon) -> None:
    outcomes: list[str] = []

    def prepare() -> None:
        try:
            d.sn.prepare("ns", "same")
            outcomes.append("ok")
        except errdefs.AlreadyExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=prepare) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["exists"] * 3 + ["ok"]
    assert len(d.backend_keys()) == 1


# --- crash safety --------------------------------------------------------------


def test_crash_after_backend_prepare_leaves_an_orphan_gc_removes(
    open_daemon: Callable[[], Daemon],
) -> None:
    def step(child: Daemon) -> None:
        _die_after(child.backend, "prepare")
        child.sn.prepare("ns", "lost")

    _crash_in_child(open_daemon, step)
    d = open_daemon()
    d.metadata.snapshots.reconcile()
    assert d.sn.list("ns") == []
    assert len(d.backend_keys()) == 1
    d.collect()
    assert d.backend_keys() == []
    d.sn.prepare("ns", "lost")  # the key is free again


def test_crash_after_backend_commit_is_reconciled(open_daemon: Callable[[], Daemon]) -> None:
    first = open_daemon()
    _committed(first, "ns", "base", files={"f": "1"})
    first.sn.prepare("ns", "work", "base")
    first.close()

    def step(child: Daemon) -> None:
        _die_after(child.backend, "commit")
        child.sn.commit("ns", "layer", "work")

    _crash_in_child(open_daemon, step)
    d = open_daemon()
    # The client never heard of success: "work" lost its data, "layer" does not exist.
    assert d.metadata.snapshots.get(NAME).reconcile() == [("ns", "work")]
    assert [i.name for i in d.sn.list("ns")] == ["base"]
    d.collect()
    assert len(d.backend_keys()) == 1
    d.sn.prepare("ns", "work", "base")
    assert (d.snapshot_dir("ns", "work") / "f").read_text() == "1"
    d.sn.remove("ns", "work")
    d.sn.remove("ns", "base")
    d.collect()
    assert d.backend_keys() == []


def test_committed_state_survives_reopen(open_daemon: Callable[[], Daemon]) -> None:
    first = open_daemon()
    _committed(first, "ns", "base")
    first.sn.prepare("ns", "work", "base", ROOT_LABEL)
    first.close()
    d = open_daemon()
    assert d.metadata.snapshots.get(NAME).reconcile() == []
    d.collect()
    assert [(i.name, i.kind) for i in d.sn.list("ns")] == [
        ("base", Kind.COMMITTED),
        ("work", Kind.ACTIVE),
    ]
    assert len(d.backend_keys()) == 2


def test_unknown_snapshotter_is_invalid_argument(d: Daemon) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="snapshotter overlayfs not loaded"):
        d.metadata.snapshots.get("")
    with pytest.raises(errdefs.InvalidArgument, match="snapshotter zfs not loaded"):
        d.metadata.snapshots.get("zfs")


# --- plugin registrations -----------------------------------------------------


def _init_context(root: Path) -> plugin.InitContext:
    return plugin.InitContext(
        root=root, state=root / "state", config={}, daemon_config=None, registry=plugin.PluginSet()
    )


def test_overlayfs_plugin_is_skipped_where_overlay_cannot_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OverlaySnapshotter, "supported", staticmethod(lambda root: False))
    with pytest.raises(plugin.SkipPlugin, match="native snapshotter"):
        snapshot_plugins.init_overlayfs(_init_context(tmp_path / "overlayfs"))


def test_native_plugin_reclaims_crash_leftovers_at_init(tmp_path: Path) -> None:
    root = tmp_path / "io.containerd.snapshotter.v1.native"
    NativeSnapshotter(root).close()
    leftover = root / "staging" / "new-crashed"
    leftover.mkdir()
    ic = _init_context(root)
    backend = snapshot_plugins.init_native(ic)
    try:
        assert not leftover.exists()
        assert ic.exports["root"] == str(root)
    finally:
        backend.close()
