"""Walking an image's tree for a pull: which children to follow, in what order.

The walk itself knows nothing of registries or gRPC: it asks a
:class:`WalkTarget` to store each descriptor (documents come back as bytes so
their children can be read) and follows the children a :class:`ChildPolicy`
selects. Each digest is handled once even when several parents share it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pycontainerd import errdefs
from pycontainerd.distribution.labels import child_gc_labels
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor, children
from pycontainerd.remotes.platforms import ALL, PlatformMatcher, format_platform

LabelsFor = Callable[[bytes], dict[str, str]]


class WalkTarget(Protocol):
    async def store_document(self, desc: Descriptor, labels_for: LabelsFor) -> bytes:
        """Make sure a manifest or index is stored, with ``labels_for(its bytes)`` set."""
        ...

    async def store_blob(self, desc: Descriptor) -> None:
        """Make sure a config or layer is stored."""
        ...


@dataclass(frozen=True)
class ChildPolicy:
    """Which manifests of an index to follow: those ``matcher`` accepts, best first.

    ``limit`` keeps only the best N (containerd's pull uses 1); 0 keeps all matches.
    With ``all_metadata`` (containerd 2's transfer pull), every manifest of an
    index and its config are stored too, but only the selected manifests' layers.
    """

    matcher: PlatformMatcher = ALL
    limit: int = 0
    all_metadata: bool = False
    #: Manifests followed for their metadata only (filled as indexes are walked).
    metadata_only: set[str] = field(default_factory=set, compare=False, hash=False)

    def select(self, parent: Descriptor, found: Sequence[Descriptor]) -> list[Descriptor]:
        if parent.digest in self.metadata_only:
            return [c for c in found if mediatypes.is_config(c.media_type)]
        if not mediatypes.is_index(parent.media_type):
            return [c for c in found if c.platform is None or self.matcher.match(c.platform)]
        selected = self._select_from_index(parent, found)
        if not self.all_metadata:
            return selected
        chosen = {c.digest for c in selected}
        self.metadata_only.update(
            c.digest
            for c in found
            if c.digest not in chosen and mediatypes.is_manifest(c.media_type)
        )
        return [c for c in found if c.digest in chosen or mediatypes.is_manifest(c.media_type)]

    def _select_from_index(
        self, parent: Descriptor, found: Sequence[Descriptor]
    ) -> list[Descriptor]:
        matching = [c for c in found if c.platform is None or self.matcher.match(c.platform)]
        if not matching and found:
            available = ", ".join(format_platform(c.platform) for c in found if c.platform)
            raise errdefs.NotFound(
                f"no manifest in {parent.digest} matches the requested platform; "
                f"it has: {available or 'no platform information'}"
            )
        if self.limit <= 0:
            return matching
        ordered = sorted(matching, key=functools.cmp_to_key(self._compare))
        return ordered[: self.limit]

    def _compare(self, a: Descriptor, b: Descriptor) -> int:
        if a.platform is None or b.platform is None:
            return (a.platform is None) - (b.platform is None)
        if self.matcher.less(a.platform, b.platform):
            return -1
        return 1 if self.matcher.less(b.platform, a.platform) else 0


def document_children(desc: Descriptor, data: bytes) -> list[Descriptor]:
    """Every child a manifest or index names; refuses kinds we cannot walk."""
    if desc.media_type == mediatypes.DOCKER_MANIFEST_SCHEMA1:
        raise errdefs.NotImplemented_(
            f"{desc.digest} is a Docker schema 1 manifest, which is not supported; "
            "push the image again with a current Docker or pull another tag"
        )
    return children(desc, data)


class ImageWalk:
    """Stores an image tree into a target: parents first, children concurrently."""

    def __init__(self, target: WalkTarget, policy: ChildPolicy) -> None:
        self._target = target
        self._policy = policy
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.handled: list[Descriptor] = []

    async def run(self, root: Descriptor) -> list[Descriptor]:
        """Walk from ``root``; returns every descriptor handled, parents before children."""
        try:
            await self._visit(root)
        except BaseException:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            raise
        return list(self.handled)

    def _visit(self, desc: Descriptor) -> asyncio.Task[None]:
        task = self._tasks.get(desc.digest)
        if task is None:
            task = asyncio.ensure_future(self._handle(desc))
            self._tasks[desc.digest] = task
        return task

    async def _handle(self, desc: Descriptor) -> None:
        self.handled.append(desc)
        if not mediatypes.is_manifest_or_index(desc.media_type):
            await self._target.store_blob(desc)
            return
        found: list[Descriptor] = []

        def labels_for(data: bytes) -> dict[str, str]:
            found[:] = document_children(desc, data)
            return child_gc_labels(found)

        await self._target.store_document(desc, labels_for)
        selected = self._policy.select(desc, found)
        await asyncio.gather(*(self._visit(child) for child in selected))
