"""Sandbox records per namespace, in the metadata database (containerd 2's sandbox store).

A record is plain data: its runtime, spec, labels and extensions are kept
opaque (type URL and bytes), as containers' are. The table is this store's
own, made when the store opens; every change is one transaction.
"""

from __future__ import annotations

import base64
import builtins
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from pycontainerd import errdefs
from pycontainerd.identifiers import validate_identifier, validate_labels
from pycontainerd.metadata.containers import AnyValue
from pycontainerd.metadata.db import Database, dump_labels, from_ns, load_labels, now_ns
from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.metadata.placement import lookup

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandboxes (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
)
"""

#: What an update with no field list replaces (containerd's sandbox store).
FULL_REPLACE_FIELDS = ("runtime", "spec", "labels", "extensions", "sandboxer")


@dataclass
class Sandbox:
    id: str
    runtime_name: str
    runtime_options: AnyValue | None = None
    spec: AnyValue | None = None
    labels: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, AnyValue] = field(default_factory=dict)
    sandboxer: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _dump_any(value: AnyValue | None) -> dict[str, str] | None:
    if value is None:
        return None
    return {"type_url": value.type_url, "value": base64.b64encode(value.value).decode()}


def _load_any(data: dict[str, str] | None) -> AnyValue | None:
    if data is None:
        return None
    return AnyValue(data["type_url"], base64.b64decode(data["value"]))


def _dump(sandbox: Sandbox) -> str:
    return json.dumps(
        {
            "runtime_name": sandbox.runtime_name,
            "runtime_options": _dump_any(sandbox.runtime_options),
            "spec": _dump_any(sandbox.spec),
            "labels": dump_labels(sandbox.labels),
            "extensions": {k: _dump_any(v) for k, v in sandbox.extensions.items()},
            "sandboxer": sandbox.sandboxer,
        },
        sort_keys=True,
    )


def _load(row: sqlite3.Row) -> Sandbox:
    data = json.loads(row["record"])
    extensions = {k: _load_any(v) for k, v in data["extensions"].items()}
    return Sandbox(
        id=row["id"],
        runtime_name=data["runtime_name"],
        runtime_options=_load_any(data["runtime_options"]),
        spec=_load_any(data["spec"]),
        labels=load_labels(data["labels"]),
        extensions={k: v for k, v in extensions.items() if v is not None},
        sandboxer=data["sandboxer"],
        created_at=from_ns(row["created_at"]),
        updated_at=from_ns(row["updated_at"]),
    )


def _validate(sandbox: Sandbox) -> Sandbox:
    validate_identifier(sandbox.id, "sandbox id")
    if not sandbox.runtime_name:
        raise errdefs.InvalidArgument(f"sandbox {sandbox.id!r}: the runtime name must be set")
    sandbox.labels = validate_labels(sandbox.labels, f"sandbox {sandbox.id!r} labels")
    return sandbox


def apply_update(current: Sandbox, requested: Sandbox, fields: Iterable[str]) -> Sandbox:
    updated = replace(current, labels=dict(current.labels), extensions=dict(current.extensions))
    for path in list(fields) or FULL_REPLACE_FIELDS:
        if path == "labels":
            updated.labels = dict(requested.labels)
        elif path.startswith("labels."):
            key = path.removeprefix("labels.")
            updated.labels[key] = requested.labels.get(key, "")
        elif path == "extensions":
            updated.extensions = dict(requested.extensions)
        elif path.startswith("extensions."):
            key = path.removeprefix("extensions.")
            if key in requested.extensions:
                updated.extensions[key] = requested.extensions[key]
            else:
                updated.extensions.pop(key, None)
        elif path == "runtime":
            updated.runtime_name = requested.runtime_name
            updated.runtime_options = requested.runtime_options
        elif path == "spec":
            updated.spec = requested.spec
        elif path == "sandboxer":
            updated.sandboxer = requested.sandboxer
        else:
            raise errdefs.InvalidArgument(
                f"cannot update {path!r} field on sandbox {current.id!r}: updatable fields "
                f"are {', '.join(FULL_REPLACE_FIELDS)}, labels.<key> and extensions.<key>"
            )
    updated.labels = {k: v for k, v in updated.labels.items() if v}
    return updated


class SandboxStore:
    def __init__(self, db: Database, namespaces: NamespaceStore) -> None:
        self.db = db
        self.namespaces = namespaces
        with db.tx() as c:
            c.execute(_SCHEMA)

    def _row(self, namespace: str, sandbox_id: str) -> sqlite3.Row:
        rows = self.db.query(
            "SELECT * FROM sandboxes WHERE namespace = ? AND id = ?", (namespace, sandbox_id)
        )
        if not rows:
            raise errdefs.NotFound(f"sandbox {errdefs.echo(sandbox_id)} not found")
        return rows[0]

    @lookup
    def get(self, namespace: str, sandbox_id: str) -> Sandbox:
        return _load(self._row(namespace, sandbox_id))

    def list(self, namespace: str) -> builtins.list[Sandbox]:
        rows = self.db.query(
            "SELECT * FROM sandboxes WHERE namespace = ? ORDER BY created_at, id", (namespace,)
        )
        return [_load(row) for row in rows]

    def create(self, namespace: str, sandbox: Sandbox) -> Sandbox:
        sandbox = _validate(sandbox)
        stamp = now_ns()
        with self.db.tx() as c:
            self.namespaces.ensure(namespace)
            try:
                c.execute(
                    "INSERT INTO sandboxes(namespace, id, record, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (namespace, sandbox.id, _dump(sandbox), stamp, stamp),
                )
            except sqlite3.IntegrityError:
                raise errdefs.AlreadyExists(
                    f"sandbox {errdefs.echo(sandbox.id)} already exists"
                ) from None
        return self.get(namespace, sandbox.id)

    def update(self, namespace: str, sandbox: Sandbox, fields: builtins.list[str]) -> Sandbox:
        with self.db.tx() as c:
            current = self.get(namespace, sandbox.id)
            updated = _validate(apply_update(current, sandbox, fields))
            c.execute(
                "UPDATE sandboxes SET record = ?, updated_at = ? WHERE namespace = ? AND id = ?",
                (_dump(updated), now_ns(), namespace, sandbox.id),
            )
        return self.get(namespace, sandbox.id)

    def delete(self, namespace: str, sandbox_id: str) -> None:
        with self.db.tx() as c:
            deleted = c.execute(
                "DELETE FROM sandboxes WHERE namespace = ? AND id = ?", (namespace, sandbox_id)
            ).rowcount
        if not deleted:
            raise errdefs.NotFound(f"sandbox {errdefs.echo(sandbox_id)} not found")
