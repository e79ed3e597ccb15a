"""CRI images over the daemon's image and content stores, in namespace ``k8s.io``.

containerd's CRI keeps three image records per image, all labelled
``io.cri-containerd.image=managed``: ``name:tag``, ``name@<manifest digest>``
and ``<config digest>`` (the image id); ``ctr -n k8s.io images ls`` lists them
all, ``crictl images`` one entry per id. Records made by other clients in the
namespace (``ctr -n k8s.io images import``) are seen too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pycontainerd import errdefs
from pycontainerd.metadata.images import Image
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import parse_index, parse_manifest
from pycontainerd.remotes.platforms import default_matcher
from pycontainerd.remotes.reference import parse_reference

from .state import NAMESPACE

MANAGED_LABEL = "io.cri-containerd.image"
MANAGED = "managed"


@dataclass(frozen=True)
class ResolvedImage:
    """An image as the CRI sees it: its id (config digest) and what it is made of."""

    id: str
    names: tuple[str, ...]
    manifest_digest: str
    size: int
    config: dict[str, Any]  # the whole config document
    chain_id: str  # of the top layer: the snapshot to prepare containers on

    @property
    def repo_tags(self) -> list[str]:
        return [n for n in self.names if "@" not in n and not n.startswith("sha256:")]

    @property
    def repo_digests(self) -> list[str]:
        return [n for n in self.names if "@" in n]

    @property
    def process_config(self) -> dict[str, Any]:
        section = self.config.get("config") or {}
        return section if isinstance(section, dict) else {}


def chain_id(diff_ids: Sequence[str]) -> str:
    """The OCI chain id of a layer stack (the snapshot name of its top)."""
    chain = ""
    for diff_id in diff_ids:
        chain = (
            diff_id
            if not chain
            else "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
        )
    return chain


def is_image_id(text: str) -> bool:
    hex_part = text.removeprefix("sha256:")
    return 0 < len(hex_part) <= 64 and all(c in "0123456789abcdef" for c in hex_part)


class ImageManager:
    def __init__(self, metadata: MetadataStore, gc: GCScheduler) -> None:
        self.metadata = metadata
        self.gc = gc
        # What a record's target resolves to never changes for a given digest: kept, so
        # that a lookup does not read every image's manifest and config again.
        self._described: dict[tuple[str, str], tuple[str, str, int, dict[str, Any]]] = {}

    async def read_blob(self, digest: str) -> bytes:
        _, _, chunks = await call(self.metadata.content.read, NAMESPACE, digest, 0, 0)
        return await asyncio.to_thread(lambda: b"".join(chunks))

    async def _describe(self, record: Image) -> tuple[str, str, int, dict[str, Any]]:
        """(config digest, manifest digest, size, config) of an image record."""
        key = (record.target.digest, record.target.media_type)
        found = self._described.get(key)
        if found is None:
            found = self._described[key] = await self._read_description(record)
        return found

    async def _read_description(self, record: Image) -> tuple[str, str, int, dict[str, Any]]:
        target = record.target
        manifest_digest, media_type = target.digest, target.media_type
        data = await self.read_blob(manifest_digest)
        if mediatypes.is_index(media_type):
            index = parse_index(data, media_type)
            matcher = default_matcher()
            choices = [
                m for m in index.manifests if m.platform is None or matcher.match(m.platform)
            ]
            if not choices:
                raise errdefs.NotFound(f"image {record.name} has no manifest for this platform")
            best = choices[0]
            for candidate in choices[1:]:
                if (
                    candidate.platform is not None
                    and best.platform is not None
                    and matcher.less(candidate.platform, best.platform)
                ):
                    best = candidate
            manifest_digest, media_type = best.digest, best.media_type
            data = await self.read_blob(manifest_digest)
        manifest = parse_manifest(data, media_type)
        config_data = await self.read_blob(manifest.config.digest)
        size = manifest.config.size + sum(layer.size for layer in manifest.layers)
        return manifest.config.digest, manifest_digest, size, json.loads(config_data)

    async def _records(self) -> list[Image]:
        try:
            return await call(self.metadata.images.list, NAMESPACE)
        except errdefs.NotFound:
            return []

    async def list(self) -> list[ResolvedImage]:
        groups: dict[str, list[str]] = {}
        described: dict[str, tuple[str, int, dict[str, Any]]] = {}
        records = await self._records()
        live = {(r.target.digest, r.target.media_type) for r in records}
        for key in [k for k in self._described if k not in live]:
            del self._described[key]
        for record in records:
            try:
                config_digest, manifest_digest, size, config = await self._describe(record)
            except errdefs.ContainerdError:
                continue  # content not (yet) there: not an image the CRI can use
            groups.setdefault(config_digest, []).append(record.name)
            described[config_digest] = (manifest_digest, size, config)
        return [_resolved(digest, names, *described[digest]) for digest, names in groups.items()]

    async def resolve(self, ref: str) -> ResolvedImage:
        """The image a CRI reference names: a name, an image id or a unique id prefix."""
        if not ref:
            raise errdefs.InvalidArgument("image reference is required")
        images = await self.list()
        if is_image_id(ref):
            wanted = ref if ref.startswith("sha256:") else "sha256:" + ref
            matches = [i for i in images if i.id.startswith(wanted)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise errdefs.InvalidArgument(f"image id prefix {ref!r} is ambiguous")
            if ref.startswith("sha256:") or len(ref) == 64:
                raise errdefs.NotFound(f"image {ref!r} not found in namespace {NAMESPACE}")
        name = str(parse_reference(ref))
        for image in images:
            if name in image.names:
                return image
        raise errdefs.NotFound(f"image {ref!r} not found in namespace {NAMESPACE}")

    async def find(self, ref: str) -> ResolvedImage | None:
        try:
            return await self.resolve(ref)
        except errdefs.NotFound:
            return None

    async def remove(self, ref: str) -> None:
        image = await self.find(ref)
        if image is None:
            return  # the CRI's RemoveImage is idempotent
        for name in image.names:
            with contextlib.suppress(errdefs.NotFound):
                await call(self.metadata.images.delete, NAMESPACE, name)
        self.gc.schedule()

    async def tag(self, names: Sequence[str], target: Image) -> None:
        """Create or update the CRI's records for an image (managed label on each)."""
        for name in names:
            record = Image(name=name, target=target.target, labels={MANAGED_LABEL: MANAGED})
            try:
                await call(self.metadata.images.create, NAMESPACE, record)
            except errdefs.AlreadyExists:
                await call(self.metadata.images.update, NAMESPACE, record, ["target", "labels"])

    async def is_unpacked(self, image: ResolvedImage, snapshotter: str) -> bool:
        try:
            await call(self.metadata.snapshots.get(snapshotter).stat, NAMESPACE, image.chain_id)
        except errdefs.NotFound:
            return False
        return True


def _resolved(
    config_digest: str, names: list[str], manifest_digest: str, size: int, config: dict[str, Any]
) -> ResolvedImage:
    rootfs = config.get("rootfs") or {}
    diff_ids = list(rootfs.get("diff_ids") or [])
    return ResolvedImage(
        id=config_digest,
        names=tuple(sorted(names)),
        manifest_digest=manifest_digest,
        size=size,
        config=config,
        chain_id=chain_id(diff_ids),
    )


def filesystem_usage(path: str) -> tuple[int, int]:
    """(bytes, inodes) used below ``path``, not following symlinks."""
    used = inodes = 0
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            inodes += 1
            used += st.st_blocks * 512
    return used, inodes
