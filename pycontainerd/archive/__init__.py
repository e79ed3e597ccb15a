"""Layer apply and diff: tar streams, gzip/zstd, OCI whiteouts.

The diff service builds on two calls: ``apply_layer`` unpacks a layer into a
snapshot (overlay upper dir or native full copy) and returns its diff ID, and
``write_diff`` / ``write_diff_from_overlay_upper`` produce a layer from two trees.
"""

from pycontainerd.archive.apply import ApplyResult, WhiteoutMode, apply_layer
from pycontainerd.archive.compression import (
    Compression,
    compression_for_media_type,
    decompress_stream,
    detect_compression,
    media_type_for,
)
from pycontainerd.archive.diff import DiffResult, write_diff, write_diff_from_overlay_upper

__all__ = [
    "ApplyResult",
    "Compression",
    "DiffResult",
    "WhiteoutMode",
    "apply_layer",
    "compression_for_media_type",
    "decompress_stream",
    "detect_compression",
    "media_type_for",
    "write_diff",
    "write_diff_from_overlay_upper",
]
