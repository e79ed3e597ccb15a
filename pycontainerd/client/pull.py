"""Pull: resolve a reference, fetch its content under a lease, record the image.

Structured as fetch (content + image record) followed by an optional unpack
step (see :mod:`pycontainerd.client.unpack`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from pycontainerd.client.labels import DistributionSource
from pycontainerd.client.models import Image
from pycontainerd.client.progress import ProgressCallback, Reporter, Status
from pycontainerd.client.transfer import RegistryToContent
from pycontainerd.client.unpack import get_unpacker
from pycontainerd.client.walk import ChildPolicy, ImageWalk
from pycontainerd.remotes.auth import CredentialsFunc
from pycontainerd.remotes.platforms import (
    ALL,
    PlatformMatcher,
    any_of,
    default_matcher,
    parse_platform,
)
from pycontainerd.remotes.reference import parse_reference
from pycontainerd.remotes.resolver import PlainHTTP, Resolver

if TYPE_CHECKING:
    from pycontainerd.client.client import Client

DEFAULT_CONCURRENCY = 4
Credentials = CredentialsFunc | tuple[str, str] | None


def credentials_func(credentials: Credentials, domain: str) -> CredentialsFunc | None:
    """Accept a (user, secret) pair for the registry being used, or a lookup function."""
    if credentials is None or callable(credentials):
        return credentials
    pair = (credentials[0], credentials[1])
    return lambda host: pair if host == domain else None


def platform_policy(platform: str | None, all_platforms: bool) -> ChildPolicy:
    """containerd's pull choice: every platform, the named one, or the best for this host."""
    if all_platforms:
        return ChildPolicy(ALL, limit=0)
    matcher: PlatformMatcher = any_of(parse_platform(platform)) if platform else default_matcher()
    return ChildPolicy(matcher, limit=1)


async def pull(
    client: Client,
    ref: str,
    *,
    platform: str | None = None,
    all_platforms: bool = False,
    plain_http: PlainHTTP = False,
    credentials: Credentials = None,
    unpack: bool = False,
    snapshotter: str = "overlayfs",
    progress: ProgressCallback | None = None,
    max_concurrent_downloads: int = DEFAULT_CONCURRENCY,
) -> Image:
    """Fetch ``ref`` into the content store and create (or update) its image record.

    Blobs already in the namespace are not downloaded again; everything is done
    under a lease so the GC cannot collect a half-finished pull.
    """
    unpacker = get_unpacker() if unpack else None
    policy = platform_policy(platform, all_platforms)
    reference = parse_reference(ref)
    report = Reporter(progress)
    resolver = Resolver(
        plain_http=plain_http, credentials=credentials_func(credentials, reference.domain)
    )
    with resolver, ThreadPoolExecutor(max_concurrent_downloads, "pull") as pool:
        loop = asyncio.get_running_loop()
        report(str(reference), "", Status.RESOLVING)
        name, root = await loop.run_in_executor(pool, resolver.resolve, reference)
        report(name, root.digest, Status.RESOLVED, root.size, root.size)
        target = RegistryToContent(
            client.content,
            resolver.fetcher(reference),
            pool,
            source=DistributionSource.for_reference(reference),
            report=report,
            max_concurrent=max_concurrent_downloads,
        )
        async with client.lease_if_none():
            await ImageWalk(target, policy).run(root)
            image = await client.images.create_or_update(Image(name, root))
            if unpacker is not None:
                await unpacker(client, image, snapshotter=snapshotter, matcher=policy.matcher)
    return image
