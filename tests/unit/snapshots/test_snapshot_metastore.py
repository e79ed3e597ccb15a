"""Tests of the snapshotters' SQLite metadata store."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pycontainerd import errdefs
from pycontainerd.snapshots.api import Kind, SnapshotInfo, Usage
from pycontainerd.snapshots.storage import MAX_LABEL_SIZE, MetaStore


@pytest.fixture
def store(workdir: str) -> Iterator[MetaStore]:
    store = MetaStore(os.path.join(workdir, "metadata.db"))
    try:
        yield store
    finally:
        store.close()


def _committed_chain(store: MetaStore, names: list[str]) -> None:
    parent = ""
    for name in names:
        with store.transaction(writable=True) as tx:
            tx.create(Kind.ACTIVE, f"{name}-active", parent)
            tx.commit(f"{name}-active", name, Usage())
        parent = name


def test_create_commit_and_chain(store: MetaStore) -> None:
    _committed_chain(store, ["base", "mid"])
    with store.transaction(writable=True) as tx:
        top = tx.create(Kind.ACTIVE, "top", "mid", {"a": "1"})
        base_id, _, _ = tx.info("base")
        mid_id, _, _ = tx.info("mid")
    assert top.parent_ids == (mid_id, base_id)
    with store.transaction() as tx:
        assert tx.get("top") == top
        _, info, usage = tx.info("top")
    assert (info.kind, info.parent, info.labels) == (Kind.ACTIVE, "mid", {"a": "1"})
    assert usage == Usage()
    assert info.created == info.updated


def test_commit_keeps_id_stores_usage_and_replaces_labels(store: MetaStore) -> None:
    with store.transaction(writable=True) as tx:
        active = tx.create(Kind.ACTIVE, "work", labels={"old": "x"})
        committed_id = tx.commit("work", "layer", Usage(inodes=3, size=8192), {"new": "y"})
    assert committed_id == active.id
    with store.transaction() as tx:
        _, info, usage = tx.info("layer")
        assert not tx.exists("work")
    assert info.kind == Kind.COMMITTED
    assert info.labels == {"new": "y"}
    assert usage == Usage(inodes=3, size=8192)


@pytest.mark.parametrize(
    ("key", "parent", "error"),
    [
        ("k", "missing", errdefs.NotFound),
        ("k", "active-parent", errdefs.InvalidArgument),
        ("existing", "", errdefs.AlreadyExists),
        ("layer", "", errdefs.AlreadyExists),
        ("", "", errdefs.InvalidArgument),
    ],
)
def test_create_errors(store: MetaStore, key: str, parent: str, error: type) -> None:
    _committed_chain(store, ["layer"])
    with store.transaction(writable=True) as tx:
        tx.create(Kind.ACTIVE, "active-parent")
        tx.create(Kind.VIEW, "existing")
    with pytest.raises(error), store.transaction(writable=True) as tx:
        tx.create(Kind.ACTIVE, key, parent)


def test_committed_kind_cannot_be_created(store: MetaStore) -> None:
    with pytest.raises(errdefs.InvalidArgument), store.transaction(writable=True) as tx:
        tx.create(Kind.COMMITTED, "k")


def test_commit_errors(store: MetaStore) -> None:
    _committed_chain(store, ["taken"])
    with store.transaction(writable=True) as tx:
        tx.create(Kind.VIEW, "view", "taken")
        tx.create(Kind.ACTIVE, "active")
    with pytest.raises(errdefs.FailedPrecondition), store.transaction(writable=True) as tx:
        tx.commit("view", "name", Usage())
    with pytest.raises(errdefs.AlreadyExists), store.transaction(writable=True) as tx:
        tx.commit("active", "taken", Usage())
    with pytest.raises(errdefs.NotFound), store.transaction(writable=True) as tx:
        tx.commit("missing", "name", Usage())


def test_remove_refuses_parents_and_reports_kind(store: MetaStore) -> None:
    _committed_chain(store, ["base"])
    with store.transaction(writable=True) as tx:
        tx.create(Kind.VIEW, "view", "base")
    with pytest.raises(errdefs.FailedPrecondition, match="view"), store.transaction(True) as tx:
        tx.remove("base")
    with store.transaction(writable=True) as tx:
        _, kind = tx.remove("view")
        assert kind == Kind.VIEW
        tx.remove("base")
        assert tx.walk() == []
    with pytest.raises(errdefs.NotFound), store.transaction(writable=True) as tx:
        tx.remove("base")


def test_update_labels_by_field_path(store: MetaStore) -> None:
    with store.transaction(writable=True) as tx:
        tx.create(Kind.ACTIVE, "k", labels={"keep": "1", "drop": "2", "change": "3"})
    new = SnapshotInfo(name="k", labels={"change": "30", "add": "4"})
    with store.transaction(writable=True) as tx:
        info = tx.update(new, ["labels.change", "labels.drop", "labels.add"])
    assert info.labels == {"keep": "1", "change": "30", "add": "4"}
    assert info.updated >= info.created
    with store.transaction(writable=True) as tx:
        assert tx.update(SnapshotInfo(name="k", labels={"only": "x"}), ["labels"]).labels == {
            "only": "x"
        }
        assert tx.update(SnapshotInfo(name="k", labels={"all": "y"})).labels == {"all": "y"}


def test_update_rejects_other_fields_without_partial_change(store: MetaStore) -> None:
    with store.transaction(writable=True) as tx:
        tx.create(Kind.ACTIVE, "k", labels={"a": "1"})
    new = SnapshotInfo(name="k", kind=Kind.COMMITTED, labels={"a": "2"})
    with pytest.raises(errdefs.InvalidArgument, match="kind"), store.transaction(True) as tx:
        tx.update(new, ["labels.a", "kind"])
    with store.transaction() as tx:
        assert tx.info("k")[1].labels == {"a": "1"}
    with pytest.raises(errdefs.NotFound), store.transaction(writable=True) as tx:
        tx.update(SnapshotInfo(name="missing"), ["labels"])


def test_oversized_label_is_invalid(store: MetaStore) -> None:
    with pytest.raises(errdefs.InvalidArgument), store.transaction(writable=True) as tx:
        tx.create(Kind.ACTIVE, "k", labels={"big": "v" * MAX_LABEL_SIZE})


def test_walk_filters_and_orders_by_name(store: MetaStore) -> None:
    _committed_chain(store, ["b-layer", "a-layer"])
    with store.transaction(writable=True) as tx:
        tx.create(Kind.ACTIVE, "c-active", "a-layer", {"role": "rootfs"})
        assert [i.name for i in tx.walk()] == ["a-layer", "b-layer", "c-active"]
        rootfs = tx.walk(lambda i: i.labels.get("role") == "rootfs")
    assert [(i.name, i.parent) for i in rootfs] == [("c-active", "a-layer")]


def test_failed_transaction_leaves_nothing_behind(store: MetaStore) -> None:
    with pytest.raises(errdefs.AlreadyExists), store.transaction(writable=True) as tx:
        tx.create(Kind.ACTIVE, "first")
        tx.create(Kind.ACTIVE, "first")
    with store.transaction() as tx:
        assert tx.walk() == []


def test_read_transaction_refuses_writes(store: MetaStore) -> None:
    with pytest.raises(errdefs.FailedPrecondition), store.transaction() as tx:
        tx.create(Kind.ACTIVE, "k")


def test_ids_are_never_reused_and_survive_reopen(workdir: str) -> None:
    path = os.path.join(workdir, "metadata.db")
    store = MetaStore(path)
    try:
        with store.transaction(writable=True) as tx:
            first = tx.create(Kind.ACTIVE, "one").id
            second = tx.create(Kind.ACTIVE, "two").id
            tx.remove("two")
    finally:
        store.close()
    store = MetaStore(path)
    try:
        with store.transaction(writable=True) as tx:
            third = tx.create(Kind.ACTIVE, "three").id
            assert tx.names_not_in_db([str(first), str(second), "junk"]) == [str(second), "junk"]
    finally:
        store.close()
    assert first < second < third
