"""The SDK's name for :mod:`pycontainerd.distribution.unpack` (the machinery lives below the SDK)."""

from pycontainerd.distribution.unpack import (
    DEFAULT_SNAPSHOTTER,
    GC_REF_SNAPSHOT_PREFIX,
    INHERITED_LABEL_PREFIX,
    SNAPSHOT_REF_LABEL,
    UNCOMPRESSED_LABEL,
    UNPACK_KEY_PREFIX,
    BlobReady,
    UnpackStatus,
    chain_ids,
    gc_snapshot_label,
    image_layers,
    is_unpacked,
    unpack,
    unpack_image,
    unpack_key,
    unpack_layers,
)

__all__ = [
    "BlobReady",
    "DEFAULT_SNAPSHOTTER",
    "GC_REF_SNAPSHOT_PREFIX",
    "INHERITED_LABEL_PREFIX",
    "SNAPSHOT_REF_LABEL",
    "UNCOMPRESSED_LABEL",
    "UNPACK_KEY_PREFIX",
    "UnpackStatus",
    "chain_ids",
    "gc_snapshot_label",
    "image_layers",
    "is_unpacked",
    "unpack",
    "unpack_image",
    "unpack_key",
    "unpack_layers",
]
