"""Progress reports of a pull or push, one event per change of a blob's state."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor


class Status(enum.StrEnum):
    RESOLVING = "resolving"
    RESOLVED = "resolved"
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    UPLOADING = "uploading"
    DONE = "done"
    EXISTS = "exists"


@dataclass(frozen=True)
class ProgressEvent:
    """``key`` names the item as ctr does (``layer-sha256:...``, or the image reference);
    ``offset`` is bytes done of ``total``."""

    key: str
    digest: str
    status: Status
    offset: int = 0
    total: int = 0


ProgressCallback = Callable[[ProgressEvent], None]


def ref_key(desc: Descriptor) -> str:
    """The ingest ref for a descriptor, named like containerd's remotes.MakeRefKey."""
    media_type = desc.media_type
    if mediatypes.is_manifest(media_type):
        kind = "manifest"
    elif mediatypes.is_index(media_type):
        kind = "index"
    elif mediatypes.is_config(media_type):
        kind = "config"
    elif mediatypes.is_layer(media_type) or media_type.startswith(
        "application/vnd.oci.image.layer."
    ):
        kind = "layer"
    else:
        kind = "unknown"
    return f"{kind}-{desc.digest}"


class Reporter:
    """Sends events to an optional callback."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback

    def __call__(
        self, key: str, digest: str, status: Status, offset: int = 0, total: int = 0
    ) -> None:
        if self._callback is None:
            return
        self._callback(ProgressEvent(key, digest, status, offset, total))

    def blob(self, desc: Descriptor, status: Status, offset: int = 0) -> None:
        self(ref_key(desc), desc.digest, status, offset, desc.size)
