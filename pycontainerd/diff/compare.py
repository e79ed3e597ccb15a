"""Write the layer between two mounted trees into the content store.

Both trees are mounted read-only. When the upper tree is an overlay whose
lower layers are exactly the lower tree, its upper directory already holds
the changes and is read directly instead of comparing the two trees file by
file.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from pycontainerd import errdefs
from pycontainerd.archive import (
    Compression,
    DiffResult,
    compression_for_media_type,
    media_type_for,
    write_diff,
    write_diff_from_overlay_upper,
)
from pycontainerd.diff.mounts import layer_directories, readonly, writable_overlay
from pycontainerd.digest import Digest
from pycontainerd.metadata.content import ContentInfo, NamespacedContentStore
from pycontainerd.mount import Mount, temp_mount
from pycontainerd.remotes.manifest import Descriptor

#: Content label naming the digest of a compressed layer's uncompressed tar.
UNCOMPRESSED_LABEL = "containerd.io/uncompressed"
DEFAULT_DIFF_MEDIA_TYPE = media_type_for(Compression.GZIP)

LayerProducer = Callable[[BinaryIO], DiffResult]


@dataclass(frozen=True)
class CompareOptions:
    """What the caller of Compare (``ctr snapshots diff``) may choose.

    ``ref`` names the content write (a fresh one is made when empty); ``lease``
    keeps the new blob from the garbage collector until the caller is done.
    """

    media_type: str = ""
    ref: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    lease: str = ""


def diff_compression(media_type: str) -> Compression:
    """How to compress a diff written as ``media_type`` (NotImplemented_ if not a layer)."""
    compression = compression_for_media_type(media_type)
    # A Docker type that does not say (rootfs.diff.tar) is written uncompressed.
    return Compression.NONE if compression is None else compression


def compare_mounts(
    content: NamespacedContentStore,
    namespace: str,
    lower: Sequence[Mount],
    upper: Sequence[Mount],
    options: CompareOptions,
    *,
    temp_root: Path,
) -> Descriptor:
    """Store the layer turning ``lower`` into ``upper``; returns its descriptor."""
    media_type = options.media_type or DEFAULT_DIFF_MEDIA_TYPE
    compression = diff_compression(media_type)
    with temp_mount(readonly(lower), parent=str(temp_root)) as lower_root:
        overlay = writable_overlay(upper)
        if overlay is not None and layer_directories(lower) == overlay.lowers:

            def from_upper(out: BinaryIO) -> DiffResult:
                return write_diff_from_overlay_upper(
                    Path(overlay.upper), Path(lower_root), out, compression=compression
                )

            return store_layer(content, namespace, from_upper, media_type, options)
        with temp_mount(readonly(upper), parent=str(temp_root)) as upper_root:

            def by_walking(out: BinaryIO) -> DiffResult:
                return write_diff(Path(lower_root), Path(upper_root), out, compression=compression)

            return store_layer(content, namespace, by_walking, media_type, options)


def store_layer(
    content: NamespacedContentStore,
    namespace: str,
    produce: LayerProducer,
    media_type: str,
    options: CompareOptions,
) -> Descriptor:
    """Stream ``produce``'s layer into a content write and commit it, labelled."""
    ref = options.ref or unique_ref()
    writer = content.writer(namespace, ref, lease=options.lease)
    try:
        if options.ref:
            writer.truncate(0)  # a named write may hold bytes of an earlier try
        result = produce(cast(BinaryIO, writer))
        labels = {**options.labels, UNCOMPRESSED_LABEL: result.diff_id}
        try:
            digest = writer.commit(result.size, Digest(result.digest), labels)
        except errdefs.AlreadyExists:
            # This namespace holds the same layer already; the write is spent.
            digest = result.digest
            writer.close()
            _abort_quietly(content, namespace, ref)
    except BaseException:
        writer.close()
        if not options.ref:  # a write the caller named stays, as containerd leaves it
            _abort_quietly(content, namespace, ref)
        raise
    finally:
        writer.close()
    info = _with_uncompressed_label(content, namespace, digest, result.diff_id)
    return Descriptor(media_type, info.digest, info.size)


def _abort_quietly(content: NamespacedContentStore, namespace: str, ref: str) -> None:
    with contextlib.suppress(errdefs.NotFound):
        content.abort(namespace, ref)


def _with_uncompressed_label(
    content: NamespacedContentStore, namespace: str, digest: str, diff_id: str
) -> ContentInfo:
    """The blob's info, its uncompressed label added when an earlier write lacked it."""
    info = content.info(namespace, digest)
    if UNCOMPRESSED_LABEL in info.labels:
        return info
    wanted = ContentInfo(digest, 0, {UNCOMPRESSED_LABEL: diff_id})
    return content.update(namespace, wanted, [f"labels.{UNCOMPRESSED_LABEL}"])


def unique_ref() -> str:
    """A content write ref no other diff uses (time plus randomness, like containerd's)."""
    return f"diff-{time.time_ns()}-{secrets.token_urlsafe(6)}"
