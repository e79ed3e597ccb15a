"""One-time tokens for streaming URLs: random, single-use, expiring (a minute, as kubelet's)."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from typing import Generic, TypeVar

from pycontainerd import errdefs

T = TypeVar("T")

TTL_SECONDS = 60.0
MAX_IN_FLIGHT = 1000


class TokenCache(Generic[T]):
    def __init__(self, ttl: float = TTL_SECONDS, limit: int = MAX_IN_FLIGHT) -> None:
        self.ttl = ttl
        self.limit = limit
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._entries:
            token, (deadline, _) = next(iter(self._entries.items()))
            if deadline > now:
                break
            del self._entries[token]

    def insert(self, request: T) -> str:
        now = time.monotonic()
        self._expire(now)
        if len(self._entries) >= self.limit:
            raise errdefs.ResourceExhausted(
                f"{self.limit} streaming requests are waiting already; try again later"
            )
        token = secrets.token_urlsafe(6)  # 8 URL-safe characters
        while token in self._entries:
            token = secrets.token_urlsafe(6)
        self._entries[token] = (now + self.ttl, request)
        return token

    def consume(self, token: str) -> T | None:
        """The request once; None when unknown, used or expired."""
        now = time.monotonic()
        entry = self._entries.pop(token, None)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]
