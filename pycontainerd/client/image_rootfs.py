"""An image as a container sees it: its config, its top snapshot, and a spec built from both.

The spec is containerd's default Linux spec with the image config applied
(entrypoint, command, env, working directory, user), then the caller's options.
User and group names are looked up in the image's own /etc/passwd and
/etc/group, read from a short-lived read-only view of its top snapshot.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pycontainerd import errdefs
from pycontainerd.client import unpack as unpack_module
from pycontainerd.client.models import Image
from pycontainerd.mount import temp_mount
from pycontainerd.oci import Spec, SpecOpt, apply_opts, default_spec, with_image_config
from pycontainerd.oci.spec import DEFAULT_ROOTFS_PATH, root_of
from pycontainerd.remotes.manifest import Descriptor, parse_config
from pycontainerd.remotes.platforms import PlatformMatcher, default_matcher

if TYPE_CHECKING:
    from pycontainerd.client.client import Client


@dataclass(frozen=True)
class ImageRootfs:
    """What a container needs from an image: the config blob and the chain to start from."""

    image: Image
    config: Descriptor
    config_bytes: bytes
    top_chain_id: str  # "" for an image without layers


async def image_rootfs(
    client: Client,
    image: Image,
    snapshotter: str,
    *,
    matcher: PlatformMatcher | None = None,
) -> ImageRootfs:
    """The image's config and top chain ID, unpacking it into ``snapshotter`` if needed."""
    config, layers = await unpack_module.image_layers(
        client, image.target, matcher or default_matcher()
    )
    try:
        config_bytes = await client.content.read_all(config.digest)
    except errdefs.NotFound:
        raise errdefs.NotFound(
            f"image {image.name!r} is incomplete (its config {config.digest} is not in the "
            "content store): pull it again"
        ) from None
    diff_ids = parse_config(config_bytes).diff_ids
    top = unpack_module.chain_ids(diff_ids)[-1] if diff_ids else ""
    if top and not await client.snapshots(snapshotter).exists(top):
        await unpack_module.unpack_layers(client, config, layers, snapshotter)
    return ImageRootfs(image, config, config_bytes, top)


@contextlib.asynccontextmanager
async def mounted_view(client: Client, snapshotter: str, parent: str) -> AsyncIterator[str | None]:
    """A read-only view of ``parent`` mounted on a temporary directory, or None.

    None when there is nothing to mount (no layers) or we may not mount (not root):
    then only numeric users can be resolved.
    """
    if not parent or os.geteuid() != 0:
        yield None
        return
    snapshots = client.snapshots(snapshotter)
    key = f"spec-view-{secrets.token_hex(8)} {parent}"
    mounts = await snapshots.view(key, parent)
    try:
        with temp_mount(mounts) as path:
            yield path
    finally:
        with contextlib.suppress(errdefs.NotFound):
            await snapshots.remove(key)


async def spec_for_image(
    client: Client,
    container_id: str,
    rootfs: ImageRootfs | None,
    opts: Sequence[SpecOpt],
    *,
    snapshotter: str,
) -> Spec:
    """Default spec + image config + ``opts``, with names resolved in the image's files."""
    spec = default_spec(client.namespace, container_id)
    if rootfs is None:
        return apply_opts(spec, *opts)
    async with mounted_view(client, snapshotter, rootfs.top_chain_id) as mounted:
        if mounted is None:
            return apply_opts(spec, with_image_config(rootfs.config_bytes), *opts)
        # Options such as with_user("app") look names up under an absolute root path.
        root_of(spec)["path"] = mounted
        try:
            apply_opts(spec, with_image_config(rootfs.config_bytes, rootfs=mounted), *opts)
        finally:
            if root_of(spec).get("path") == mounted:
                root_of(spec)["path"] = DEFAULT_ROOTFS_PATH
    return spec
