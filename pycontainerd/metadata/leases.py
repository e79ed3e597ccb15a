"""Leases: named holds on content, snapshots and ingests, protecting them from GC."""

from __future__ import annotations

import builtins
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

from pycontainerd import errdefs
from pycontainerd.digest import parse_digest
from pycontainerd.identifiers import validate_labels, validate_lease_id
from pycontainerd.metadata.db import (
    Database,
    dump_labels,
    frees_space,
    from_ns,
    load_labels,
    now_ns,
)
from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.metadata.placement import lookup

LABEL_GC_EXPIRE = "containerd.io/gc.expire"
LABEL_GC_FLAT = "containerd.io/gc.flat"


@dataclass(frozen=True)
class Resource:
    id: str
    type: str  # "content", "ingests" or "snapshots/<snapshotter>"


@dataclass
class Lease:
    id: str
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


def validate_resource(resource: Resource) -> Resource:
    kind, _, sub = resource.type.partition("/")
    if kind in ("content", "ingests"):
        if sub:
            raise errdefs.InvalidArgument(f"invalid resource type {resource.type!r}")
        if kind == "content":
            try:
                parse_digest(resource.id)
            except errdefs.InvalidArgument as exc:
                raise errdefs.InvalidArgument(f"invalid content resource id: {exc}") from exc
    elif kind == "snapshots":
        if not sub or "/" in sub:
            raise errdefs.InvalidArgument(
                f"invalid snapshot resource type {resource.type!r}: use snapshots/<snapshotter>"
            )
    else:
        raise errdefs.NotImplemented_(f"resource type {resource.type!r} is not supported")
    if not resource.id:
        raise errdefs.InvalidArgument("resource id must not be empty")
    return resource


def parse_expiry(value: str) -> datetime | None:
    """An RFC 3339 expiry, or None when it does not parse (the label is then ignored)."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaseStore:
    def __init__(self, db: Database, namespaces: NamespaceStore) -> None:
        self.db = db
        self.namespaces = namespaces

    def create(self, namespace: str, lease_id: str, labels: dict[str, str]) -> Lease:
        if not lease_id:
            lease_id = f"{time.time_ns()}-{secrets.token_hex(6)}"
        validate_lease_id(lease_id)
        labels = validate_labels(labels)
        stamp = now_ns()
        with self.db.tx() as c:
            self.namespaces.ensure(namespace)
            if c.execute(
                "SELECT 1 FROM leases WHERE namespace = ? AND id = ?", (namespace, lease_id)
            ).fetchone():
                raise errdefs.AlreadyExists(f"lease {errdefs.echo(lease_id)} already exists")
            c.execute(
                "INSERT INTO leases(namespace, id, labels, created_at) VALUES (?, ?, ?, ?)",
                (namespace, lease_id, dump_labels(labels), stamp),
            )
        return Lease(lease_id, labels, from_ns(stamp))

    @lookup
    def list(self, namespace: str) -> list[Lease]:
        rows = self.db.query(
            "SELECT * FROM leases WHERE namespace = ? ORDER BY created_at, id", (namespace,)
        )
        return [
            Lease(
                r["id"],
                load_labels(r["labels"]),
                from_ns(r["created_at"]),
            )
            for r in rows
        ]

    def _require(self, namespace: str, lease_id: str) -> None:
        if not self.db.query(
            "SELECT 1 FROM leases WHERE namespace = ? AND id = ?", (namespace, lease_id)
        ):
            raise errdefs.NotFound(f"lease {errdefs.echo(lease_id)} does not exist")

    @frees_space
    def delete(self, namespace: str, lease_id: str) -> None:
        with self.db.tx() as c:
            self._require(namespace, lease_id)
            c.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (namespace, lease_id))
            c.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND lease = ?",
                (namespace, lease_id),
            )

    def add_resource(self, namespace: str, lease_id: str, resource: Resource) -> None:
        validate_resource(resource)
        with self.db.tx() as c:
            self._require(namespace, lease_id)
            c.execute(
                "INSERT OR IGNORE INTO lease_resources(namespace, lease, type, id)"
                " VALUES (?, ?, ?, ?)",
                (namespace, lease_id, resource.type, resource.id),
            )

    @frees_space
    def delete_resource(self, namespace: str, lease_id: str, resource: Resource) -> None:
        validate_resource(resource)
        with self.db.tx() as c:
            self._require(namespace, lease_id)
            c.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ?"
                " AND id = ?",
                (namespace, lease_id, resource.type, resource.id),
            )

    @lookup
    def list_resources(self, namespace: str, lease_id: str) -> builtins.list[Resource]:
        self._require(namespace, lease_id)
        rows = self.db.query(
            "SELECT type, id FROM lease_resources WHERE namespace = ? AND lease = ?"
            " ORDER BY type, id",
            (namespace, lease_id),
        )
        return [Resource(r["id"], r["type"]) for r in rows]
