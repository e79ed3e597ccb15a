"""Descriptors and the JSON documents of an image: manifest, index, config.

Parsing is tolerant of extra fields (they are kept in ``extra`` where it
matters) and strict about the fields we walk; encoding is deterministic
(compact JSON, keys in a fixed order) so building the same image twice gives
the same digests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pycontainerd.digest import digest_of_bytes, parse_digest
from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.platforms import Platform


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a blob is, its digest and its size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Descriptor:
        try:
            media_type, digest, size = data["mediaType"], data["digest"], data["size"]
        except (KeyError, TypeError) as exc:
            raise InvalidArgument(f"descriptor {data!r} lacks mediaType, digest or size") from exc
        if not isinstance(size, int) or size < 0:
            raise InvalidArgument(f"descriptor {digest!r} has invalid size {size!r}")
        parse_digest(digest)
        platform = data.get("platform")
        return cls(
            media_type=str(media_type),
            digest=str(digest),
            size=size,
            annotations=dict(data.get("annotations") or {}),
            platform=Platform.from_dict(platform) if platform else None,
            urls=tuple(data.get("urls") or ()),
        )

    @classmethod
    def for_bytes(cls, media_type: str, data: bytes, **kwargs: Any) -> Descriptor:
        """Describe ``data`` (sha256, exact size)."""
        return cls(media_type, str(digest_of_bytes(data)), len(data), **kwargs)


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """Compact JSON in insertion order: the bytes we hash and push."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker schema 2): one config and ordered layers."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mediatypes.OCI_MANIFEST
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())


@dataclass(frozen=True)
class Index:
    """An image index or Docker manifest list: per-platform manifests."""

    manifests: tuple[Descriptor, ...]
    media_type: str = mediatypes.OCI_INDEX
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [m.to_dict() for m in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())


def _load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return document


def detect_media_type(data: bytes, hint: str = "") -> str:
    """The media type of a manifest-ish document: its ``mediaType`` field, else its shape."""
    if hint and mediatypes.base_type(hint) not in ("", "application/json", "text/plain"):
        return mediatypes.base_type(hint)
    document = _load_json(data, "manifest")
    if isinstance(document.get("mediaType"), str):
        return document["mediaType"]
    if "manifests" in document:
        return mediatypes.OCI_INDEX
    if "config" in document and "layers" in document:
        return mediatypes.OCI_MANIFEST
    if "fsLayers" in document:
        return mediatypes.DOCKER_MANIFEST_SCHEMA1
    raise InvalidArgument("cannot tell what kind of manifest this is: no mediaType field")


def parse_manifest(data: bytes, media_type: str = "") -> Manifest:
    document = _load_json(data, "image manifest")
    kind = document.get("mediaType") or media_type or mediatypes.OCI_MANIFEST
    if not mediatypes.is_manifest(kind):
        raise InvalidArgument(f"expected an image manifest, got media type {kind!r}")
    try:
        config = Descriptor.from_dict(document["config"])
        layers = tuple(Descriptor.from_dict(layer) for layer in document.get("layers") or [])
    except (KeyError, TypeError) as exc:
        raise InvalidArgument(f"image manifest lacks a config descriptor: {exc}") from exc
    return Manifest(config, layers, kind, dict(document.get("annotations") or {}))


def parse_index(data: bytes, media_type: str = "") -> Index:
    document = _load_json(data, "image index")
    kind = document.get("mediaType") or media_type or mediatypes.OCI_INDEX
    if not mediatypes.is_index(kind):
        raise InvalidArgument(f"expected an image index, got media type {kind!r}")
    manifests = tuple(Descriptor.from_dict(m) for m in document.get("manifests") or [])
    return Index(manifests, kind, dict(document.get("annotations") or {}))


def children(desc: Descriptor, data: bytes) -> list[Descriptor]:
    """The descriptors ``desc``'s document refers to (empty for configs and layers)."""
    if mediatypes.is_index(desc.media_type):
        return list(parse_index(data, desc.media_type).manifests)
    if mediatypes.is_manifest(desc.media_type):
        manifest = parse_manifest(data, desc.media_type)
        return [manifest.config, *manifest.layers]
    return []


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config the runtime side needs; ``raw`` keeps everything."""

    platform: Platform
    diff_ids: tuple[str, ...]
    config: Mapping[str, Any]
    raw: Mapping[str, Any]


def parse_config(data: bytes) -> ImageConfig:
    document = _load_json(data, "image config")
    rootfs = document.get("rootfs") or {}
    diff_ids = tuple(rootfs.get("diff_ids") or ())
    for diff_id in diff_ids:
        parse_digest(diff_id)
    platform = Platform(
        os=str(document.get("os", "")),
        architecture=str(document.get("architecture", "")),
        variant=str(document.get("variant", "") or ""),
        os_version=str(document.get("os.version", "") or ""),
    )
    return ImageConfig(platform, diff_ids, dict(document.get("config") or {}), document)
