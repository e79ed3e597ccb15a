"""Rebase: an active snapshot made without a parent is put on one, its files untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.snapshots import NativeSnapshotter, OverlaySnapshotter
from pycontainerd.snapshots.api import Kind


@pytest.fixture
def overlay(root_only: None, workdir: str):  # type: ignore[no-untyped-def]
    snapshotter = OverlaySnapshotter(os.path.join(workdir, "overlayfs"))
    try:
        yield snapshotter
    finally:
        snapshotter.close()


def _committed(s: OverlaySnapshotter, name: str, files: dict[str, str], parent: str = "") -> str:
    mounts = s.prepare(f"{name}-active", parent)
    root = Path(mounts[0].source) if mounts[0].type == "bind" else Path(_upper(mounts))
    for path, text in files.items():
        (root / path).write_text(text)
    s.commit(name, f"{name}-active")
    return name


def _upper(mounts) -> str:  # type: ignore[no-untyped-def]
    return next(o.split("=", 1)[1] for o in mounts[0].options if o.startswith("upperdir="))


def test_rebased_snapshot_shows_its_files_over_the_parent(overlay, mounted) -> None:  # type: ignore[no-untyped-def]
    _committed(overlay, "base", {"a": "from base", "b": "from base"})
    staged = overlay.prepare("staged", "")
    staged_dir = Path(staged[0].source)
    (staged_dir / "b").write_text("from staged")
    inode = os.stat(staged_dir / "b").st_ino

    mounts = overlay.rebase("staged", "base")

    assert overlay.stat("staged").parent == "base"
    assert _upper(mounts) == str(staged_dir)  # the same directory: nothing copied
    assert os.stat(staged_dir / "b").st_ino == inode
    root = Path(mounted(mounts))
    assert (root / "a").read_text() == "from base"
    assert (root / "b").read_text() == "from staged"
    overlay.commit("top", "staged")
    assert overlay.stat("top").kind == Kind.COMMITTED
    assert overlay.stat("top").parent == "base"


def test_the_root_takes_the_parents_owner_as_a_prepare_would(overlay) -> None:  # type: ignore[no-untyped-def]
    base = overlay.prepare("base-active", "")
    os.chown(base[0].source, 1000, 1000)
    overlay.commit("base", "base-active")
    staged = Path(overlay.prepare("staged", "")[0].source)
    assert os.stat(staged).st_uid == 0

    overlay.rebase("staged", "base")

    assert (os.stat(staged).st_uid, os.stat(staged).st_gid) == (1000, 1000)


def test_only_a_parentless_active_snapshot_rebases(overlay) -> None:  # type: ignore[no-untyped-def]
    _committed(overlay, "base", {})
    overlay.prepare("child", "base")
    overlay.view("view", "")
    overlay.prepare("orphan", "")

    for key in ("child", "view", "base"):
        with pytest.raises(errdefs.FailedPrecondition):
            overlay.rebase(key, "base")
    with pytest.raises(errdefs.NotFound):
        overlay.rebase("orphan", "missing")
    with pytest.raises(errdefs.InvalidArgument):
        overlay.rebase("orphan", "child")  # not committed
    with pytest.raises(errdefs.NotFound):
        overlay.rebase("missing", "base")
    assert overlay.stat("orphan").parent == ""


def test_native_snapshots_cannot_rebase(root_only: None, workdir: str) -> None:
    native = NativeSnapshotter(os.path.join(workdir, "native"))
    try:
        native.prepare("base-active", "")
        native.commit("base", "base-active")
        native.prepare("staged", "")
        assert not native.supports_rebase
        with pytest.raises(errdefs.NotImplemented_):
            native.rebase("staged", "base")
        assert native.stat("staged").parent == ""
    finally:
        native.close()
