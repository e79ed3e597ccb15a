"""The SDK's name for :mod:`pycontainerd.distribution.push` (the machinery lives below the SDK)."""

from pycontainerd.distribution.push import (
    DEFAULT_CONCURRENCY,
    IN_MEMORY_LIMIT,
    ContentStreamReader,
    PushPlan,
    RegistryPush,
    plan_push,
    push,
)

__all__ = [
    "ContentStreamReader",
    "DEFAULT_CONCURRENCY",
    "IN_MEMORY_LIMIT",
    "PushPlan",
    "RegistryPush",
    "plan_push",
    "push",
]
