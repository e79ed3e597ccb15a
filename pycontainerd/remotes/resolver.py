"""The entry point: resolve references to descriptors, and hand out fetchers and pushers."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

import requests

import pycontainerd
from pycontainerd.digest import digest_of_bytes
from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.auth import Authorizer, CredentialsFunc, repository_scope
from pycontainerd.remotes.errors import DataLoss
from pycontainerd.remotes.fetcher import Fetcher
from pycontainerd.remotes.manifest import Descriptor, detect_media_type
from pycontainerd.remotes.pusher import Pusher
from pycontainerd.remotes.reference import DEFAULT_DOMAIN, Reference, parse_reference
from pycontainerd.remotes.transport import DOCKER_HUB_API_HOST, RegistryHost, Transport

DEFAULT_USER_AGENT = f"pycontainerd/{pycontainerd.__version__}"
DEFAULT_TIMEOUT = 60.0
# Manifests are small; refuse to buffer something claiming to be one beyond this.
MAX_MANIFEST_SIZE = 4 << 20

PlainHTTP = bool | Callable[[str], bool]


def match_localhost(domain: str) -> bool:
    """True for ``localhost`` and loopback addresses, with or without a port."""
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Resolver:
    """Talks to registries for one client; share it between threads.

    ``plain_http`` is True, False, or a predicate on the registry domain (see
    :func:`match_localhost`). ``hosts`` maps a domain to the network host that
    serves it (a mirror, or a test registry). ``credentials`` is called with the
    registry domain and returns ``(username, secret)`` or None. ``headers`` go with
    every request (containerd's resolver headers).
    """

    def __init__(
        self,
        *,
        plain_http: PlainHTTP = False,
        hosts: Mapping[str, str] | None = None,
        credentials: CredentialsFunc | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._plain_http = plain_http
        self._headers = dict(headers or {})
        self._hosts = dict(hosts or {})
        self._user_agent = user_agent
        self._timeout = timeout
        self._session = session or requests.Session()
        self._authorizer = Authorizer(credentials, self._session, user_agent, timeout)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Resolver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def registry_host(self, domain: str) -> RegistryHost:
        plain = self._plain_http(domain) if callable(self._plain_http) else self._plain_http
        default_host = DOCKER_HUB_API_HOST if domain == DEFAULT_DOMAIN else domain
        return RegistryHost(
            domain=domain,
            host=self._hosts.get(domain, default_host),
            scheme="http" if plain else "https",
        )

    def _transport(
        self, ref: Reference, *, push: bool, extra_scopes: tuple[str, ...] = ()
    ) -> Transport:
        return Transport(
            self.registry_host(ref.domain),
            self._authorizer,
            self._session,
            scopes=(repository_scope(ref.path, push), *extra_scopes),
            user_agent=self._user_agent,
            timeout=self._timeout,
            headers=self._headers,
        )

    def fetcher(self, ref: str | Reference) -> Fetcher:
        reference = _as_reference(ref)
        return Fetcher(self._transport(reference, push=False), reference)

    def pusher(self, ref: str | Reference, *, mount_from: str | None = None) -> Pusher:
        """A pusher for ``ref``'s repository; ``mount_from`` adds pull scope for mounts."""
        reference = _as_reference(ref)
        extra = (repository_scope(mount_from),) if mount_from else ()
        return Pusher(self._transport(reference, push=True, extra_scopes=extra), reference)

    def resolve(self, ref: str | Reference) -> tuple[str, Descriptor]:
        """Find what ``ref`` names: returns the normalized name and the root descriptor.

        Asks with HEAD first (cheap, no body); falls back to GET when the registry
        does not send the digest and media type on HEAD.
        """
        reference = _as_reference(ref)
        if not reference.object:
            raise InvalidArgument(f"{reference}: a tag or digest is needed to resolve")
        transport = self._transport(reference, push=False)
        path = f"/{reference.path}/manifests/{reference.object}"
        headers = {"Accept": mediatypes.RESOLVE_ACCEPT}
        head = transport.request("HEAD", path, what=str(reference), headers=headers)
        with head:
            desc = _descriptor_from_headers(head, reference)
        if desc is None:
            response = transport.request("GET", path, what=str(reference), headers=headers)
            with response:
                desc = _descriptor_from_body(response, reference)
        return str(reference), desc


def _as_reference(ref: str | Reference) -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(ref)


def _descriptor_from_headers(response: requests.Response, ref: Reference) -> Descriptor | None:
    digest = response.headers.get("Docker-Content-Digest", "")
    media_type = mediatypes.base_type(response.headers.get("Content-Type", ""))
    length = response.headers.get("Content-Length", "")
    if not digest or not length.isdigit() or not mediatypes.is_manifest_or_index(media_type):
        return None
    if ref.digest and digest != ref.digest:
        raise DataLoss(f"{ref}: registry answered with digest {digest}")
    return Descriptor(media_type, digest, int(length))


def _descriptor_from_body(response: requests.Response, ref: Reference) -> Descriptor:
    body = response.content
    if len(body) > MAX_MANIFEST_SIZE:
        raise InvalidArgument(f"{ref}: manifest is {len(body)} bytes, over the 4 MiB limit")
    digest = ref.digest or str(digest_of_bytes(body))
    if ref.digest and str(digest_of_bytes(body, ref.digest.partition(":")[0])) != ref.digest:
        raise DataLoss(f"{ref}: manifest content does not match the digest asked for")
    media_type = detect_media_type(body, response.headers.get("Content-Type", ""))
    return Descriptor(media_type, digest, len(body))
