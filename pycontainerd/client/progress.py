"""The SDK's name for :mod:`pycontainerd.distribution.progress` (the machinery lives below the SDK)."""

from pycontainerd.distribution.progress import (
    ProgressCallback,
    ProgressEvent,
    Reporter,
    Status,
    ref_key,
)

__all__ = [
    "ProgressCallback",
    "ProgressEvent",
    "Reporter",
    "Status",
    "ref_key",
]
