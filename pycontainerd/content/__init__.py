"""The local content store: blobs on disk addressed by digest, resumable writes."""

from pycontainerd.content.models import BlobInfo, IngestStatus, StoreUsage
from pycontainerd.content.store import CONTENT_PLUGIN_DIR, LocalContentStore
from pycontainerd.content.writer import IngestWriter

__all__ = [
    "CONTENT_PLUGIN_DIR",
    "BlobInfo",
    "IngestWriter",
    "IngestStatus",
    "LocalContentStore",
    "StoreUsage",
]
