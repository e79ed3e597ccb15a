"""Differs: apply layer blobs onto snapshot mounts, and compare two mounted trees.

``WalkingDiffer`` is the built-in (plugin ``io.containerd.differ.v1.walking``);
the diff gRPC service tries the configured differs in order.
"""

from pycontainerd.diff.compare import UNCOMPRESSED_LABEL, CompareOptions
from pycontainerd.diff.walking import WalkingDiffer

__all__ = ["UNCOMPRESSED_LABEL", "CompareOptions", "WalkingDiffer"]
