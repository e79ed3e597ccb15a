"""The overlayfs snapshotter: each snapshot's own changes in ``snapshots/<id>/fs``.

A snapshot with parents is an overlay mount whose lower layers are the
parents' ``fs`` directories (nearest first); an active one adds its own ``fs``
as upper layer and ``work`` as overlayfs's scratch directory. Snapshots
without parents, and views of a single parent, need no overlay: a bind mount
does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from pycontainerd import errdefs, mount
from pycontainerd.mount import Mount
from pycontainerd.snapshots.api import Kind
from pycontainerd.snapshots.base import DirectorySnapshotter
from pycontainerd.snapshots.storage import Snapshot

PLUGIN_ID = "overlayfs"
UID_MAPPING_LABEL = "containerd.io/snapshot/uidmapping"
GID_MAPPING_LABEL = "containerd.io/snapshot/gidmapping"
#: Present when the kernel's overlayfs knows the ``index`` option.
_INDEX_PARAMETER = "/sys/module/overlay/parameters/index"


def remapped_root(labels: dict[str, str]) -> tuple[int, int] | None:
    """The host uid and gid of a user namespace's root, from ``--remap-labels``.

    As containerd's overlayfs does, the new snapshot's own directory (the top of
    the merged view) goes to that root, so the container's root may create
    entries at ``/`` (``/run``, ...). Lower layers keep their owners. None without
    the labels.
    """
    uidmap, gidmap = labels.get(UID_MAPPING_LABEL), labels.get(GID_MAPPING_LABEL)
    if uidmap is None and gidmap is None:
        return None
    return _root_of(uidmap or "", "uid"), _root_of(gidmap or "", "gid")


def _root_of(mappings: str, kind: str) -> int:
    for mapping in filter(None, mappings.split(",")):
        try:
            inside, host, size = (int(part) for part in mapping.split(":"))
        except ValueError:
            raise errdefs.InvalidArgument(
                f"{kind} mapping {mapping!r} is not <container>:<host>:<size>"
            ) from None
        if inside == 0 and size > 0:
            return host
    raise errdefs.InvalidArgument(f"the {kind} mappings {mappings!r} do not map the root")


class OverlaySnapshotter(DirectorySnapshotter):
    """Snapshots as overlayfs layers under `root` (``.../io.containerd.snapshotter.v1.overlayfs``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        if not self.supported(root):
            raise errdefs.FailedPrecondition(
                f"overlayfs cannot be mounted from {root}: load the overlay module, or put "
                "the root on a filesystem overlayfs accepts as upper layer (ext4, xfs), "
                "or use the native snapshotter"
            )
        super().__init__(root)
        self._index_off = os.path.exists(_INDEX_PARAMETER)

    @staticmethod
    def supported(root: str | os.PathLike[str]) -> bool:
        """Whether an overlay with two lower layers can be mounted inside `root`."""
        os.makedirs(root, mode=0o700, exist_ok=True)
        probe = tempfile.mkdtemp(prefix="overlay-check-", dir=root)
        try:
            for name in ("lower1", "lower2", "upper", "work", "merged"):
                os.mkdir(os.path.join(probe, name))
            options = [
                f"lowerdir={probe}/lower2:{probe}/lower1",
                f"upperdir={probe}/upper",
                f"workdir={probe}/work",
            ]
            merged = os.path.join(probe, "merged")
            try:
                Mount(type="overlay", source="overlay", options=options).mount(merged)
            except errdefs.ContainerdError:
                return False
            mount.unmount(merged)
            return True
        finally:
            with contextlib.suppress(errdefs.ContainerdError):
                mount.unmount_all(probe, flags=mount.MNT_DETACH)
            shutil.rmtree(probe, ignore_errors=True)

    def _fs(self, snapshot_id: int) -> str:
        return os.path.join(self.snapshot_dir(snapshot_id), "fs")

    def _layer_path(self, snapshot_id: int) -> str:
        return self._fs(snapshot_id)

    def _populate(
        self, directory: str, kind: Kind, parent: str | None, labels: dict[str, str]
    ) -> None:
        fs = os.path.join(directory, "fs")
        os.mkdir(fs)
        os.chmod(fs, 0o755)
        self._own_root(fs, parent, labels)
        if kind == Kind.ACTIVE:
            os.mkdir(os.path.join(directory, "work"), 0o711)

    @staticmethod
    def _own_root(fs: str, parent: str | None, labels: dict[str, str]) -> None:
        owner = remapped_root(labels)
        if owner is None and parent is not None:
            # The root directory of the merged view takes its owner from the upper layer.
            st = os.lstat(os.path.join(parent, "fs"))
            owner = st.st_uid, st.st_gid
        if owner is not None:
            os.lchown(fs, *owner)

    #: A snapshot's ``fs`` is its layer alone, whatever lies below it.
    supports_rebase = True

    def _rebased(self, directory: str, parent: str, labels: dict[str, str]) -> None:
        """The root directory's owner, as a prepare on ``parent`` would have set it."""
        self._own_root(os.path.join(directory, "fs"), parent, labels)

    def _mounts(self, snapshot: Snapshot) -> list[Mount]:
        parents = snapshot.parent_ids
        if not parents:
            mode = "ro" if snapshot.kind == Kind.VIEW else "rw"
            return [Mount(type="bind", source=self._fs(snapshot.id), options=[mode, "rbind"])]
        if snapshot.kind == Kind.VIEW and len(parents) == 1:
            return [Mount(type="bind", source=self._fs(parents[0]), options=["ro", "rbind"])]
        options = ["index=off"] if self._index_off else []
        if snapshot.kind == Kind.ACTIVE:
            options += [
                f"workdir={os.path.join(self.snapshot_dir(snapshot.id), 'work')}",
                f"upperdir={self._fs(snapshot.id)}",
            ]
        options.append("lowerdir=" + ":".join(self._fs(p) for p in parents))
        return [Mount(type="overlay", source="overlay", options=options)]
