"""The SDK's name for :mod:`pycontainerd.distribution.pull` (the machinery lives below the SDK)."""

from pycontainerd.distribution.pull import (
    DEFAULT_CONCURRENCY,
    DEFAULT_SNAPSHOTTER,
    Credentials,
    credentials_func,
    platform_policy,
    pull,
    run_together,
)

__all__ = [
    "Credentials",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_SNAPSHOTTER",
    "credentials_func",
    "platform_policy",
    "pull",
    "run_together",
]
