"""Garbage collection in containerd's model: mark from roots, sweep the rest.

Roots, per namespace: images (their targets), unexpired leases (their
resources), content and snapshots labelled `containerd.io/gc.root`,
containers (their snapshots) and writes in progress that a lease holds or
whose expiry is ahead. References follow the `containerd.io/gc.ref.content*`
and `containerd.io/gc.ref.snapshot.<name>` labels, snapshot parents, and the
expected digest of an ingest. Whatever is left unmarked is removed from the
namespace; bytes, snapshots and abandoned writes that no namespace refers to
any more are then removed from disk. As in containerd, a write without a lease
is collected: after a failed pull, deleting the pull's lease frees its
half-written layers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pycontainerd.metadata.db import Database, frees_space, load_labels
from pycontainerd.metadata.leases import LABEL_GC_EXPIRE, LABEL_GC_FLAT, parse_expiry

log = logging.getLogger(__name__)

LABEL_GC_ROOT = "containerd.io/gc.root"
LABEL_GC_REF_CONTENT = "containerd.io/gc.ref.content"
LABEL_GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."

CONTENT = "content"
SNAPSHOT = "snapshot"
INGEST = "ingest"
# A node: (kind, namespace, key); a snapshot key is "<snapshotter>/<key>", an
# ingest's is the client's ref.
Node = tuple[str, str, str]


@dataclass
class Sweep:
    """What one collection removed from the metadata."""

    leases: list[tuple[str, str]] = field(default_factory=list)
    content: list[tuple[str, str]] = field(default_factory=list)
    ingests: list[tuple[str, str]] = field(default_factory=list)  # ns, ref
    snapshots: list[tuple[str, str, str, str]] = field(default_factory=list)  # ns, ss, key, backend
    duration: float = 0.0


def label_refs(namespace: str, labels: dict[str, str]) -> Iterable[Node]:
    """The nodes a set of gc.ref labels points at."""
    for key, value in labels.items():
        if key == LABEL_GC_REF_CONTENT or key.startswith(LABEL_GC_REF_CONTENT + "."):
            yield (CONTENT, namespace, value)
        elif key.startswith(LABEL_GC_REF_SNAPSHOT):
            snapshotter = key[len(LABEL_GC_REF_SNAPSHOT) :].split("/", 1)[0]
            if snapshotter:
                yield (SNAPSHOT, namespace, f"{snapshotter}/{value}")


class Collector:
    """Marks and sweeps the metadata; call `collect` on the database thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _expired_leases(self, now: datetime) -> list[tuple[str, str]]:
        expired = []
        for row in self.db.conn.execute("SELECT namespace, id, labels FROM leases"):
            value = load_labels(row["labels"]).get(LABEL_GC_EXPIRE)
            when = parse_expiry(value) if value else None
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            if when is not None and when <= now:
                expired.append((row["namespace"], row["id"]))
        return expired

    def next_lease_expiry(self) -> datetime | None:
        """When the soonest lease expires, so the scheduler can wake then."""
        soonest = None
        for row in self.db.query("SELECT labels FROM leases"):
            value = load_labels(row["labels"]).get(LABEL_GC_EXPIRE)
            when = parse_expiry(value) if value else None
            if when is not None:
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                soonest = when if soonest is None or when < soonest else soonest
        return soonest

    def _roots(self) -> tuple[set[Node], set[Node]]:
        """Roots, and the flat roots whose references are not followed."""
        c = self.db.conn
        roots: set[Node] = set()
        flat: set[Node] = set()
        flat_leases = {
            (r["namespace"], r["id"])
            for r in c.execute("SELECT namespace, id, labels FROM leases")
            if LABEL_GC_FLAT in load_labels(r["labels"])
        }
        for r in c.execute("SELECT namespace, lease, type, id FROM lease_resources"):
            target = flat if (r["namespace"], r["lease"]) in flat_leases else roots
            if r["type"] == "content":
                target.add((CONTENT, r["namespace"], r["id"]))
            elif r["type"] == "ingests":
                target.add((INGEST, r["namespace"], r["id"]))
            elif r["type"].startswith("snapshots/"):
                target.add((SNAPSHOT, r["namespace"], f"{r['type'][10:]}/{r['id']}"))
        for r in c.execute("SELECT namespace, digest, labels FROM images"):
            roots.add((CONTENT, r["namespace"], r["digest"]))
            roots.update(label_refs(r["namespace"], load_labels(r["labels"])))
        for r in c.execute(
            "SELECT namespace, ref FROM ingests WHERE expires_at > ?", (time.time_ns(),)
        ):
            roots.add((INGEST, r["namespace"], r["ref"]))
        for r in c.execute("SELECT namespace, digest, labels FROM content"):
            if LABEL_GC_ROOT in load_labels(r["labels"]):
                roots.add((CONTENT, r["namespace"], r["digest"]))
        for r in c.execute("SELECT namespace, snapshotter, key, labels FROM snapshots"):
            if LABEL_GC_ROOT in load_labels(r["labels"]):
                roots.add((SNAPSHOT, r["namespace"], f"{r['snapshotter']}/{r['key']}"))
        for r in c.execute("SELECT namespace, snapshotter, snapshot_key, labels FROM containers"):
            if r["snapshotter"] and r["snapshot_key"]:
                roots.add((SNAPSHOT, r["namespace"], f"{r['snapshotter']}/{r['snapshot_key']}"))
            roots.update(label_refs(r["namespace"], load_labels(r["labels"])))
        return roots, flat

    def _references(self, node: Node, follow_labels: bool) -> Iterable[Node]:
        kind, namespace, key = node
        c = self.db.conn
        if kind == INGEST:
            row = c.execute(
                "SELECT expected FROM ingests WHERE namespace = ? AND ref = ?", (namespace, key)
            ).fetchone()
            if row is not None and row["expected"]:
                yield (CONTENT, namespace, row["expected"])
        elif kind == CONTENT:
            row = c.execute(
                "SELECT labels FROM content WHERE namespace = ? AND digest = ?", (namespace, key)
            ).fetchone()
            if row is not None and follow_labels:
                yield from label_refs(namespace, load_labels(row["labels"]))
        else:
            snapshotter, _, name = key.partition("/")
            row = c.execute(
                "SELECT parent, labels FROM snapshots WHERE namespace = ? AND snapshotter = ?"
                " AND key = ?",
                (namespace, snapshotter, name),
            ).fetchone()
            if row is None:
                return
            if row["parent"]:
                yield (SNAPSHOT, namespace, f"{snapshotter}/{row['parent']}")
            if follow_labels:
                yield from label_refs(namespace, load_labels(row["labels"]))

    def _mark(self) -> set[Node]:
        roots, flat = self._roots()
        marked: set[Node] = set()
        stack = [(n, True) for n in roots] + [(n, False) for n in flat - roots]
        while stack:
            node, follow = stack.pop()
            if node in marked:
                continue
            marked.add(node)
            stack.extend((ref, follow) for ref in self._references(node, follow))
        return marked

    @frees_space
    def collect(self) -> Sweep:
        """One mark-and-sweep of the metadata, in a single transaction."""
        started = time.monotonic()
        sweep = Sweep()
        with self.db.tx() as c:
            for namespace, lease in self._expired_leases(datetime.now(UTC)):
                c.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (namespace, lease))
                c.execute(
                    "DELETE FROM lease_resources WHERE namespace = ? AND lease = ?",
                    (namespace, lease),
                )
                sweep.leases.append((namespace, lease))
            marked = self._mark()
            for r in c.execute("SELECT namespace, digest FROM content").fetchall():
                if (CONTENT, r["namespace"], r["digest"]) not in marked:
                    sweep.content.append((r["namespace"], r["digest"]))
            for namespace, digest in sweep.content:
                c.execute(
                    "DELETE FROM content WHERE namespace = ? AND digest = ?", (namespace, digest)
                )
            for r in c.execute("SELECT namespace, ref FROM ingests").fetchall():
                if (INGEST, r["namespace"], r["ref"]) not in marked:
                    sweep.ingests.append((r["namespace"], r["ref"]))
            for namespace, ref in sweep.ingests:
                c.execute("DELETE FROM ingests WHERE namespace = ? AND ref = ?", (namespace, ref))
            rows = c.execute(
                "SELECT namespace, snapshotter, key, backend_key FROM snapshots"
            ).fetchall()
            for r in rows:
                if (SNAPSHOT, r["namespace"], f"{r['snapshotter']}/{r['key']}") not in marked:
                    sweep.snapshots.append(
                        (r["namespace"], r["snapshotter"], r["key"], r["backend_key"])
                    )
            for namespace, snapshotter, key, _ in sweep.snapshots:
                c.execute(
                    "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
                    (namespace, snapshotter, key),
                )
        sweep.duration = time.monotonic() - started
        return sweep

    def referenced_digests(self) -> set[str]:
        return {r["digest"] for r in self.db.query("SELECT DISTINCT digest FROM content")}

    def referenced_ingests(self) -> set[str]:
        """The backend refs of the writes some namespace still has."""
        return {r["backend_ref"] for r in self.db.query("SELECT backend_ref FROM ingests")}

    def referenced_backend_snapshots(self, snapshotter: str) -> set[str]:
        rows = self.db.query(
            "SELECT backend_key FROM snapshots WHERE snapshotter = ?", (snapshotter,)
        )
        return {r["backend_key"] for r in rows}


BackendSweeper = Callable[[Collector, Sweep], None]
