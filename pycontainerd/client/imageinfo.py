"""Facts about a stored image, read from the content store: size and platforms."""

from __future__ import annotations

from pycontainerd import errdefs
from pycontainerd.client.content import ContentService
from pycontainerd.client.walk import document_children
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor, parse_config
from pycontainerd.remotes.platforms import Platform, PlatformMatcher, format_platform


async def image_size(content: ContentService, target: Descriptor, matcher: PlatformMatcher) -> int:
    """Bytes of the image's content for ``matcher``'s platforms, as ``ctr images ls`` sums it.

    Raises NotFound when a piece the platform needs is not in the store.
    """
    total = target.size
    if mediatypes.is_manifest_or_index(target.media_type):
        data = await content.read_all(target.digest)
        for child in document_children(target, data):
            if child.platform is None or matcher.match(child.platform):
                total += await image_size(content, child, matcher)
    return total


async def image_platforms(content: ContentService, target: Descriptor) -> list[str]:
    """The platforms an image offers, sorted (``linux/amd64``, ``linux/arm64/v8``)."""
    found: set[str] = set()
    await _collect_platforms(content, target, found)
    return sorted(found)


async def _collect_platforms(content: ContentService, desc: Descriptor, found: set[str]) -> None:
    if desc.platform is not None:
        found.add(format_platform(desc.platform))
        return
    if mediatypes.is_index(desc.media_type):
        data = await content.read_all(desc.digest)
        for child in document_children(desc, data):
            await _collect_platforms(content, child, found)
    elif mediatypes.is_manifest(desc.media_type):
        config = document_children(desc, await content.read_all(desc.digest))[0]
        try:
            platform: Platform = parse_config(await content.read_all(config.digest)).platform
        except errdefs.NotFound:
            return
        found.add(format_platform(platform))
