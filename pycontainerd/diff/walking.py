"""The walking differ: containerd's default ``io.containerd.differ.v1.walking``.

It applies layers from the namespaced content store onto snapshot mounts and
compares two mounted trees into a new layer blob. Calls block (disk work,
mounts): run them in worker threads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from pycontainerd import errdefs
from pycontainerd.archive import (
    ApplyResult,
    Compression,
    compression_for_media_type,
    media_type_for,
)
from pycontainerd.archive.isolated import extract_isolated
from pycontainerd.diff.apply import apply_to_mounts
from pycontainerd.diff.compare import CompareOptions, compare_mounts
from pycontainerd.metadata.content import NamespacedContentStore
from pycontainerd.metadata.placement import in_worker
from pycontainerd.mount import MNT_DETACH, Mount, unmount_all
from pycontainerd.remotes.manifest import Descriptor

UNCOMPRESSED_LAYER_MEDIA_TYPE = media_type_for(Compression.NONE)

log = logging.getLogger(__name__)


class WalkingDiffer:
    """Apply and Compare over one content store; temporary mounts live under ``temp_root``."""

    def __init__(self, content: NamespacedContentStore, temp_root: Path) -> None:
        self.content = content
        self.temp_root = Path(temp_root)
        self.temp_root.mkdir(parents=True, exist_ok=True)

    @in_worker
    def apply(self, namespace: str, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        """Apply the layer ``desc`` onto ``mounts``.

        Returns the uncompressed layer: media type ``...layer.v1.tar``, the diff
        ID as digest and the tar's size. NotImplemented_ for media types that
        are not layers; InvalidArgument for corrupt or truncated blobs.
        """
        compression = compression_for_media_type(desc.media_type)
        self.content.info(namespace, desc.digest)  # NotFound unless this namespace has it
        with self.content.backend.open_blob(desc.digest) as blob:
            result = apply_to_mounts(
                blob, mounts, compression=compression, temp_root=self.temp_root
            )
        return Descriptor(UNCOMPRESSED_LAYER_MEDIA_TYPE, result.diff_id, result.size)

    @in_worker
    def extract_isolated(self, namespace: str, desc: Descriptor, target: Path) -> ApplyResult:
        """Extract the layer ``desc`` alone into the empty ``target``, in overlay form.

        See :mod:`pycontainerd.archive.isolated`; errors as :meth:`apply`.
        """
        compression = compression_for_media_type(desc.media_type)
        self.content.info(namespace, desc.digest)
        with self.content.backend.open_blob(desc.digest) as blob:
            return extract_isolated(target, blob, compression=compression)

    @in_worker
    def compare(
        self,
        namespace: str,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        options: CompareOptions | None = None,
    ) -> Descriptor:
        """Store the layer that turns ``lower`` into ``upper``; returns its descriptor."""
        return compare_mounts(
            self.content,
            namespace,
            lower,
            upper,
            options or CompareOptions(),
            temp_root=self.temp_root,
        )

    def cleanup(self) -> list[str]:
        """Unmount and remove what a crash left under the temporary mount root."""
        removed = []
        for entry in sorted(os.listdir(self.temp_root)):
            path = os.path.join(self.temp_root, entry)
            try:
                unmount_all(path, flags=MNT_DETACH)
                os.rmdir(path)
            except (OSError, errdefs.ContainerdError) as exc:
                log.warning("cannot clean up temporary mount %s: %s", path, exc)
                continue
            removed.append(path)
        return removed
