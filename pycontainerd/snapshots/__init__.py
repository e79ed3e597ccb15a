"""Snapshotters: the storage of container root filesystems, below namespacing.

`OverlaySnapshotter` (overlayfs layers) and `NativeSnapshotter` (full copies)
both implement the `Snapshotter` protocol of `api`.
"""

from pycontainerd.snapshots.api import Kind, SnapshotInfo, Snapshotter, Usage, WalkFilter
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.snapshots.overlay import OverlaySnapshotter

__all__ = [
    "Kind",
    "NativeSnapshotter",
    "OverlaySnapshotter",
    "SnapshotInfo",
    "Snapshotter",
    "Usage",
    "WalkFilter",
]
