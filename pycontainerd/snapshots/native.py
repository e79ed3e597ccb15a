"""The native snapshotter: every snapshot a full copy of its parent.

Slow and wasteful next to overlayfs, but it works on any filesystem and with
any kernel; the mounts are plain bind mounts of ``snapshots/<id>``.
"""

from __future__ import annotations

import os

from pycontainerd.mount import Mount
from pycontainerd.snapshots import fsutil
from pycontainerd.snapshots.api import Kind
from pycontainerd.snapshots.base import DirectorySnapshotter
from pycontainerd.snapshots.storage import Snapshot

PLUGIN_ID = "native"


class NativeSnapshotter(DirectorySnapshotter):
    """Snapshots as full directory copies under `root` (``.../io.containerd.snapshotter.v1.native``)."""

    def _layer_path(self, snapshot_id: int) -> str:
        return self.snapshot_dir(snapshot_id)

    def _populate(
        self, directory: str, kind: Kind, parent: str | None, labels: dict[str, str]
    ) -> None:
        if parent is None:
            os.chmod(directory, 0o755)
        else:
            fsutil.copy_tree(parent, directory)

    def _mounts(self, snapshot: Snapshot) -> list[Mount]:
        mode = "ro" if snapshot.kind == Kind.VIEW else "rw"
        return [Mount(type="bind", source=self.snapshot_dir(snapshot.id), options=[mode, "rbind"])]
