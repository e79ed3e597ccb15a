"""The container metadata store: validation, field masks, filters, durability."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pycontainerd import errdefs, filters
from pycontainerd.metadata.containers import (
    AnyValue,
    Container,
    ContainerStore,
    RuntimeInfo,
    container_adaptor,
)
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.namespaces import NamespaceStore

SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
RUNC_OPTIONS_TYPE = "containerd.runc.v1.Options"
NS = "default"


def _spec(marker: str = "a") -> AnyValue:
    return AnyValue(SPEC_TYPE, json.dumps({"ociVersion": "1.0.2", "hostname": marker}).encode())


def _container(container_id: str = "c1", **fields) -> Container:  # type: ignore[no-untyped-def]
    base = Container(
        id=container_id,
        runtime=RuntimeInfo("io.containerd.runc.v2", AnyValue(RUNC_OPTIONS_TYPE, b"\x08\x01")),
        spec=_spec(),
        image="docker.io/library/busybox:latest",
        snapshotter="overlayfs",
        snapshot_key=container_id,
        labels={"tier": "web"},
        extensions={"ext.one": AnyValue("example.com/One", b"\x00\xff\x01")},
    )
    return replace(base, **fields)


class Stores:
    def __init__(self, path: Path) -> None:
        self.db = Database(path)
        self.namespaces = NamespaceStore(self.db)
        self.containers = ContainerStore(self.db, self.namespaces)

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    opened = Stores(tmp_path / "meta.db")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def store(stores: Stores) -> ContainerStore:
    return stores.containers


def test_create_get_round_trips_every_field(store: ContainerStore) -> None:
    before = time.time()
    created = store.create(NS, _container())
    got = store.get(NS, "c1")
    assert got == created
    assert got.spec == _spec()
    assert got.runtime == RuntimeInfo(
        "io.containerd.runc.v2", AnyValue(RUNC_OPTIONS_TYPE, b"\x08\x01")
    )
    assert got.extensions == {"ext.one": AnyValue("example.com/One", b"\x00\xff\x01")}
    assert (got.image, got.snapshotter, got.snapshot_key) == (
        "docker.io/library/busybox:latest",
        "overlayfs",
        "c1",
    )
    assert got.labels == {"tier": "web"}
    assert got.created_at is not None and got.created_at == got.updated_at
    assert got.created_at.timestamp() >= before - 1


def test_unset_runtime_options_stay_unset_and_empty_any_stays_empty(
    store: ContainerStore,
) -> None:
    store.create(NS, _container("bare", runtime=RuntimeInfo("io.containerd.runc.v2")))
    assert store.get(NS, "bare").runtime.options is None
    store.create(NS, _container("empty", spec=AnyValue("", b"")))
    assert store.get(NS, "empty").spec == AnyValue("", b"")


def test_create_creates_the_namespace(stores: Stores) -> None:
    stores.containers.create("team-a", _container())
    assert [n.name for n in stores.namespaces.list()] == ["team-a"]
    with pytest.raises(errdefs.FailedPrecondition, match="containers"):
        stores.namespaces.delete("team-a")
    stores.containers.delete("team-a", "c1")
    stores.namespaces.delete("team-a")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": ""}, "must not be empty"),
        ({"id": "bad id!"}, "is not valid"),
        ({"id": "x" * 77}, "longer than"),
        ({"runtime": RuntimeInfo("")}, "must specify a runtime name"),
        ({"spec": None}, "spec must be set"),
        ({"snapshotter": ""}, "snapshotter must be set"),
        ({"extensions": {"": AnyValue("t", b"")}}, "extension keys"),
        ({"labels": {"k": "v" * 5000}}, "larger than"),
    ],
)
def test_create_refuses_invalid_records(store: ContainerStore, change: dict, message: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match=message):
        store.create(NS, _container(**change))
    assert store.list(NS) == []


def test_duplicate_id_is_already_exists_but_other_namespace_is_fine(
    store: ContainerStore,
) -> None:
    store.create(NS, _container())
    with pytest.raises(errdefs.AlreadyExists, match="'c1' already exists"):
        store.create(NS, _container(image="other"))
    assert store.get(NS, "c1").image == "docker.io/library/busybox:latest"
    store.create("other", _container())


def test_empty_label_values_are_dropped(store: ContainerStore) -> None:
    created = store.create(NS, _container(labels={"keep": "1", "drop": ""}))
    assert created.labels == {"keep": "1"}


def test_get_and_delete_unknown_are_not_found(store: ContainerStore) -> None:
    with pytest.raises(errdefs.NotFound):
        store.get(NS, "nope")
    with pytest.raises(errdefs.NotFound):
        store.delete(NS, "nope")
    store.create(NS, _container())
    with pytest.raises(errdefs.NotFound):
        store.get("elsewhere", "c1")
    store.delete(NS, "c1")
    with pytest.raises(errdefs.NotFound):
        store.get(NS, "c1")


def test_list_filters(store: ContainerStore) -> None:
    store.create(NS, _container("web-1", labels={"tier": "web", "a.b": "x"}))
    store.create(NS, _container("web-2", labels={"tier": "web"}, image="nginx"))
    store.create(
        NS,
        _container(
            "db-1",
            labels={"tier": "db"},
            runtime=RuntimeInfo("io.containerd.pyrunc.v2"),
            snapshotter="native",
        ),
    )

    def ids(*filter_strings: str) -> list[str]:
        return [c.id for c in filters.select_now(filter_strings, store.list(NS), container_adaptor)]

    assert ids() == ["db-1", "web-1", "web-2"]
    assert ids("id==web-2") == ["web-2"]
    assert ids("image==nginx") == ["web-2"]
    assert ids("runtime.name==io.containerd.pyrunc.v2") == ["db-1"]
    assert ids("snapshotter==native") == ["db-1"]
    assert ids("labels.tier==web") == ["web-1", "web-2"]
    assert ids('labels."a.b"==x') == ["web-1"]
    assert ids("labels.tier==web,image==nginx") == ["web-2"]
    assert ids("id==db-1", "id==web-1") == ["db-1", "web-1"]
    assert ids("id~=^web") == ["web-1", "web-2"]
    with pytest.raises(errdefs.InvalidArgument):
        ids("id==")


def test_update_labels_by_key_leaves_the_rest(store: ContainerStore) -> None:
    created = store.create(NS, _container(labels={"a": "1", "b": "2"}))
    time.sleep(0.002)
    requested = Container(id="c1", labels={"a": "10", "c": "3"})
    updated = store.update(NS, requested, ["labels.a", "labels.c", "labels.b"])
    assert updated.labels == {"a": "10", "c": "3"}  # b absent from the request: removed
    assert updated.spec == created.spec and updated.image == created.image
    assert updated.created_at == created.created_at
    assert updated.updated_at is not None and created.updated_at is not None
    assert updated.updated_at > created.updated_at


def test_update_whole_maps_spec_image_snapshotkey(store: ContainerStore) -> None:
    store.create(NS, _container())
    requested = Container(
        id="c1",
        labels={"new": "yes"},
        spec=_spec("b"),
        image="other:1",
        snapshot_key="other-key",
        extensions={"ext.two": AnyValue("example.com/Two", b"2")},
    )
    updated = store.update(NS, requested, ["labels", "spec", "image", "snapshotkey", "extensions"])
    assert updated.labels == {"new": "yes"}
    assert updated.spec == _spec("b")
    assert (updated.image, updated.snapshot_key) == ("other:1", "other-key")
    assert updated.extensions == {"ext.two": AnyValue("example.com/Two", b"2")}
    assert updated.runtime.name == "io.containerd.runc.v2"
    assert updated.snapshotter == "overlayfs"


def test_update_extension_by_key(store: ContainerStore) -> None:
    store.create(NS, _container())
    added = store.update(
        NS,
        Container(id="c1", extensions={"ext.two": AnyValue("example.com/Two", b"2")}),
        ["extensions.ext.two"],
    )
    assert set(added.extensions) == {"ext.one", "ext.two"}
    removed = store.update(NS, Container(id="c1"), ["extensions.ext.one"])
    assert removed.extensions == {"ext.two": AnyValue("example.com/Two", b"2")}


@pytest.mark.parametrize("path", ["id", "snapshotter", "runtime", "runtime.name", "created_at"])
def test_update_refuses_fixed_and_unknown_paths(store: ContainerStore, path: str) -> None:
    store.create(NS, _container())
    with pytest.raises(errdefs.InvalidArgument, match="cannot update"):
        store.update(NS, _container(snapshotter="native", image="changed"), [path])
    assert store.get(NS, "c1").image == "docker.io/library/busybox:latest"


def test_full_replace_without_mask(store: ContainerStore) -> None:
    store.create(NS, _container())
    replaced = store.update(NS, _container(labels={}, image="", extensions={}), [])
    assert (replaced.labels, replaced.image, replaced.extensions) == ({}, "", {})
    with pytest.raises(errdefs.InvalidArgument, match="snapshotter cannot change"):
        store.update(NS, _container(snapshotter="native"), [])
    with pytest.raises(errdefs.InvalidArgument, match="runtime name cannot change"):
        store.update(NS, _container(runtime=RuntimeInfo("io.containerd.pyrunc.v2")), [])


def test_update_keeps_validation(store: ContainerStore) -> None:
    store.create(NS, _container())
    with pytest.raises(errdefs.InvalidArgument, match="spec must be set"):
        store.update(NS, Container(id="c1"), ["spec"])
    with pytest.raises(errdefs.InvalidArgument, match="id is required"):
        store.update(NS, Container(id=""), ["image"])
    with pytest.raises(errdefs.NotFound):
        store.update(NS, Container(id="ghost"), ["image"])
    assert store.get(NS, "c1").spec == _spec()


def test_records_survive_reopening(tmp_path: Path) -> None:
    first = Stores(tmp_path / "meta.db")
    try:
        created = first.containers.create(NS, _container())
    finally:
        first.close()
    second = Stores(tmp_path / "meta.db")
    try:
        assert second.containers.get(NS, "c1") == created
    finally:
        second.close()
