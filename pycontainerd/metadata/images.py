"""Images: a name pointing at a target descriptor, per namespace."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field
from datetime import datetime

from pycontainerd import errdefs
from pycontainerd.digest import parse_digest
from pycontainerd.identifiers import validate_labels
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


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Image:
    name: str
    target: Descriptor
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


def validate_image(image: Image) -> Image:
    if not image.name:
        raise errdefs.InvalidArgument("image name must not be empty")
    image.labels = validate_labels(image.labels, f"image {image.name!r} labels")
    target = image.target
    try:
        parse_digest(target.digest)
    except errdefs.InvalidArgument as exc:
        raise errdefs.InvalidArgument(f"image {image.name!r}: target digest: {exc}") from exc
    if target.size <= 0:
        raise errdefs.InvalidArgument(f"image {image.name!r}: target size must be greater than 0")
    if not target.media_type:
        raise errdefs.InvalidArgument(f"image {image.name!r}: target media type must be set")
    return image


def _apply_path(current: Image, requested: Image, path: str) -> Image:
    """One update field path, in containerd's order of precedence."""
    target = current.target
    labels = dict(current.labels)
    annotations = dict(target.annotations)
    if path == "labels":
        labels = dict(requested.labels)
    elif path.startswith("labels."):
        key = path[len("labels.") :]
        labels[key] = requested.labels.get(key, "")
    elif path == "target":
        target = requested.target
        annotations = dict(target.annotations)
    elif path == "annotations":
        annotations = dict(requested.target.annotations)
    elif path.startswith("annotations."):
        key = path[len("annotations.") :]
        annotations[key] = requested.target.annotations.get(key, "")
    else:
        raise errdefs.InvalidArgument(f"cannot update {path!r} field on image {current.name!r}")
    annotations = {k: v for k, v in annotations.items() if v != ""}
    new_target = Descriptor(target.media_type, target.digest, target.size, annotations)
    return Image(current.name, new_target, labels, current.created_at, current.updated_at)


class ImageStore:
    def __init__(self, db: Database, namespaces: NamespaceStore) -> None:
        self.db = db
        self.namespaces = namespaces

    @staticmethod
    def _from_row(row) -> Image:
        return Image(
            name=row["name"],
            target=Descriptor(
                row["media_type"], row["digest"], row["size"], json.loads(row["annotations"])
            ),
            labels=load_labels(row["labels"]),
            created_at=from_ns(row["created_at"]),
            updated_at=from_ns(row["updated_at"]),
        )

    @lookup
    def get(self, namespace: str, name: str) -> Image:
        rows = self.db.query(
            "SELECT * FROM images WHERE namespace = ? AND name = ?", (namespace, name)
        )
        if not rows:
            raise errdefs.NotFound(f"image {name!r} not found in namespace {namespace!r}")
        return self._from_row(rows[0])

    @lookup
    def list(self, namespace: str) -> list[Image]:
        rows = self.db.query("SELECT * FROM images WHERE namespace = ? ORDER BY name", (namespace,))
        return [self._from_row(r) for r in rows]

    def create(self, namespace: str, image: Image) -> Image:
        validate_image(image)
        stamp = now_ns()
        with self.db.tx() as c:
            self.namespaces.ensure(namespace)
            exists = c.execute(
                "SELECT 1 FROM images WHERE namespace = ? AND name = ?", (namespace, image.name)
            ).fetchone()
            if exists:
                raise errdefs.AlreadyExists(f"image {image.name!r} already exists")
            self._write(namespace, image, stamp, stamp)
        return self.get(namespace, image.name)

    def update(self, namespace: str, image: Image, paths: builtins.list[str]) -> Image:
        if not image.name:
            raise errdefs.InvalidArgument("image name is required for update")
        with self.db.tx():
            current = self.get(namespace, image.name)
            updated = Image(image.name, image.target, image.labels) if not paths else current
            for path in paths:
                updated = _apply_path(updated, image, path)
            validate_image(updated)
            created_ns = self.db.conn.execute(
                "SELECT created_at FROM images WHERE namespace = ? AND name = ?",
                (namespace, image.name),
            ).fetchone()[0]
            self._write(namespace, updated, created_ns, now_ns(), replace=True)
        return self.get(namespace, image.name)

    def _write(
        self, namespace: str, image: Image, created: int, updated: int, replace: bool = False
    ) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        self.db.conn.execute(
            f"{verb} INTO images(namespace, name, media_type, digest, size, annotations, labels,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                image.name,
                image.target.media_type,
                image.target.digest,
                image.target.size,
                json.dumps(image.target.annotations, sort_keys=True),
                dump_labels(image.labels),
                created,
                updated,
            ),
        )

    @frees_space
    def delete(self, namespace: str, name: str) -> None:
        with self.db.tx() as c:
            cur = c.execute(
                "DELETE FROM images WHERE namespace = ? AND name = ?", (namespace, name)
            )
            if cur.rowcount == 0:
                raise errdefs.NotFound(f"image {name!r} not found in namespace {namespace!r}")
