"""Unpack an image's layers into a snapshotter (over gRPC or in the daemon: see stores).

For each layer, base first, the snapshot named by its chain ID (OCI image
spec: ``chain(1) = diff_id(1)``, ``chain(n) = sha256(chain(n-1) + " " + diff_id(n))``)
is reused when it exists; otherwise an ``extract-<unique> <chain id>``
snapshot is prepared on the parent chain, the diff service applies the layer
blob onto its mounts, the diff ID it reports is checked against the image
config, and the snapshot is committed under the chain ID. Finally the config
blob gets ``containerd.io/gc.ref.snapshot.<snapshotter>=<top chain id>``: that
label keeps the snapshots alive while the image lives, and is what
``ctr images check`` and ``ctr run`` look for. This is what containerd's
unpacker does, so images unpacked here are usable by ctr and the other way
round.

Everything runs under a lease (the caller's, or one made for the call), so
the garbage collector never takes a half-unpacked chain.

:func:`unpack_layers` can overlap with a download: give it ``ready``, an
awaitable per blob that returns once that blob is in the content store, and
each layer is applied as soon as it and its parent are ready. A pull does
exactly that (see :mod:`pycontainerd.distribution.pull`).

In the daemon, on overlayfs, layers need not wait for their parents: each is
extracted on its own as soon as its blob is there and put on its parent chain
afterwards (``max_concurrent_unpacks``; see :class:`_LayerUnpacker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pycontainerd import errdefs
from pycontainerd.distribution.progress import Reporter
from pycontainerd.distribution.stores import LayerStager, SharedStores, StagedLayer
from pycontainerd.distribution.tasks import run_together
from pycontainerd.distribution.walk import ChildPolicy, document_children
from pycontainerd.mount import Mount
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor, parse_config, parse_manifest
from pycontainerd.remotes.platforms import ALL, PlatformMatcher, default_matcher

if TYPE_CHECKING:
    from pycontainerd.distribution.coordination import PullCoordination
    from pycontainerd.distribution.stores import Image, Stores

log = logging.getLogger(__name__)

DEFAULT_SNAPSHOTTER = "overlayfs"
SNAPSHOT_REF_LABEL = "containerd.io/snapshot.ref"
GC_REF_SNAPSHOT_PREFIX = "containerd.io/gc.ref.snapshot."
UNCOMPRESSED_LABEL = "containerd.io/uncompressed"
#: Layer annotations with this prefix become labels of the layer's snapshot.
INHERITED_LABEL_PREFIX = "containerd.io/snapshot/"
UNPACK_KEY_PREFIX = "extract"
_PREPARE_ATTEMPTS = 3

#: Returns once the blob a descriptor names is in the content store.
BlobReady = Callable[[Descriptor], Awaitable[None]]


class UnpackStatus(enum.StrEnum):
    """Progress states of one layer's unpack, reported beside the download states.

    Reported under the key ``unpack-<layer digest>``, with no byte counts.
    """

    UNPACKING = "unpacking"
    UNPACKED = "unpacked"


def unpack_key(layer: Descriptor) -> str:
    return f"unpack-{layer.digest}"


# -- chain IDs -----------------------------------------------------------------------------


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of every prefix of ``diff_ids`` (the last one names the whole stack)."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            joined = f"{chain[-1]} {diff_id}".encode()
            chain.append("sha256:" + hashlib.sha256(joined).hexdigest())
    return chain


def gc_snapshot_label(snapshotter: str) -> str:
    return GC_REF_SNAPSHOT_PREFIX + snapshotter


# -- the public calls ------------------------------------------------------------------------


async def unpack(
    stores: Stores,
    image_name: str,
    snapshotter: str = DEFAULT_SNAPSHOTTER,
    *,
    matcher: PlatformMatcher | None = None,
) -> str:
    """Unpack the stored image ``image_name`` for this host (or ``matcher``).

    Every blob must be in the content store already. Returns the chain ID of
    the top layer, the snapshot a container's root filesystem is prepared from.
    """
    image = await stores.images.get(image_name)
    config, layers = await image_layers(stores, image.target, matcher or default_matcher())
    return await unpack_layers(stores, config, layers, snapshotter)


async def unpack_image(
    stores: Stores,
    image: Image,
    *,
    snapshotter: str = DEFAULT_SNAPSHOTTER,
    matcher: PlatformMatcher | None = None,
    ready: BlobReady | None = None,
    progress: Reporter | None = None,
) -> str:
    """Unpack ``image`` for the best platform ``matcher`` takes (default: this host's).

    A pull of every platform (``matcher`` ALL) unpacks the one this host runs.
    With ``ready``, documents and layers are awaited before they are read, so
    this can run while the pull still downloads. Returns the top chain ID.
    """
    if matcher is None or matcher is ALL:
        matcher = default_matcher()
    config, layers = await image_layers(stores, image.target, matcher, ready=ready)
    return await unpack_layers(stores, config, layers, snapshotter, ready=ready, progress=progress)


async def unpack_layers(
    stores: Stores,
    image_config: Descriptor,
    layers: Sequence[Descriptor],
    snapshotter: str = DEFAULT_SNAPSHOTTER,
    *,
    ready: BlobReady | None = None,
    progress: Reporter | None = None,
) -> str:
    """Apply ``layers`` (base first) described by the config ``image_config``.

    ``ready`` (optional) is awaited for the config and for each layer before
    they are read, so a pull can call this while it downloads. ``progress``
    hears :class:`UnpackStatus` changes per layer. Returns the top chain ID
    ("" for an image without layers). Raises InvalidArgument when a layer
    does not unpack to the diff ID its config promises.
    """
    async with stores.lease_if_none():
        if ready is not None:
            await ready(image_config)
        diff_ids = parse_config(await stores.content.read_all(image_config.digest)).diff_ids
        if len(diff_ids) != len(layers):
            raise errdefs.InvalidArgument(
                f"image config {image_config.digest} lists {len(diff_ids)} diff IDs for "
                f"{len(layers)} layers: the image is malformed"
            )
        chain = chain_ids(diff_ids)
        parents = ["", *chain[:-1]]
        steps = [
            _Step(index, *step)
            for index, step in enumerate(zip(layers, diff_ids, chain, parents, strict=True))
        ]
        unpacker = _LayerUnpacker(stores, snapshotter, ready, progress or Reporter(None))
        await unpacker.unpack_all(steps)
        parent = chain[-1] if chain else ""
        if parent:
            await stores.content.update_labels(
                image_config.digest, {gc_snapshot_label(snapshotter): parent}
            )
        return parent


async def is_unpacked(
    stores: Stores, image: Image, snapshotter: str, matcher: PlatformMatcher | None = None
) -> bool:
    """Whether the top snapshot of ``image`` (for ``matcher``, default this host) exists."""
    config, _ = await image_layers(stores, image.target, matcher or default_matcher())
    diff_ids = parse_config(await stores.content.read_all(config.digest)).diff_ids
    if not diff_ids:
        return True
    return await stores.snapshots(snapshotter).exists(chain_ids(diff_ids)[-1])


async def image_layers(
    stores: Stores,
    target: Descriptor,
    matcher: PlatformMatcher,
    *,
    ready: BlobReady | None = None,
) -> tuple[Descriptor, list[Descriptor]]:
    """The config and layers of ``target``'s manifest for the best platform ``matcher`` takes.

    ``ready`` (optional) is awaited for each index and manifest before it is read.
    """
    policy = ChildPolicy(matcher, limit=1)
    desc = target
    while mediatypes.is_index(desc.media_type):
        if ready is not None:
            await ready(desc)
        children = document_children(desc, await stores.content.read_all(desc.digest))
        chosen = policy.select(desc, children)
        if not chosen:
            raise errdefs.NotFound(f"index {desc.digest} lists no manifest to unpack")
        desc = chosen[0]
    if not mediatypes.is_manifest(desc.media_type):
        raise errdefs.InvalidArgument(
            f"cannot unpack {desc.digest}: {desc.media_type!r} is not an image manifest or index"
        )
    if ready is not None:
        await ready(desc)
    manifest = parse_manifest(await stores.content.read_all(desc.digest), desc.media_type)
    return manifest.config, list(manifest.layers)


# -- one layer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One layer of the chain: the snapshot ``chain_id`` is ``layer`` applied on ``parent``."""

    index: int
    layer: Descriptor
    diff_id: str
    chain_id: str
    parent: str


class _LayerUnpacker:
    """Makes the chain's snapshots, as containerd's unpacker does.

    By default one layer at a time, each applied onto its parent chain. In the
    daemon, on a snapshotter that can rebase (overlayfs) and with
    ``max_concurrent_unpacks`` above 1, every layer but the first is extracted
    on its own as soon as its blob is there, beside the others, and put on its
    parent chain once that is committed (see :mod:`pycontainerd.archive.isolated`);
    a layer whose extraction cannot be settled there is applied the ordinary way.
    In the daemon, each chain is made under the key ``sn://<snapshotter>/<chain id>``,
    so pulls running at once make it once (see :mod:`.coordination`).
    """

    def __init__(
        self, stores: Stores, snapshotter: str, ready: BlobReady | None, report: Reporter
    ) -> None:
        self._content = stores.content
        self._snapshots = stores.snapshots(snapshotter)
        self._diff = stores.diff
        self._ready = ready
        self._report = report
        self._coordination: PullCoordination | None = None
        self._stager: LayerStager | None = None
        self._key_prefix = ""
        if isinstance(stores, SharedStores):
            self._coordination = stores.coordination
            self._stager = stores.stager(snapshotter)
            self._key_prefix = f"{stores.namespace}/sn://{snapshotter}/"

    async def unpack_all(self, steps: Sequence[_Step]) -> None:
        if self._stager is None:
            for step in steps:
                await self._unpack_in_order(step)
            return
        # Each layer's task waits for the one below before it commits.
        tasks: list[asyncio.Task[None]] = []
        for step in steps:
            below = tasks[-1] if tasks else None
            tasks.append(asyncio.ensure_future(self._unpack_beside(self._stager, step, below)))
        await run_together(tasks)

    # -- in order ----------------------------------------------------------------------

    async def _unpack_in_order(self, step: _Step) -> None:
        async with self._claim(step.chain_id):
            if await self._exists(step.chain_id):
                return
            await self._apply(step)

    async def _apply(self, step: _Step) -> None:
        """Apply the layer on its parent chain's mounts (the parent exists)."""
        if self._ready is not None:
            await self._ready(step.layer)
        self._unpacking(step)
        async with self._extraction(step.index):
            await self._apply_and_commit(step.layer, step.diff_id, step.chain_id, step.parent)
        self._unpacked(step)

    # -- beside each other -----------------------------------------------------------------

    async def _unpack_beside(
        self, stager: LayerStager, step: _Step, below: asyncio.Task[None] | None
    ) -> None:
        """Stage the layer now, settle it once the task making its parent is done."""
        async with self._claim(step.chain_id):
            if await self._exists(step.chain_id):
                return
            staged = await self._stage(stager, step) if below is not None else None
            try:
                if below is not None:
                    await asyncio.wait([below])
                    below.result()  # the parent failed: so does this layer
            except BaseException:
                if staged is not None:
                    await self._remove_quietly(staged.key)
                raise
            if staged is not None and await self._settle(stager, step, staged):
                self._unpacked(step)
                return
            await self._apply(step)

    async def _stage(self, stager: LayerStager, step: _Step) -> StagedLayer | None:
        """The layer extracted alone, or None when that failed (the ordinary apply will
        fail the same way, or succeed)."""
        if self._ready is not None:
            await self._ready(step.layer)
        self._unpacking(step)
        key = f"{UNPACK_KEY_PREFIX}-{_unique_part()} {step.chain_id}"
        labels = _snapshot_labels(step.layer, step.chain_id)
        try:
            async with self._extraction(step.index):
                staged = await stager.stage(step.layer, key, labels)
        except errdefs.ContainerdError as exc:
            log.info("layer %s: extraction on its own failed (%s)", step.layer.digest, exc)
            return None
        if staged.diff_id != step.diff_id:
            await self._remove_quietly(staged.key)
            return None
        return staged

    async def _settle(self, stager: LayerStager, step: _Step, staged: StagedLayer) -> bool:
        """Commit the staged layer on its parent; False when it must be applied instead."""
        labels = _snapshot_labels(step.layer, step.chain_id)
        try:
            try:
                settled = await stager.settle(staged, step.parent)
            except errdefs.ContainerdError as exc:
                log.warning("layer %s: cannot settle its extraction: %s", step.layer.digest, exc)
                settled = False
            if settled and await self._commit(step.chain_id, staged.key, labels):
                await self._content.update_labels(
                    step.layer.digest, {UNCOMPRESSED_LABEL: staged.diff_id}
                )
                return True
        except BaseException:
            await self._remove_quietly(staged.key)
            raise
        await self._remove_quietly(staged.key)
        # Not committed by us: settled means another unpack committed the chain.
        return settled

    # -- shared ------------------------------------------------------------------------

    def _claim(self, chain_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        if self._coordination is None:
            return contextlib.nullcontext()
        return self._coordination.locks.hold(self._key_prefix + chain_id)

    def _extraction(self, index: int) -> contextlib.AbstractAsyncContextManager[None]:
        if self._coordination is None or self._stager is None:
            return contextlib.nullcontext()
        return self._coordination.extraction(index)

    def _unpacking(self, step: _Step) -> None:
        self._report(unpack_key(step.layer), step.layer.digest, UnpackStatus.UNPACKING)  # type: ignore[arg-type]

    def _unpacked(self, step: _Step) -> None:
        self._report(unpack_key(step.layer), step.layer.digest, UnpackStatus.UNPACKED)  # type: ignore[arg-type]

    async def _apply_and_commit(
        self, layer: Descriptor, diff_id: str, chain_id: str, parent: str
    ) -> None:
        labels = _snapshot_labels(layer, chain_id)
        prepared = await self._prepare(chain_id, parent, labels)
        if prepared is None:
            return  # another unpack committed the chain meanwhile
        key, mounts = prepared
        try:
            applied = await self._diff.apply(layer, mounts)
            if applied.digest != diff_id:
                raise errdefs.InvalidArgument(
                    f"layer {layer.digest} unpacked to diff ID {applied.digest}, but the image "
                    f"config says {diff_id}: the layer or the config is corrupt"
                )
            committed = await self._commit(chain_id, key, labels)
        except BaseException:
            await self._remove_quietly(key)
            raise
        if not committed:
            await self._remove_quietly(key)
            return
        # Recorded only now that apply has verified it, as containerd does.
        await self._content.update_labels(layer.digest, {UNCOMPRESSED_LABEL: applied.digest})

    async def _exists(self, chain_id: str) -> bool:
        return await self._snapshots.exists(chain_id)

    async def _prepare(
        self, chain_id: str, parent: str, labels: Mapping[str, str]
    ) -> tuple[str, list[Mount]] | None:
        """A fresh extraction snapshot, or None when ``chain_id`` appeared meanwhile."""
        for _ in range(_PREPARE_ATTEMPTS):
            key = f"{UNPACK_KEY_PREFIX}-{_unique_part()} {chain_id}"
            try:
                return key, await self._snapshots.prepare(key, parent, labels)
            except errdefs.AlreadyExists:
                if await self._exists(chain_id):
                    return None
        raise errdefs.AlreadyExists(
            f"cannot prepare an extraction snapshot for {chain_id}: "
            f"{_PREPARE_ATTEMPTS} keys in a row were taken"
        )

    async def _commit(self, chain_id: str, key: str, labels: Mapping[str, str]) -> bool:
        """Commit ``key`` as ``chain_id``; False when another unpack committed it first."""
        try:
            await self._snapshots.commit(chain_id, key, labels)
        except errdefs.AlreadyExists:
            return False
        return True

    async def _remove_quietly(self, key: str) -> None:
        with contextlib.suppress(errdefs.ContainerdError):
            await self._snapshots.remove(key)


def _snapshot_labels(layer: Descriptor, chain_id: str) -> dict[str, str]:
    labels = {k: v for k, v in layer.annotations.items() if k.startswith(INHERITED_LABEL_PREFIX)}
    labels[SNAPSHOT_REF_LABEL] = chain_id
    return labels


def _unique_part() -> str:
    return f"{time.time_ns() % 1_000_000_000}-{secrets.token_urlsafe(4)}"


__all__ = [
    "BlobReady",
    "DEFAULT_SNAPSHOTTER",
    "UnpackStatus",
    "chain_ids",
    "gc_snapshot_label",
    "image_layers",
    "is_unpacked",
    "unpack",
    "unpack_image",
    "unpack_key",
    "unpack_layers",
]
