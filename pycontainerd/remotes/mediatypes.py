"""Media types of OCI and Docker image objects, and what kind of object each names."""

from __future__ import annotations

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_FOREIGN,
        DOCKER_LAYER_FOREIGN_GZIP,
    }
)

# The Accept header for resolving a tag: everything we can walk, newest kinds first.
RESOLVE_ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX, "*/*"])

# Layer compressions, keyed by the names callers pass (``gzip``, ``zstd``, ``none``).
OCI_LAYER_BY_COMPRESSION = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}
DOCKER_LAYER_BY_COMPRESSION = {"none": DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP}


def base_type(media_type: str) -> str:
    """Drop parameters such as ``; charset=utf-8`` from a Content-Type value."""
    return media_type.split(";", 1)[0].strip()


def is_index(media_type: str) -> bool:
    return base_type(media_type) in INDEX_TYPES


def is_manifest(media_type: str) -> bool:
    return base_type(media_type) in MANIFEST_TYPES


def is_manifest_or_index(media_type: str) -> bool:
    """True for objects served from the registry's ``/manifests/`` endpoint."""
    kind = base_type(media_type)
    return kind in INDEX_TYPES or kind in MANIFEST_TYPES or kind == DOCKER_MANIFEST_SCHEMA1


def is_config(media_type: str) -> bool:
    return base_type(media_type) in CONFIG_TYPES


def is_layer(media_type: str) -> bool:
    return base_type(media_type) in LAYER_TYPES


def layer_compression(media_type: str) -> str:
    """``gzip``, ``zstd`` or ``none`` for a layer media type (``+encrypted`` suffixes ignored)."""
    kind = base_type(media_type).removesuffix("+encrypted")
    if kind.endswith((".gzip", "+gzip")):
        return "gzip"
    if kind.endswith("+zstd"):
        return "zstd"
    return "none"
