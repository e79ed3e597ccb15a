"""Bundles on disk: layout, conflicts, removal, discovery, and orphan work dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.runtime.bundle import BundleStore


@pytest.fixture
def store(tmp_path: Path) -> BundleStore:
    return BundleStore(state=tmp_path / "state", root=tmp_path / "root")


def test_create_lays_out_the_bundle(store: BundleStore, tmp_path: Path) -> None:
    bundle = store.create("ns", "t1", b'{"ociVersion": "1.0.2"}')
    assert bundle.path == tmp_path / "state" / "ns" / "t1"
    assert (bundle.path / "config.json").read_bytes() == b'{"ociVersion": "1.0.2"}'
    assert bundle.rootfs.is_dir()
    assert os.readlink(bundle.path / "work") == str(tmp_path / "root" / "ns" / "t1")
    assert bundle.path.stat().st_mode & 0o777 == 0o700
    bundle.write("address", "unix:///x.sock")
    assert bundle.read("address") == "unix:///x.sock"
    assert bundle.read("missing") == ""
    with pytest.raises(errdefs.AlreadyExists):
        store.create("ns", "t1", b"{}")
    with pytest.raises(errdefs.InvalidArgument):
        store.create("ns", "bad/id", b"{}")


def test_delete_removes_bundle_and_work_dir(store: BundleStore, tmp_path: Path) -> None:
    bundle = store.create("ns", "t1", b"{}")
    (tmp_path / "root" / "ns" / "t1" / "scratch").write_text("data")
    bundle.delete()
    assert not bundle.path.exists()
    assert not (tmp_path / "root" / "ns" / "t1").exists()
    assert not (tmp_path / "state" / "ns" / ".t1").exists()
    bundle.delete()  # twice is fine


def test_existing_skips_hidden_dirs_and_orphan_work_dirs_go(
    store: BundleStore, tmp_path: Path
) -> None:
    store.create("a", "t1", b"{}")
    store.create("b", "t2", b"{}")
    (tmp_path / "state" / "a" / ".half-deleted").mkdir()
    assert sorted((b.namespace, b.id) for b in store.existing()) == [("a", "t1"), ("b", "t2")]
    orphan = tmp_path / "root" / "a" / "gone"
    orphan.mkdir()
    store.remove_orphan_work_dirs(keep={("a", "t1"), ("b", "t2")})
    assert not orphan.exists()
    assert (tmp_path / "root" / "a" / "t1").exists()


def test_existing_on_a_fresh_state_is_empty(store: BundleStore) -> None:
    assert store.existing() == []
