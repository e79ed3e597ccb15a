"""Namespaces: created explicitly or implicitly by the first object put in them."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from pycontainerd import errdefs
from pycontainerd.identifiers import validate_identifier, validate_labels
from pycontainerd.metadata.db import Database, dump_labels, frees_space, load_labels
from pycontainerd.metadata.fieldpaths import apply_map_paths, refuse_unknown
from pycontainerd.metadata.placement import lookup

# Tables whose rows keep a namespace from being deleted, with the word
# containerd uses for them in its refusal.
_NAMESPACED_TABLES = (
    ("images", "images"),
    ("content", "blobs"),
    ("leases", "leases"),
    ("containers", "containers"),
    ("snapshots", "snapshots"),
)


@dataclass
class Namespace:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


class NamespaceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure(self, name: str) -> None:
        """Create the namespace if missing (every write in a namespace calls this)."""
        validate_identifier(name, "namespace")
        with self.db.tx() as c:
            c.execute("INSERT OR IGNORE INTO namespaces(name) VALUES (?)", (name,))

    def create(self, name: str, labels: dict[str, str]) -> Namespace:
        validate_identifier(name, "namespace")
        labels = validate_labels(labels)
        with self.db.tx() as c:
            if c.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise errdefs.AlreadyExists(f"namespace {name!r} already exists")
            c.execute(
                "INSERT INTO namespaces(name, labels) VALUES (?, ?)", (name, dump_labels(labels))
            )
        return Namespace(name, labels)

    def get(self, name: str) -> Namespace:
        rows = self.db.query("SELECT name, labels FROM namespaces WHERE name = ?", (name,))
        if not rows:
            raise errdefs.NotFound(f"namespace {name!r} does not exist")
        return Namespace(rows[0]["name"], load_labels(rows[0]["labels"]))

    @lookup
    def labels(self, name: str) -> dict[str, str]:
        """The namespace's labels; none for a namespace not created yet (as containerd)."""
        rows = self.db.query("SELECT labels FROM namespaces WHERE name = ?", (name,))
        return load_labels(rows[0]["labels"]) if rows else {}

    @lookup
    def list(self) -> list[Namespace]:
        rows = self.db.query("SELECT name, labels FROM namespaces ORDER BY name")
        return [Namespace(r["name"], load_labels(r["labels"])) for r in rows]

    def update(self, ns: Namespace, paths: builtins.list[str]) -> Namespace:
        """Set labels; like containerd's ``SetLabel``, a namespace not created yet is made.

        Clients label their namespace (e.g. ``containerd.io/defaults/snapshotter``)
        before anything else is in it. Only a full replace with no labels leaves a
        missing namespace missing, as in containerd.
        """
        validate_identifier(ns.name, "namespace")
        with self.db.tx():
            current = Namespace(ns.name, self.labels(ns.name))
            if paths:
                labels, rest = apply_map_paths(current.labels, ns.labels, paths, "labels")
                refuse_unknown(rest, "namespace", ns.name)
            else:
                labels = dict(ns.labels)
            labels = validate_labels(labels)
            if paths or ns.labels:
                self.db.conn.execute(
                    "INSERT INTO namespaces(name, labels) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET labels = excluded.labels",
                    (ns.name, dump_labels(labels)),
                )
            else:
                self.db.conn.execute(
                    "UPDATE namespaces SET labels = ? WHERE name = ?",
                    (dump_labels(labels), ns.name),
                )
        return Namespace(ns.name, labels)

    @frees_space
    def delete(self, name: str) -> None:
        with self.db.tx() as c:
            if not c.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise errdefs.NotFound(f"namespace {name!r} does not exist")
            held = [
                word
                for table, word in _NAMESPACED_TABLES
                if c.execute(
                    f"SELECT 1 FROM {table} WHERE namespace = ? LIMIT 1", (name,)
                ).fetchone()
            ]
            if held:
                raise errdefs.FailedPrecondition(
                    f"namespace {name!r} must be empty, but it still has {', '.join(held)}: "
                    "remove them first"
                )
            c.execute("DELETE FROM ingests WHERE namespace = ?", (name,))
            c.execute("DELETE FROM namespaces WHERE name = ?", (name,))
