"""Images to and from OCI image layout tarballs (what ``ctr images export/import`` use).

An archive holds ``oci-layout``, ``index.json`` (one entry per image, named by
the ``io.containerd.image.name`` annotation, or ``org.opencontainers.image.ref.name``)
and ``blobs/sha256/<hex>``. Import stores every blob the archive has (with the
gc.ref labels a pull would give), then creates the image records; export
writes every blob of the named images that the content store holds.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING

from pycontainerd import errdefs
from pycontainerd.distribution.labels import child_gc_labels
from pycontainerd.distribution.progress import ProgressCallback, Reporter, Status
from pycontainerd.distribution.stores import Image
from pycontainerd.distribution.unpack import DEFAULT_SNAPSHOTTER, unpack_image
from pycontainerd.distribution.walk import document_children
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor

if TYPE_CHECKING:
    from pycontainerd.distribution.stores import Stores

ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
READ_SIZE = 1 << 20
#: Blobs up to this size are buffered in memory while an archive is written.
SPOOL_LIMIT = 8 << 20


def _blob_path(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded}"


def image_name(desc: Descriptor, base_name: str = "") -> str:
    """The name an index.json entry gives its image ("" when it gives none)."""
    name = desc.annotations.get(ANNOTATION_IMAGE_NAME, "")
    if name:
        return name
    ref = desc.annotations.get(ANNOTATION_REF_NAME, "")
    if not ref:
        return ""
    if base_name:
        return f"{base_name}:{ref}"
    return ref if ("/" in ref or ":" in ref) else ""


# -- import ------------------------------------------------------------------------------


class _ArchiveReader:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self._members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

    def has(self, name: str) -> bool:
        return name in self._members

    def open(self, name: str) -> IO[bytes]:
        member = self._members.get(name)
        stream = self._tar.extractfile(member) if member is not None else None
        if stream is None:
            raise errdefs.NotFound(f"the archive has no {name}")
        return stream

    def read(self, name: str) -> bytes:
        with self.open(name) as stream:
            return stream.read()


async def _chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := stream.read(READ_SIZE):
        yield chunk


async def import_archive(
    stores: Stores,
    path: str | os.PathLike[str],
    *,
    base_name: str = "",
    unpack: bool = False,
    snapshotter: str = DEFAULT_SNAPSHOTTER,
    progress: ProgressCallback | None = None,
    labels: Mapping[str, str] | None = None,
    digest_name: str = "",
    skip_named_digest: bool = False,
) -> list[Image]:
    """Import the images of an OCI layout tarball; returns the image records created.

    The records carry ``labels``. With ``digest_name``, each image is also
    recorded as ``<digest_name>@<digest>`` (containerd's digest references;
    ``skip_named_digest``: only for images the archive names no other way).
    ``base_name`` names images that only carry a tag (``ref.name`` = ``v1``).
    """
    report = Reporter(progress)
    try:
        tar = tarfile.open(path)  # noqa: SIM115 - closed below
    except (OSError, tarfile.TarError) as exc:
        raise errdefs.InvalidArgument(f"cannot read {path} as a tar archive: {exc}") from exc
    with tar:
        try:
            archive = _ArchiveReader(tar)
        except (OSError, tarfile.TarError) as exc:
            raise errdefs.InvalidArgument(f"cannot read {path} as a tar archive: {exc}") from exc
        if not archive.has("index.json"):
            raise errdefs.NotImplemented_(
                f"{path} has no index.json: only OCI image layout archives can be imported "
                "(docker save archives are not supported)"
            )
        index = json.loads(archive.read("index.json"))
        entries = [Descriptor.from_dict(d) for d in index.get("manifests") or []]
        images = []
        async with stores.lease_if_none():
            stored: set[str] = set()
            for entry in entries:
                await _store_tree(stores, archive, entry, stored, report)
            for entry in entries:
                name = image_name(entry, base_name)
                names = [name] if name else []
                if digest_name and (not name or not skip_named_digest):
                    names.append(f"{digest_name}@{entry.digest}")
                for each in names:
                    image = await stores.images.create_or_update(
                        Image(each, entry, dict(labels or {}))
                    )
                    report(each, entry.digest, Status.DONE)
                    images.append(image)
                if unpack and names:
                    await unpack_image(stores, images[-1], snapshotter=snapshotter)
    return images


async def _store_tree(
    stores: Stores,
    archive: _ArchiveReader,
    desc: Descriptor,
    stored: set[str],
    report: Reporter,
) -> None:
    """Store ``desc`` and the children the archive holds (children first)."""
    if desc.digest in stored:
        return
    stored.add(desc.digest)
    name = _blob_path(desc.digest)
    if not archive.has(name):
        if desc.platform is not None:
            return  # a platform the archive does not carry
        raise errdefs.NotFound(f"the archive lacks {desc.digest} ({desc.media_type})")
    labels: dict[str, str] = {}
    if mediatypes.is_manifest_or_index(desc.media_type):
        children = document_children(desc, archive.read(name))
        labels = child_gc_labels(children)
        for child in children:
            await _store_tree(stores, archive, child, stored, report)
    report.blob(desc, Status.UPLOADING)
    with archive.open(name) as stream:
        try:
            await stores.content.write(
                f"import-{desc.digest}",
                _chunks(stream),
                expected=desc.digest,
                total=desc.size,
                labels=labels,
            )
        except errdefs.AlreadyExists:
            if labels:
                await stores.content.update_labels(desc.digest, labels)
            report.blob(desc, Status.EXISTS, desc.size)
            return
    report.blob(desc, Status.DONE, desc.size)


# -- export ------------------------------------------------------------------------------


async def export_archive(
    stores: Stores,
    path: str | os.PathLike[str],
    names: Sequence[str],
    *,
    progress: ProgressCallback | None = None,
) -> None:
    """Write the images ``names`` (with all their stored content) as an OCI layout tar."""
    if not names:
        raise errdefs.InvalidArgument("name at least one image to export")
    report = Reporter(progress)
    images = [await stores.images.get(name) for name in names]
    manifests = []
    with tarfile.open(path, "w") as tar:
        _add_bytes(tar, "oci-layout", json.dumps(OCI_LAYOUT).encode())
        written: set[str] = set()
        for image in images:
            await _write_tree(stores, tar, image.target, written, report)
            annotations = dict(image.target.annotations)
            annotations[ANNOTATION_IMAGE_NAME] = image.name
            tag = image.name.rsplit("/", 1)[-1]
            if ":" in tag:
                annotations[ANNOTATION_REF_NAME] = tag.split(":", 1)[1]
            entry = image.target.to_dict() | {"annotations": annotations}
            manifests.append(entry)
        index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": manifests}
        _add_bytes(tar, "index.json", json.dumps(index).encode())


async def _write_tree(
    stores: Stores,
    tar: tarfile.TarFile,
    desc: Descriptor,
    written: set[str],
    report: Reporter,
    optional: bool = False,
) -> None:
    """Write ``desc`` and its children; under a platform's manifest, what is missing is
    skipped (a platform that was not pulled, or only its metadata)."""
    if desc.digest in written:
        return
    optional = optional or desc.platform is not None
    info = await stores.content.info_or_none(desc.digest)
    if info is None:
        if optional:
            return
        raise errdefs.NotFound(
            f"content {desc.digest} of the image is not in the content store: pull the image "
            "again (with --all-platforms for every platform) before exporting"
        )
    written.add(desc.digest)
    report.blob(desc, Status.DOWNLOADING)
    with tempfile.SpooledTemporaryFile(SPOOL_LIMIT) as spool:
        async for chunk in stores.content.read(desc.digest):
            spool.write(chunk)
        size = spool.tell()
        spool.seek(0)
        member = tarfile.TarInfo(_blob_path(desc.digest))
        member.size, member.mode = size, 0o444
        tar.addfile(member, spool)
        if mediatypes.is_manifest_or_index(desc.media_type):
            spool.seek(0)
            children = document_children(desc, spool.read())
        else:
            children = []
    report.blob(desc, Status.DONE, desc.size)
    for child in children:
        await _write_tree(stores, tar, child, written, report, optional)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size, member.mode = len(data), 0o444
    tar.addfile(member, io.BytesIO(data))
