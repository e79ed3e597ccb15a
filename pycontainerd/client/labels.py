"""The SDK's name for :mod:`pycontainerd.distribution.labels` (the machinery lives below the SDK)."""

from pycontainerd.distribution.labels import (
    DISTRIBUTION_SOURCE_PREFIX,
    GC_REF_CONFIG,
    GC_REF_CONTENT,
    GC_REF_LAYER_PREFIX,
    GC_REF_MANIFEST_PREFIX,
    GC_REF_OTHER_PREFIX,
    MAX_LABEL_SIZE,
    DistributionSource,
    append_repository,
    child_gc_labels,
    child_label_key,
    is_layer_type,
    source_repositories,
)

__all__ = [
    "DISTRIBUTION_SOURCE_PREFIX",
    "DistributionSource",
    "GC_REF_CONFIG",
    "GC_REF_CONTENT",
    "GC_REF_LAYER_PREFIX",
    "GC_REF_MANIFEST_PREFIX",
    "GC_REF_OTHER_PREFIX",
    "MAX_LABEL_SIZE",
    "append_repository",
    "child_gc_labels",
    "child_label_key",
    "is_layer_type",
    "source_repositories",
]
