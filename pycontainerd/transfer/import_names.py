"""The names a Transfer import gives each image of an archive, by containerd's rules.

An import's destination (``ImageStore``) names images through its extra
references: a *prefix* reference names each manifest of the archive's index
from its annotations (``io.containerd.image.name``, else the OCI ref name,
tag-only names put under the prefix), and with ``add_digest`` also as
``prefix@digest`` (always for an image the annotations leave unnamed; unless
``skip_named_digest`` for a named one). ``allow_overwrite`` lets a full name
outside the prefix through. Complete (non-prefix) references do not apply to
the entries of an archive.

The archive's index itself is an image too: named by the store's own name
(ctr's --index-name), by each complete reference, and as ``name@digest`` by
each reference that adds digests. When the index has a name, the other
records carry labels that tie them to it for garbage collection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from pycontainerd.remotes.manifest import Descriptor

ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
LABEL_IMAGE_BACKREF = "containerd.io/gc.bref.image"
LABEL_EXPIRE = "containerd.io/gc.expire"

Named = list[tuple[str, dict[str, str]]]


class ImportReference(Protocol):
    """What an ``ImageReference`` of the transfer types carries."""

    name: str
    is_prefix: bool
    allow_overwrite: bool
    add_digest: bool
    skip_named_digest: bool


def _is_under(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or continues it at a path, tag or digest boundary."""
    if not name.startswith(prefix):
        return False
    return len(name) == len(prefix) or name[len(prefix)] in "/:@"


def _translator(prefix: str, *, only_under_prefix: bool) -> Callable[[str], str]:
    """Full names kept (when under ``prefix``, unless overwriting); tags put under it."""

    def translate(ref: str) -> str:
        if not prefix:
            return ""
        if any(c in ref for c in "/:@"):
            if only_under_prefix and not _is_under(ref, prefix):
                return ""
            return ref
        return f"{prefix}:{ref}"

    return translate


def _annotated_name(desc: Descriptor, translate: Callable[[str], str]) -> str:
    name = desc.annotations.get(ANNOTATION_IMAGE_NAME, "")
    if name:
        # A full containerd name is used as it is, or not at all.
        return name if translate(name) == name else ""
    ref = desc.annotations.get(ANNOTATION_REF_NAME, "")
    return translate(ref) if ref else ""


def _extra_labels(index_name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The extra records of a named index go with it, and expire at once on their own."""
    if not index_name:
        return dict(labels)
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {**labels, LABEL_IMAGE_BACKREF: index_name, LABEL_EXPIRE: now}


def entry_names(
    desc: Descriptor,
    references: Sequence[ImportReference],
    index_name: str = "",
    labels: Mapping[str, str] | None = None,
) -> Named:
    """(name, labels) of the records for one entry of the archive's index."""
    extra = _extra_labels(index_name, labels or {})
    return [(name, extra) for name in import_names(desc, references)]


def index_names(
    desc: Descriptor,
    references: Sequence[ImportReference],
    index_name: str = "",
    labels: Mapping[str, str] | None = None,
) -> Named:
    """(name, labels) of the records for the archive's index itself."""
    named: Named = [(index_name, dict(labels or {}))] if index_name else []
    extra = _extra_labels(index_name, labels or {})
    for ref in references:
        if ref.is_prefix and not ref.add_digest:
            continue
        named.append((f"{ref.name}@{desc.digest}" if ref.add_digest else ref.name, extra))
    return list({name: (name, labels) for name, labels in named}.values())


def import_names(desc: Descriptor, references: Sequence[ImportReference]) -> list[str]:
    """The image names for one entry of the archive's index, in order, without repeats."""
    names: list[str] = []
    for ref in references:
        if not ref.is_prefix:
            continue
        translate = _translator(ref.name, only_under_prefix=not ref.allow_overwrite)
        name = _annotated_name(desc, translate)
        if name:
            names.append(name)
        if ref.add_digest and (not name or not ref.skip_named_digest):
            names.append(f"{ref.name}@{desc.digest}")
    return list(dict.fromkeys(names))
