"""CRI PullImage: the daemon's own pull (pycontainerd.distribution) into namespace k8s.io.

Credentials come from the request's AuthConfig (username/password, or the
``auth`` field's base64 ``user:password``), else from the plugin's
``registry.configs.<host>.auth``; ``registry.mirrors.<host>.endpoint`` names
the host that serves a registry, and ``registry.configs.<host>.plain_http``
(or an ``http://`` mirror endpoint) talks plain HTTP. The image is unpacked
into the CRI's snapshotter and recorded under its name, its repo digest and
its id, each with ``io.cri-containerd.image=managed``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from urllib.parse import urlsplit

from pycontainerd import errdefs
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.diff.differs import Differ
from pycontainerd.distribution.local import LocalStores
from pycontainerd.metadata.images import Descriptor, Image
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.remotes.reference import parse_reference

from .config import CRIConfig
from .images import MANAGED, MANAGED_LABEL, ImageManager, ResolvedImage
from .state import NAMESPACE


def credentials_of(
    auth: cri.AuthConfig | None, config: CRIConfig, domain: str
) -> tuple[str, str] | None:
    if auth is not None:
        if auth.identity_token or auth.registry_token:
            raise errdefs.NotImplemented_(
                "identity and registry tokens are not supported for pulls yet; "
                "send username and password"
            )
        if auth.username or auth.password:
            return auth.username, auth.password
        if auth.auth:
            try:
                user, sep, secret = base64.b64decode(auth.auth).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise errdefs.InvalidArgument("auth is not base64 of user:password") from exc
            if not sep:
                raise errdefs.InvalidArgument("auth is not base64 of user:password")
            return user, secret
    host = config.registries.get(domain)
    if host is not None and (host.username or host.password):
        return host.username, host.password
    return None


class Puller:
    def __init__(
        self,
        config: CRIConfig,
        metadata: MetadataStore,
        differs: Sequence[Differ],
        images: ImageManager,
        gc: GCScheduler,
    ) -> None:
        self.config = config
        self.stores = LocalStores(metadata, differs, NAMESPACE, gc=gc)
        self.images = images

    async def __call__(self, ref: str, auth: cri.AuthConfig | None) -> ResolvedImage:
        reference = parse_reference(ref)
        name = str(reference)
        domain = reference.domain
        plain = {d for d, h in self.config.registries.items() if h.plain_http}
        hosts: dict[str, str] = {}
        mirror = self.config.mirrors.get(domain)
        if mirror is not None and mirror.endpoints:
            endpoint = urlsplit(mirror.endpoints[0])
            hosts[domain] = endpoint.netloc or endpoint.path
            if endpoint.scheme == "http":
                plain.update((domain, hosts[domain]))
        # Imported at the first pull: the registry client (requests, ssl) is ~9 MiB
        # resident that a node which never pulls through CRI does not pay for.
        from pycontainerd.distribution.pull import pull  # noqa: PLC0415

        pulled = await pull(
            self.stores,
            name,
            plain_http=lambda d: d in plain,
            credentials=credentials_of(auth, self.config, domain),
            hosts=hosts,
            unpack=True,
            snapshotter=self.config.snapshotter,
            labels={MANAGED_LABEL: MANAGED},
        )
        t = pulled.target
        record = Image(
            name=pulled.name,
            target=Descriptor(t.media_type, t.digest, t.size, dict(t.annotations)),
        )
        resolved = await self.images.resolve(name)
        names = [f"{reference.domain}/{reference.path}@{t.digest}", resolved.id]
        await self.images.tag(names, record)
        return await self.images.resolve(name)
