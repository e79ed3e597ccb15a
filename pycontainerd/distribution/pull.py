"""Pull: resolve a reference, fetch its content under a lease, record the image.

With ``unpack``, the unpack runs beside the fetch rather than after it: each
layer is applied as soon as it and its parent are in the content store while
later layers still download (containerd 1.6's ``ctr`` waits for every layer).
Downloads run in parallel; layers apply in order, each in the daemon's diff
service, whose decompression and hashing run ahead of extraction in a thread.
In the daemon (Transfer and CRI pulls) layers are also extracted beside each
other, and pulls of one image at once share their downloads and unpacks (see
:mod:`.unpack` and :mod:`.coordination`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pycontainerd.distribution.fetch import CONCURRENT_SENDS, Claim, RegistryToContent
from pycontainerd.distribution.labels import DistributionSource
from pycontainerd.distribution.progress import ProgressCallback, Reporter, Status
from pycontainerd.distribution.stores import Image, SharedStores
from pycontainerd.distribution.tasks import run_together
from pycontainerd.distribution.unpack import DEFAULT_SNAPSHOTTER, unpack_image
from pycontainerd.distribution.walk import ChildPolicy, ImageWalk
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.auth import CredentialsFunc
from pycontainerd.remotes.manifest import Descriptor, parse_index
from pycontainerd.remotes.platforms import (
    ALL,
    PlatformMatcher,
    any_of,
    default_matcher,
    format_platform,
    only,
    parse_platform,
)
from pycontainerd.remotes.reference import parse_reference
from pycontainerd.remotes.resolver import PlainHTTP, Resolver

if TYPE_CHECKING:
    from pycontainerd.distribution.stores import Stores

DEFAULT_CONCURRENCY = 4
Credentials = CredentialsFunc | tuple[str, str] | None


def credentials_func(credentials: Credentials, domain: str) -> CredentialsFunc | None:
    """Accept a (user, secret) pair for the registry being used, or a lookup function."""
    if credentials is None or callable(credentials):
        return credentials
    pair = (credentials[0], credentials[1])
    return lambda host: pair if host == domain else None


def platform_policy(
    platform: str | None, all_platforms: bool, all_metadata: bool = False
) -> ChildPolicy:
    """containerd's pull choice: every platform, the named one, or the best for this host.

    ``all_metadata``: the other platforms' manifests and configs are stored as well.
    """
    if all_platforms:
        return ChildPolicy(ALL, limit=0)
    matcher: PlatformMatcher = any_of(parse_platform(platform)) if platform else default_matcher()
    return ChildPolicy(matcher, limit=1, all_metadata=all_metadata)


async def pull(
    stores: Stores,
    ref: str,
    *,
    platform: str | None = None,
    all_platforms: bool = False,
    plain_http: PlainHTTP = False,
    credentials: Credentials = None,
    hosts: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    unpack: bool = False,
    snapshotter: str = DEFAULT_SNAPSHOTTER,
    progress: ProgressCallback | None = None,
    max_concurrent_downloads: int = DEFAULT_CONCURRENCY,
    image_name: str | None = None,
    labels: Mapping[str, str] | None = None,
    unpack_every_platform: bool = True,
    all_metadata: bool = False,
    concurrent_writes: int = CONCURRENT_SENDS,
) -> Image:
    """Fetch ``ref`` into the content store and create (or update) its image record.

    Blobs already in the namespace are not downloaded again; everything is done
    under a lease so the GC cannot collect a half-finished pull. With
    ``unpack``, the image for this host's platform (or ``platform``) is also
    unpacked into ``snapshotter``, overlapping with the download; with
    ``all_platforms`` too, every other platform is unpacked afterwards unless
    ``unpack_every_platform`` is False (containerd 2's transfer unpacks only
    the platforms it is given). The record is named ``image_name`` (default:
    the resolved reference) and carries ``labels``. With ``all_metadata``, every
    platform's manifest and config is stored, the layers only for the one pulled.
    ``concurrent_writes``: blobs written to the store at the same moment (see fetch). ``hosts`` maps a registry domain
    to the host that serves it (see :class:`~pycontainerd.remotes.resolver.Resolver`).
    """
    policy = platform_policy(platform, all_platforms, all_metadata)
    reference = parse_reference(ref)
    report = Reporter(progress)
    resolver = Resolver(
        plain_http=plain_http,
        hosts=hosts,
        headers=headers,
        credentials=credentials_func(credentials, reference.domain),
    )
    with resolver, ThreadPoolExecutor(max_concurrent_downloads, "pull") as pool:
        loop = asyncio.get_running_loop()
        report(str(reference), "", Status.RESOLVING)
        name, root = await loop.run_in_executor(pool, resolver.resolve, reference)
        report(name, root.digest, Status.RESOLVED, root.size, root.size)
        target = RegistryToContent(
            stores.content,
            resolver.fetcher(reference),
            pool,
            source=DistributionSource.for_reference(reference),
            report=report,
            max_concurrent=max_concurrent_downloads,
            concurrent_sends=concurrent_writes,
            claim=_blob_claim(stores),
            hold=stores.hold_content if isinstance(stores, SharedStores) else None,
        )
        async with stores.lease_if_none():
            jobs: list[Coroutine[Any, Any, object]] = [_fetch(target, policy, root)]
            if unpack:
                jobs.append(
                    unpack_image(
                        stores,
                        Image(name, root),
                        snapshotter=snapshotter,
                        matcher=policy.matcher,
                        ready=target.ready,
                        progress=report,
                    )
                )
            await run_together(jobs)
            if unpack and all_platforms and unpack_every_platform:
                await _unpack_other_platforms(stores, Image(name, root), snapshotter, report)
            record = Image(image_name or name, root, dict(labels or {}))
            image = await stores.images.create_or_update(record)
    return image


def _blob_claim(stores: Stores) -> Claim | None:
    """In the daemon, pulls at once download a blob once (see distribution.coordination)."""
    if not isinstance(stores, SharedStores):
        return None
    locks, namespace = stores.coordination.locks, stores.namespace
    return lambda digest: locks.hold(f"{namespace}/blob://{digest}")


async def _unpack_other_platforms(
    stores: Stores, image: Image, snapshotter: str, report: Reporter
) -> None:
    """As `ctr images pull --all-platforms`: every platform of an index is unpacked.

    This host's platform was unpacked beside the download; the others follow,
    from the content now all in the store.
    """
    if not mediatypes.is_index(image.target.media_type):
        return
    index = parse_index(await stores.content.read_all(image.target.digest))
    best = default_matcher().best(d.platform for d in index.manifests if d.platform)
    done = {format_platform(best)} if best is not None else set()
    for manifest in index.manifests:
        if manifest.platform is None or format_platform(manifest.platform) in done:
            continue
        done.add(format_platform(manifest.platform))
        await unpack_image(
            stores, image, snapshotter=snapshotter, matcher=only(manifest.platform), progress=report
        )


async def _fetch(target: RegistryToContent, policy: ChildPolicy, root: Descriptor) -> None:
    try:
        await ImageWalk(target, policy).run(root)
    finally:
        target.close()  # an unpack waiting on a blob the walk never stored must not hang
