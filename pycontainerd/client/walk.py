"""The SDK's name for :mod:`pycontainerd.distribution.walk` (the machinery lives below the SDK)."""

from pycontainerd.distribution.walk import (
    ChildPolicy,
    ImageWalk,
    LabelsFor,
    WalkTarget,
    document_children,
)

__all__ = [
    "ChildPolicy",
    "ImageWalk",
    "LabelsFor",
    "WalkTarget",
    "document_children",
]
