"""The Python SDK for pycontainerd (and containerd): an asyncio client and a blocking wrapper.

``Client`` (asyncio) and ``pycontainerd.client.sync.Client`` (blocking) offer the
same services: namespaces, content, images, leases, events, introspection,
snapshots, diff, containers and tasks, ``pull``/``push`` between registries and
the content store, and ``import_archive``/``export_archive`` for OCI tarballs.
Spec options for containers are in :mod:`pycontainerd.oci`.
"""

from pycontainerd.client.cio import Stdio
from pycontainerd.client.client import Client
from pycontainerd.client.container import Container
from pycontainerd.client.containers import ContainerInfo
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
from pycontainerd.client.snapshots import SnapshotInfo, Usage
from pycontainerd.client.task import (
    ExecProcess,
    ExitStatus,
    Process,
    ProcessInfo,
    ProcessState,
    Task,
    TaskMetrics,
    TaskStatus,
)
from pycontainerd.remotes.resolver import match_localhost

__all__ = [
    "Client",
    "Container",
    "ContainerInfo",
    "ContentInfo",
    "ContentStatus",
    "Envelope",
    "ExecProcess",
    "ExitStatus",
    "Image",
    "Lease",
    "LeaseResource",
    "Namespace",
    "Plugin",
    "Process",
    "ProcessInfo",
    "ProcessState",
    "ProgressEvent",
    "SnapshotInfo",
    "Status",
    "Stdio",
    "Task",
    "TaskMetrics",
    "TaskStatus",
    "Usage",
    "Version",
    "match_localhost",
    "use_lease",
]
