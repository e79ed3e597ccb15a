"""Plugin registrations of the snapshotters (`io.containerd.snapshotter.v1`).

Each keeps its files under ``<root>/io.containerd.snapshotter.v1.<id>`` and
reclaims what a crash left behind before the daemon serves. overlayfs is
skipped, with the reason, on hosts where it cannot be mounted.
"""

from __future__ import annotations

from pycontainerd import errdefs, plugin
from pycontainerd.remotes.platforms import default_platform
from pycontainerd.snapshots.base import DirectorySnapshotter
from pycontainerd.snapshots.native import PLUGIN_ID as NATIVE_ID
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.snapshots.overlay import PLUGIN_ID as OVERLAY_ID
from pycontainerd.snapshots.overlay import OverlaySnapshotter


def _ready(ic: plugin.InitContext, snapshotter: DirectorySnapshotter) -> DirectorySnapshotter:
    ic.exports["root"] = str(ic.root)
    snapshotter.cleanup()
    return snapshotter


@plugin.register(plugin.SNAPSHOTTER, OVERLAY_ID)
def init_overlayfs(ic: plugin.InitContext) -> DirectorySnapshotter:
    ic.platforms.append(default_platform().to_dict())  # as containerd, even when skipped
    try:
        snapshotter = OverlaySnapshotter(ic.root)
    except errdefs.FailedPrecondition as exc:
        raise plugin.SkipPlugin(str(exc)) from exc
    return _ready(ic, snapshotter)


@plugin.register(plugin.SNAPSHOTTER, NATIVE_ID)
def init_native(ic: plugin.InitContext) -> DirectorySnapshotter:
    ic.platforms.append(default_platform().to_dict())
    return _ready(ic, NativeSnapshotter(ic.root))
