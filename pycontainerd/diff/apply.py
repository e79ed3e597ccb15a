"""Apply a layer blob onto a snapshot given by its mounts.

A single overlay mount with an upper directory is written directly, in
overlayfs's whiteout form (character devices, opaque xattrs), as containerd's
fast path does: nothing is mounted and the lower layers are never copied up,
only read for the mode and owner of directories the layer implies.
Anything else (a bind mount of a native or base snapshot, a stack of mounts) is
mounted on a temporary directory and applied there with whiteouts as deletions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pycontainerd import errdefs
from pycontainerd.archive import ApplyResult, Compression, apply_layer
from pycontainerd.diff.mounts import writable_overlay
from pycontainerd.mount import Mount, temp_mount
from pycontainerd.streams import ReadStream


def apply_to_mounts(
    blob: ReadStream,
    mounts: Sequence[Mount],
    *,
    compression: Compression | None,
    temp_root: Path,
) -> ApplyResult:
    """Unpack ``blob`` onto the tree ``mounts`` describe; unmounts whatever it mounted.

    ``compression`` None detects it from the bytes. On failure the tree is left
    half-applied: the caller removes the snapshot.
    """
    if not mounts:
        raise errdefs.InvalidArgument(
            "apply needs the mounts of the snapshot to apply onto; none were given"
        )
    overlay = writable_overlay(mounts)
    if overlay is not None:
        return apply_layer(
            Path(overlay.upper),
            blob,
            whiteouts="overlay",
            compression=compression,
            parents=[Path(lower) for lower in overlay.lowers],
        )
    with temp_mount(mounts, parent=str(temp_root)) as root:
        return apply_layer(Path(root), blob, whiteouts="native", compression=compression)
