"""Containers: per-namespace metadata records (spec, runtime, snapshot), no processes.

Opaque values (the OCI spec, runtime options, extensions) are kept as the
type URL and bytes a client sent, and given back byte for byte. Update
follows containerd's field mask rules: `id`, `snapshotter` and the runtime
are fixed once created.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pycontainerd import errdefs, filters
from pycontainerd.identifiers import validate_identifier, validate_labels
from pycontainerd.metadata.db import (
    Database,
    dump_labels,
    frees_space,
    from_ns,
    load_labels,
    now_ns,
)
from pycontainerd.metadata.fieldpaths import apply_map_paths
from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.metadata.placement import lookup

# What an update without a field mask replaces (containerd's full-replace set).
FULL_REPLACE_PATHS = ("labels", "spec", "extensions", "image", "snapshotkey")


@dataclass(frozen=True)
class AnyValue:
    """A protobuf Any kept opaque: its type URL and its serialized bytes."""

    type_url: str
    value: bytes


@dataclass
class RuntimeInfo:
    name: str
    options: AnyValue | None = None


@dataclass
class Container:
    id: str
    runtime: RuntimeInfo = field(default_factory=lambda: RuntimeInfo(""))
    spec: AnyValue | None = None
    image: str = ""
    snapshotter: str = ""
    snapshot_key: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, AnyValue] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


def validate_container(container: Container) -> Container:
    """containerd's checks for a container record; drops labels with empty values."""
    validate_identifier(container.id, "container id")
    if any(key == "" for key in container.extensions):
        raise errdefs.InvalidArgument(
            f"container {container.id!r}: extension keys must not be empty"
        )
    container.labels = validate_labels(container.labels, f"container {container.id!r} labels")
    if not container.runtime.name:
        raise errdefs.InvalidArgument(
            f"container {container.id!r}: must specify a runtime name (e.g. io.containerd.runc.v2)"
        )
    if container.spec is None:
        raise errdefs.InvalidArgument(f"container {container.id!r}: a spec must be set")
    if container.snapshot_key and not container.snapshotter:
        raise errdefs.InvalidArgument(
            f"container {container.id!r}: snapshotter must be set when snapshot key is set"
        )
    return container


def container_adaptor(container: Container) -> filters.Adaptor:
    """The fields a list filter can select on."""
    return filters.adapt(
        {
            "id": container.id,
            "image": container.image,
            "runtime.name": container.runtime.name,
            "snapshotter": container.snapshotter,
        },
        container.labels,
    )


def apply_update(current: Container, requested: Container, paths: Iterable[str]) -> Container:
    """The record after applying an update's field paths to the current one."""
    paths = list(paths)
    if not paths:
        _refuse_immutable_changes(current, requested)
        paths = list(FULL_REPLACE_PATHS)
    labels, rest = apply_map_paths(current.labels, requested.labels, paths, "labels")
    # apply_map_paths fills a missing key with "", which removes it, as for labels.
    extensions, rest = apply_map_paths(
        current.extensions,  # type: ignore[arg-type]
        requested.extensions,  # type: ignore[arg-type]
        rest,
        "extensions",
    )
    updated = replace(
        current,
        labels=labels,
        extensions={k: v for k, v in extensions.items() if isinstance(v, AnyValue)},
    )
    for path in rest:
        if path == "spec":
            updated.spec = requested.spec
        elif path == "image":
            updated.image = requested.image
        elif path == "snapshotkey":
            updated.snapshot_key = requested.snapshot_key
        else:
            raise errdefs.InvalidArgument(
                f"cannot update {path!r} field on container {current.id!r}: "
                f"updatable fields are {', '.join(FULL_REPLACE_PATHS)}, labels.<key> "
                "and extensions.<key>"
            )
    return updated


def _refuse_immutable_changes(current: Container, requested: Container) -> None:
    if requested.snapshotter != current.snapshotter:
        raise errdefs.InvalidArgument(
            f"container {current.id!r}: snapshotter cannot change "
            f"(is {current.snapshotter!r}, update asks for {requested.snapshotter!r})"
        )
    if requested.runtime.name != current.runtime.name:
        raise errdefs.InvalidArgument(
            f"container {current.id!r}: runtime name cannot change "
            f"(is {current.runtime.name!r}, update asks for {requested.runtime.name!r})"
        )


def _ns(value: datetime | None) -> int:
    if value is None:
        return 0
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


def _any_or_none(type_url: str, value: bytes | None) -> AnyValue | None:
    return None if value is None else AnyValue(type_url, bytes(value))


def _dump_extensions(extensions: dict[str, AnyValue]) -> str:
    return json.dumps(
        {
            key: {"type_url": ext.type_url, "value": base64.b64encode(ext.value).decode()}
            for key, ext in extensions.items()
        },
        sort_keys=True,
    )


def _load_extensions(text: str) -> dict[str, AnyValue]:
    if not text or text == "{}":
        return {}
    return {
        key: AnyValue(ext["type_url"], base64.b64decode(ext["value"]))
        for key, ext in json.loads(text).items()
    }


# The columns a record is read from, in the order _from_row takes them: plain
# tuples index faster than sqlite3.Row looks names up (a List reads every row).
_SELECT = (
    "SELECT id, runtime_name, runtime_options_type, runtime_options, spec_type, spec, image,"
    " snapshotter, snapshot_key, labels, extensions, created_at, updated_at FROM containers"
)


def _from_row(row: tuple[Any, ...]) -> Container:
    (
        container_id,
        runtime_name,
        options_type,
        options,
        spec_type,
        spec,
        image,
        snapshotter,
        snapshot_key,
        labels,
        extensions,
        created_at,
        updated_at,
    ) = row
    return Container(
        id=container_id,
        runtime=RuntimeInfo(runtime_name, _any_or_none(options_type, options)),
        spec=_any_or_none(spec_type, spec),
        image=image,
        snapshotter=snapshotter,
        snapshot_key=snapshot_key,
        labels=load_labels(labels),
        extensions=_load_extensions(extensions),
        created_at=from_ns(created_at),
        updated_at=from_ns(updated_at),
    )


class ContainerStore:
    def __init__(self, db: Database, namespaces: NamespaceStore) -> None:
        self.db = db
        self.namespaces = namespaces

    @lookup
    def get(self, namespace: str, container_id: str) -> Container:
        rows = self.db.query_tuples(
            f"{_SELECT} WHERE namespace = ? AND id = ?", (namespace, container_id)
        )
        if not rows:
            raise errdefs.NotFound(
                f"container {container_id!r} not found in namespace {namespace!r}"
            )
        return _from_row(rows[0])

    @lookup
    def list(self, namespace: str) -> list[Container]:
        """Every container of the namespace; callers filter with `filters.select`."""
        rows = self.db.query_tuples(f"{_SELECT} WHERE namespace = ? ORDER BY id", (namespace,))
        return [_from_row(row) for row in rows]

    def create(self, namespace: str, container: Container) -> Container:
        container = validate_container(replace(container))
        with self.db.tx() as c:
            self.namespaces.ensure(namespace)
            exists = c.execute(
                "SELECT 1 FROM containers WHERE namespace = ? AND id = ?",
                (namespace, container.id),
            ).fetchone()
            if exists:
                raise errdefs.AlreadyExists(
                    f"container {container.id!r} already exists in namespace {namespace!r}"
                )
            stamp = now_ns()
            self._write(namespace, container, stamp, stamp)
        return self.get(namespace, container.id)

    def update(self, namespace: str, requested: Container, paths: Iterable[str]) -> Container:
        """Apply `paths` of `requested` (all updatable fields when there are none)."""
        if not requested.id:
            raise errdefs.InvalidArgument("container id is required for update")
        with self.db.tx():
            current = self.get(namespace, requested.id)
            updated = validate_container(apply_update(current, requested, paths))
            self._write(namespace, updated, _ns(current.created_at), now_ns(), overwrite=True)
        return self.get(namespace, requested.id)

    @frees_space
    def delete(self, namespace: str, container_id: str) -> None:
        with self.db.tx() as c:
            cur = c.execute(
                "DELETE FROM containers WHERE namespace = ? AND id = ?", (namespace, container_id)
            )
            if cur.rowcount == 0:
                raise errdefs.NotFound(
                    f"container {container_id!r} not found in namespace {namespace!r}"
                )

    def _write(
        self,
        namespace: str,
        container: Container,
        created: int,
        updated: int,
        overwrite: bool = False,
    ) -> None:
        verb = "INSERT OR REPLACE" if overwrite else "INSERT"
        options = container.runtime.options
        spec = container.spec
        self.db.conn.execute(
            f"{verb} INTO containers(namespace, id, image, runtime_name, runtime_options,"
            " runtime_options_type, spec, spec_type, snapshotter, snapshot_key, extensions,"
            " labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                container.id,
                container.image,
                container.runtime.name,
                None if options is None else options.value,
                "" if options is None else options.type_url,
                None if spec is None else spec.value,
                "" if spec is None else spec.type_url,
                container.snapshotter,
                container.snapshot_key,
                _dump_extensions(container.extensions),
                dump_labels(container.labels),
                created,
                updated,
            ),
        )
