"""The content labels containerd sets during a pull, so ctr and the GC see the same thing.

* ``containerd.io/gc.ref.content.*`` on an index or manifest names its children,
  so the garbage collector keeps them alive while the parent lives. containerd
  (images.ChildGCLabels + SetChildrenMappedLabels) labels *every* child of a
  parent, including index entries for platforms that were not fetched.
* ``containerd.io/distribution.source.<host>=<repo>[,<repo>...]`` on every blob
  records where it came from (host without port), so a later push to the same
  registry can mount instead of upload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.remotes.reference import Reference

GC_REF_CONTENT = "containerd.io/gc.ref.content"
GC_REF_CONFIG = f"{GC_REF_CONTENT}.config"
GC_REF_MANIFEST_PREFIX = f"{GC_REF_CONTENT}.m."
GC_REF_LAYER_PREFIX = f"{GC_REF_CONTENT}.l."
GC_REF_OTHER_PREFIX = f"{GC_REF_CONTENT}."
DISTRIBUTION_SOURCE_PREFIX = "containerd.io/distribution.source."
# containerd refuses labels whose key and value together exceed this.
MAX_LABEL_SIZE = 4096

_CHECKPOINT_CONFIGS = frozenset(
    {
        "application/vnd.containerd.container.criu.checkpoint.criu.tar",
        "application/vnd.containerd.container.checkpoint.config.v1+proto",
    }
)
_OCI_LAYER_PREFIX = "application/vnd.oci.image.layer."
_DOCKER_LAYERS = frozenset(
    {
        mediatypes.DOCKER_LAYER,
        mediatypes.DOCKER_LAYER_GZIP,
        mediatypes.DOCKER_LAYER_FOREIGN,
        mediatypes.DOCKER_LAYER_FOREIGN_GZIP,
    }
)


def is_layer_type(media_type: str) -> bool:
    """containerd's IsLayerType: any OCI layer type, or a Docker layer type (``+`` ignored)."""
    if media_type.startswith(_OCI_LAYER_PREFIX):
        return True
    return media_type.split("+", 1)[0] in _DOCKER_LAYERS


def child_label_key(child: Descriptor) -> str:
    """The label key (or key prefix, ending in ``.``) a parent uses to refer to ``child``."""
    media_type = child.media_type
    if mediatypes.is_config(media_type) or media_type in _CHECKPOINT_CONFIGS:
        return GC_REF_CONFIG
    if media_type in mediatypes.MANIFEST_TYPES:
        return GC_REF_MANIFEST_PREFIX
    if is_layer_type(media_type):
        return GC_REF_LAYER_PREFIX
    return GC_REF_OTHER_PREFIX


def child_gc_labels(children: Iterable[Descriptor]) -> dict[str, str]:
    """The gc.ref labels for a parent with ``children``, numbered per key in order.

    A prefix ending in ``.`` always gets a number (``m.0``, ``l.0``, ``l.1``); a
    full key gets one only from its second use (``config``, ``config1``).
    """
    labels: dict[str, str] = {}
    used: dict[str, int] = {}
    for child in children:
        key = child_label_key(child)
        index = used.get(key, 0)
        used[key] = index + 1
        if index > 0 or key.endswith("."):
            key = f"{key}{index}"
        labels[key] = child.digest
    return labels


def _source_host(domain: str) -> str:
    """The registry domain without its port, as Go's url.Hostname() gives it."""
    if domain.startswith("["):
        return domain[1:].split("]", 1)[0]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


@dataclass(frozen=True)
class DistributionSource:
    """Where a pull's blobs come from: the label key and the repository to record."""

    key: str
    repository: str

    @classmethod
    def for_reference(cls, ref: Reference) -> DistributionSource:
        return cls(DISTRIBUTION_SOURCE_PREFIX + _source_host(ref.domain), ref.path)

    def merged(self, existing: Mapping[str, str]) -> dict[str, str]:
        """The label to set given a blob's current labels; empty when it would be too long."""
        value = append_repository(existing.get(self.key, ""), self.repository)
        if len(self.key) + len(value) > MAX_LABEL_SIZE:
            return {}
        return {self.key: value}


def append_repository(current: str, repository: str) -> str:
    """Add ``repository`` to a comma-separated list, keeping it sorted and without duplicates."""
    repositories = {repo for repo in current.split(",") if repo}
    repositories.add(repository)
    return ",".join(sorted(repositories))


def source_repositories(labels: Mapping[str, str], domain: str) -> list[str]:
    """The repositories on ``domain``'s host that a blob is known to come from."""
    key = DISTRIBUTION_SOURCE_PREFIX + _source_host(domain)
    return [repo for repo in labels.get(key, "").split(",") if repo]
