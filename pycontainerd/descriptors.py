"""Descriptors between the API message and the registry client's plain object.

Shared by the services and the SDK, so neither depends on the other.
"""

from __future__ import annotations

from pycontainerd.api.types import descriptor_pb2
from pycontainerd.remotes.manifest import Descriptor


def descriptor_from_api(desc: descriptor_pb2.Descriptor) -> Descriptor:
    return Descriptor(desc.media_type, desc.digest, desc.size, dict(desc.annotations))


def descriptor_to_api(desc: Descriptor) -> descriptor_pb2.Descriptor:
    return descriptor_pb2.Descriptor(
        media_type=desc.media_type,
        digest=desc.digest,
        size=desc.size,
        annotations=dict(desc.annotations),
    )
