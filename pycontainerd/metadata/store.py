"""All namespaced metadata stores over one database."""

from __future__ import annotations

from collections.abc import Mapping

from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.containers import ContainerStore
from pycontainerd.metadata.content import NamespacedContentStore
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.gc import Collector
from pycontainerd.metadata.images import ImageStore
from pycontainerd.metadata.leases import LeaseStore
from pycontainerd.metadata.namespaces import NamespaceStore
from pycontainerd.metadata.snapshots import Snapshotters
from pycontainerd.snapshots.api import Snapshotter


class MetadataStore:
    def __init__(
        self,
        db: Database,
        content_backend: LocalContentStore,
        snapshotters: Mapping[str, Snapshotter] | None = None,
    ) -> None:
        self.db = db
        self.namespaces = NamespaceStore(db)
        self.images = ImageStore(db, self.namespaces)
        self.containers = ContainerStore(db, self.namespaces)
        self.leases = LeaseStore(db, self.namespaces)
        self.content = NamespacedContentStore(db, content_backend, self.namespaces, self.leases)
        self.collector = Collector(db)
        self.snapshots = Snapshotters(
            snapshotters or {}, db, self.namespaces, self.leases, self.collector
        )

    def close(self) -> None:
        self.db.close()
