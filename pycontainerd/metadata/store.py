"""All namespaced metadata stores over one database."""

from __future__ import annotations

from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.content import NamespacedContentStore
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.gc import Collector
from pycontainerd.metadata.images import ImageStore
from pycontainerd.metadata.leases import LeaseStore
from pycontainerd.metadata.namespaces import NamespaceStore


class MetadataStore:
    def __init__(self, db: Database, content_backend: LocalContentStore) -> None:
        self.db = db
        self.namespaces = NamespaceStore(db)
        self.images = ImageStore(db, self.namespaces)
        self.leases = LeaseStore(db, self.namespaces)
        self.content = NamespacedContentStore(db, content_backend, self.namespaces, self.leases)
        self.collector = Collector(db)

    def close(self) -> None:
        self.db.close()
