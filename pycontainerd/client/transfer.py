"""The SDK's name for :mod:`pycontainerd.distribution.fetch` (the machinery lives below the SDK)."""

from pycontainerd.distribution.fetch import (
    CONCURRENT_SENDS,
    LOCKED_RETRY_DELAYS,
    WRITE_CHUNK_SIZE,
    RegistryToContent,
)
from pycontainerd.distribution.gate import PriorityGate

__all__ = [
    "CONCURRENT_SENDS",
    "LOCKED_RETRY_DELAYS",
    "PriorityGate",
    "RegistryToContent",
    "WRITE_CHUNK_SIZE",
]
