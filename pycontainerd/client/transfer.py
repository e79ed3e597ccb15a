"""The SDK's name for :mod:`pycontainerd.distribution.fetch` (the machinery lives below the SDK)."""

from pycontainerd.distribution.fetch import (
    CONCURRENT_SENDS,
    DOWNLOAD_FRAME_SIZE,
    LOCKED_RETRY_DELAYS,
    RegistryToContent,
)
from pycontainerd.distribution.frames import WRITE_CHUNK_SIZE
from pycontainerd.distribution.gate import PriorityGate

__all__ = [
    "CONCURRENT_SENDS",
    "DOWNLOAD_FRAME_SIZE",
    "LOCKED_RETRY_DELAYS",
    "PriorityGate",
    "RegistryToContent",
    "WRITE_CHUNK_SIZE",
]
