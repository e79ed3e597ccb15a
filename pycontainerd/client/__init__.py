"""The Python SDK for pycontainerd (and containerd): an asyncio client and a blocking wrapper.

``Client`` (asyncio) and ``pycontainerd.client.sync.Client`` (blocking) offer the
same services: namespaces, content, images, leases, events, introspection, and
``pull``/``push`` between registries and the content store.
"""

from pycontainerd.client.client import Client
from pycontainerd.client.models import (
    ContentInfo,
    ContentStatus,
    Envelope,
    Image,
    Lease,
    LeaseResource,
    Namespace,
    Plugin,
    Version,
)
from pycontainerd.client.progress import ProgressEvent, Status
from pycontainerd.client.rpc import use_lease

__all__ = [
    "Client",
    "ContentInfo",
    "ContentStatus",
    "Envelope",
    "Image",
    "Lease",
    "LeaseResource",
    "Namespace",
    "Plugin",
    "ProgressEvent",
    "Status",
    "Version",
    "use_lease",
]
