"""Behaviour shared by the overlayfs and native snapshotters, with real mounts."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from pycontainerd import errdefs, mount
from pycontainerd.snapshots.api import Kind, SnapshotInfo, Usage
from pycontainerd.snapshots.base import DirectorySnapshotter


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _layer(s: DirectorySnapshotter, name: str, parent: str, files: dict[str, str]) -> None:
    """Commit `name` on `parent` holding `files`, written through a real mount."""
    key = f"{name}-active"
    with mount.temp_mount(s.prepare(key, parent)) as root:
        for relative, text in files.items():
            _write(os.path.join(root, relative), text)
    s.commit(name, key)


def test_chain_of_three_shows_every_layer(snapshotter: DirectorySnapshotter, mounted) -> None:
    _layer(snapshotter, "l1", "", {"etc/one": "1", "shared": "from l1"})
    _layer(snapshotter, "l2", "l1", {"etc/two": "2", "shared": "from l2"})
    _layer(snapshotter, "l3", "l2", {"three": "3"})
    root = mounted(snapshotter.prepare("container", "l3"))
    assert _read(os.path.join(root, "etc/one")) == "1"
    assert _read(os.path.join(root, "etc/two")) == "2"
    assert _read(os.path.join(root, "three")) == "3"
    assert _read(os.path.join(root, "shared")) == "from l2"
    _write(os.path.join(root, "etc/one"), "changed")
    # The committed parent is untouched by writes to the active child.
    view = mounted(snapshotter.view("look", "l3"))
    assert _read(os.path.join(view, "etc/one")) == "1"
    with pytest.raises(OSError) as info:
        os.mkdir(os.path.join(view, "new"))
    assert info.value.errno == errno.EROFS


def test_mount_kinds(snapshotter: DirectorySnapshotter, kind_name: str) -> None:
    [base] = snapshotter.prepare("base-active")
    assert (base.type, base.options) == ("bind", ["rw", "rbind"])
    snapshotter.commit("base", "base-active")
    [one_parent_view] = snapshotter.view("v1", "base")
    assert one_parent_view.type == "bind" and "ro" in one_parent_view.options
    _layer(snapshotter, "second", "base", {})
    [active] = snapshotter.prepare("a2", "second")
    [view] = snapshotter.view("v2", "second")
    assert snapshotter.mounts("a2") == [active]
    if kind_name == "overlayfs":
        assert active.type == view.type == "overlay"
        lower = [o for o in view.options if o.startswith("lowerdir=")][0]
        assert lower.count(":") == 1
        assert not any(o.startswith("upperdir=") for o in view.options)
        assert any(o.startswith("upperdir=") for o in active.options)
    else:
        assert (active.type, active.options) == ("bind", ["rw", "rbind"])
        assert (view.type, view.options) == ("bind", ["ro", "rbind"])


def test_chain_of_120_layers_mounts(snapshotter: DirectorySnapshotter, mounted) -> None:
    parent = ""
    for i in range(120):
        _layer(snapshotter, f"layer-{i}", parent, {f"files/{i}": str(i)})
        parent = f"layer-{i}"
    mounts = snapshotter.prepare("top", parent)
    if mounts[0].type == "overlay":
        assert len(",".join(mounts[0].options)) > mount.PAGE_SIZE  # needs the compaction
    root = mounted(mounts)
    assert sorted(os.listdir(os.path.join(root, "files")), key=int) == [str(i) for i in range(120)]
    assert _read(os.path.join(root, "files/0")) == "0"
    assert _read(os.path.join(root, "files/119")) == "119"


def test_lifecycle_errors(snapshotter: DirectorySnapshotter) -> None:
    snapshotter.prepare("base-active")
    with pytest.raises(errdefs.InvalidArgument):
        snapshotter.prepare("child", "base-active")  # parent not committed
    with pytest.raises(errdefs.NotFound):
        snapshotter.prepare("child", "missing")
    with pytest.raises(errdefs.AlreadyExists):
        snapshotter.prepare("base-active")
    snapshotter.commit("base", "base-active")
    with pytest.raises(errdefs.NotFound):
        snapshotter.mounts("base-active")
    with pytest.raises(errdefs.FailedPrecondition):
        snapshotter.mounts("base")
    snapshotter.view("view", "base")
    with pytest.raises(errdefs.FailedPrecondition):
        snapshotter.commit("never", "view")
    with pytest.raises(errdefs.FailedPrecondition):
        snapshotter.remove("base")
    snapshotter.remove("view")
    snapshotter.remove("base")
    with pytest.raises(errdefs.NotFound):
        snapshotter.stat("base")
    assert list(snapshotter.walk()) == []
    assert os.listdir(os.path.join(snapshotter.root, "snapshots")) == []


def test_stat_update_and_walk(snapshotter: DirectorySnapshotter) -> None:
    snapshotter.prepare("base-active", labels={"stage": "build"})
    snapshotter.commit("base", "base-active", labels={"containerd.io/gc.root": "x"})
    snapshotter.prepare("work", "base", labels={"stage": "run", "tmp": "1"})
    info = snapshotter.stat("work")
    assert (info.kind, info.parent, info.labels) == (
        Kind.ACTIVE,
        "base",
        {"stage": "run", "tmp": "1"},
    )
    base = snapshotter.stat("base")
    assert (base.kind, base.labels) == (Kind.COMMITTED, {"containerd.io/gc.root": "x"})

    updated = snapshotter.update(
        SnapshotInfo(name="work", labels={"stage": "done"}), ["labels.stage", "labels.tmp"]
    )
    assert updated.labels == {"stage": "done"}
    assert snapshotter.stat("work").labels == {"stage": "done"}
    with pytest.raises(errdefs.InvalidArgument):
        snapshotter.update(SnapshotInfo(name="work", parent="other"), ["parent"])

    assert [i.name for i in snapshotter.walk()] == ["base", "work"]
    done = snapshotter.walk(lambda i: i.labels.get("stage") == "done")
    assert [i.name for i in done] == ["work"]


def test_usage(snapshotter: DirectorySnapshotter, mounted, kind_name: str) -> None:
    root = mounted(snapshotter.prepare("a"))
    empty = snapshotter.usage("a")
    assert empty.inodes == 1
    _write(os.path.join(root, "big"), "x" * (1 << 20))
    os.link(os.path.join(root, "big"), os.path.join(root, "big-link"))
    active = snapshotter.usage("a")
    assert active.inodes == 2  # the root and the file; the hard link counts once
    assert (1 << 20) <= active.size - empty.size < (1 << 20) + 65536
    snapshotter.commit("layer", "a")
    assert snapshotter.usage("layer") == active
    snapshotter.view("v", "layer")
    assert snapshotter.usage("v") == Usage()
    # The child of a layer: overlay counts its own (empty) upper layer only,
    # native its full copy.
    snapshotter.prepare("child", "layer")
    expected = empty if kind_name == "overlayfs" else active
    assert snapshotter.usage("child") == expected


def test_concurrent_prepare_of_one_key_has_one_winner(snapshotter: DirectorySnapshotter) -> None:
    _layer(snapshotter, "base", "", {f"f{i}": "x" * 1000 for i in range(50)})
    contenders = 8
    barrier = threading.Barrier(contenders)
    outcomes: list[object] = []
    lock = threading.Lock()

    def contend() -> None:
        barrier.wait()
        try:
            result: object = snapshotter.prepare("same", "base")
        except errdefs.ContainerdError as exc:
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, errdefs.AlreadyExists)]
    assert (len(winners), len(losers)) == (1, contenders - 1)
    assert [i.name for i in snapshotter.walk()] == ["base", "same"]
    assert os.listdir(os.path.join(snapshotter.root, "staging")) == []
    assert len(os.listdir(os.path.join(snapshotter.root, "snapshots"))) == 2
