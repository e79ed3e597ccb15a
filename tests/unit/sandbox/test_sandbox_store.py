"""The sandbox store: records per namespace, updates by field, kept across a reopen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.containers import AnyValue
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.sandbox.store import Sandbox, SandboxStore

NS = "sandbox-test"


def _open(root: Path) -> tuple[MetadataStore, SandboxStore]:
    metadata = MetadataStore(Database(root / "meta.db"), LocalContentStore(root / "content"))
    return metadata, SandboxStore(metadata.db, metadata.namespaces)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SandboxStore]:
    metadata, sandboxes = _open(tmp_path)
    try:
        yield sandboxes
    finally:
        metadata.close()


def _sandbox(sandbox_id: str = "pod-1", **changes) -> Sandbox:  # type: ignore[no-untyped-def]
    base = Sandbox(
        id=sandbox_id,
        runtime_name="io.containerd.runc.v2",
        spec=AnyValue("types.example/Spec", b"\x01\x02"),
        labels={"app": "web"},
        extensions={"ext": AnyValue("types.example/Ext", b"x")},
        sandboxer="podsandbox",
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_create_get_list_delete(store: SandboxStore) -> None:
    created = store.create(NS, _sandbox())

    assert created.created_at is not None and created.updated_at == created.created_at
    got = store.get(NS, "pod-1")
    assert got.spec == AnyValue("types.example/Spec", b"\x01\x02")
    assert got.extensions == {"ext": AnyValue("types.example/Ext", b"x")}
    assert (got.runtime_name, got.sandboxer, got.labels) == (
        "io.containerd.runc.v2",
        "podsandbox",
        {"app": "web"},
    )
    assert [s.id for s in store.list(NS)] == ["pod-1"]
    assert store.list("other") == []
    store.delete(NS, "pod-1")
    assert store.list(NS) == []


def test_bad_input_changes_nothing(store: SandboxStore) -> None:
    store.create(NS, _sandbox())
    with pytest.raises(errdefs.AlreadyExists):
        store.create(NS, _sandbox())
    with pytest.raises(errdefs.InvalidArgument):
        store.create(NS, _sandbox("pod-2", runtime_name=""))
    with pytest.raises(errdefs.InvalidArgument):
        store.create(NS, _sandbox("bad id!"))
    with pytest.raises(errdefs.NotFound):
        store.get(NS, "missing")
    with pytest.raises(errdefs.NotFound):
        store.delete(NS, "missing")
    with pytest.raises(errdefs.InvalidArgument):
        store.update(NS, _sandbox(), ["id"])
    assert [s.id for s in store.list(NS)] == ["pod-1"]


def test_update_by_field_paths(store: SandboxStore) -> None:
    store.create(NS, _sandbox())
    requested = _sandbox(labels={"app": "api", "tier": "1"}, sandboxer="shim")

    one = store.update(NS, requested, ["labels.tier"])
    assert one.labels == {"app": "web", "tier": "1"} and one.sandboxer == "podsandbox"
    everything = store.update(NS, requested, [])
    assert everything.labels == {"app": "api", "tier": "1"} and everything.sandboxer == "shim"
    removed = store.update(NS, _sandbox(labels={}, extensions={}), ["labels.app", "extensions.ext"])
    assert removed.labels == {"tier": "1"} and removed.extensions == {}


def test_records_survive_a_reopen(tmp_path: Path) -> None:
    metadata, store = _open(tmp_path)
    store.create(NS, _sandbox())
    metadata.close()

    metadata, store = _open(tmp_path)
    try:
        assert store.get(NS, "pod-1").labels == {"app": "web"}
    finally:
        metadata.close()
