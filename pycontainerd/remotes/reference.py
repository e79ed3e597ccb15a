"""Image references: ``[domain[:port]/]path[:tag][@digest]``, normalized like docker.

``busybox`` becomes ``docker.io/library/busybox:latest``; ``index.docker.io`` is
folded into ``docker.io``; a first component counts as a registry host only if it
holds a ``.`` or a ``:`` or is ``localhost`` (the rule docker and containerd use).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pycontainerd.digest import parse_digest
from pycontainerd.errdefs import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_DOMAIN_ONLY = re.compile(rf"^{_DOMAIN}$")
_PATH_ONLY = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_TAG_ONLY = re.compile(rf"^{_TAG}$")
_IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A parsed, normalized image reference."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``domain/path``: the repository, without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What to ask the registry's manifests endpoint for: the digest if any, else the tag."""
        return self.digest or self.tag

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_ONLY.match(tag):
            raise InvalidArgument(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-'")
        return Reference(self.domain, self.path, tag, "")

    def with_digest(self, digest: str) -> Reference:
        parse_digest(digest)
        return Reference(self.domain, self.path, self.tag, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def split_domain(name: str) -> tuple[str, str]:
    """Split a repository name into registry domain and path, applying docker's defaults."""
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalize ``text``; with ``default_tag`` a bare name gets ``:latest``.

    Raises InvalidArgument with the reason when ``text`` is not a valid reference.
    """
    if not isinstance(text, str) or not text:
        raise InvalidArgument(
            "empty image reference: expected e.g. docker.io/library/busybox:latest"
        )
    if _IMAGE_ID.match(text):
        raise InvalidArgument(
            f"invalid reference {text!r}: a 64-hex string is an image ID, not a repository "
            "name; use <name>@sha256:<hex> to pin a digest"
        )
    match = _REFERENCE.match(text)
    if match is None:
        if _REFERENCE.match(text.lower()):
            raise InvalidArgument(f"invalid reference {text!r}: repository name must be lowercase")
        raise InvalidArgument(
            f"invalid reference {text!r}: expected [registry[:port]/]name[:tag][@sha256:<hex>]"
        )
    name, tag, digest = match.group("name"), match.group("tag") or "", match.group("digest") or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"invalid reference {text!r}: repository name longer than {NAME_TOTAL_LENGTH_MAX}"
        )
    if digest:
        parse_digest(digest)
    domain, path = split_domain(name)
    if not _DOMAIN_ONLY.match(domain) or not _PATH_ONLY.match(path):
        raise InvalidArgument(f"invalid reference {text!r}: bad registry host or repository path")
    if default_tag and not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def familiar_name(ref: Reference) -> str:
    """The short form docker shows: ``busybox:latest`` for ``docker.io/library/busybox:latest``."""
    text = str(ref)
    prefix = f"{DEFAULT_DOMAIN}/{OFFICIAL_REPO_PREFIX}"
    if text.startswith(prefix) and "/" not in ref.path[len(OFFICIAL_REPO_PREFIX) :]:
        return text[len(prefix) :]
    if ref.domain == DEFAULT_DOMAIN:
        return text[len(DEFAULT_DOMAIN) + 1 :]
    return text
