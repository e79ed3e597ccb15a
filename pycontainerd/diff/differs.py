"""The differ interface, and trying the configured differs in order (as containerd does).

A differ that answers NotImplemented_ passes the call to the next one. The
diff gRPC service and the daemon's in-process unpack both go through
:func:`first_implemented`, so they pick the same differ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from pycontainerd import errdefs
from pycontainerd.diff.compare import CompareOptions
from pycontainerd.mount import Mount
from pycontainerd.remotes.manifest import Descriptor


class Differ(Protocol):
    """A layer differ; it marks apply and compare ``@in_worker`` (they work on files)."""

    def apply(self, namespace: str, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor: ...

    def compare(
        self,
        namespace: str,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        options: CompareOptions | None = None,
    ) -> Descriptor: ...


async def first_implemented(
    differs: Sequence[Differ], use: Callable[[Differ], Awaitable[Descriptor]]
) -> Descriptor:
    """Try ``use(differ)`` with each differ until one implements it."""
    if not differs:
        raise errdefs.FailedPrecondition("no differ is configured")
    error: errdefs.NotImplemented_ | None = None
    for differ in differs:
        try:
            return await use(differ)
        except errdefs.NotImplemented_ as exc:
            error = exc
    assert error is not None
    raise error
