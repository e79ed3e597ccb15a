"""Deterministic test images built from Debian's static busybox, pushed with our Pusher.

Builders return in-memory :class:`Image` / :class:`ImageIndex` objects; ``push_*``
helpers put them into a :class:`~tests.support.registry.TestRegistry` and return a
:class:`PushedImage` with the digests tests assert on; :func:`write_oci_archive`
writes them as an OCI image layout tar for import tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor, Index, Manifest, canonical_json
from pycontainerd.remotes.platforms import Platform, default_platform
from pycontainerd.remotes.reference import parse_reference
from tests.support import layers as L
from tests.support.registry import TestRegistry

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CREATED = "2024-01-01T00:00:00Z"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
BUSYBOX_APPLETS = (
    "cat", "chmod", "chown", "cp", "date", "df", "du", "echo", "env", "false", "find", "grep",
    "head", "hostname", "id", "kill", "ln", "ls", "mkdir", "mount", "mv", "nc", "printf", "ps",
    "pwd", "readlink", "rm", "rmdir", "sed", "seq", "sh", "sleep", "sort", "stat", "tail", "tee",
    "test", "top", "touch", "true", "umount", "uname", "wc", "wget", "whoami", "yes",
)  # fmt: skip
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"


@dataclass(frozen=True)
class Blob:
    """A piece of content: its descriptor and its bytes (in memory or in a file)."""

    descriptor: Descriptor
    data: bytes | None = None
    path: Path | None = None

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")

    def read(self) -> bytes:
        with self.open() as stream:
            return stream.read()


@dataclass(frozen=True)
class Image:
    """One platform's image: manifest, config and layers (base first)."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    diff_ids: tuple[str, ...]
    platform: Platform

    @property
    def root(self) -> Blob:
        return self.manifest

    def blobs(self) -> list[Blob]:
        """Every blob, in push order (a manifest after what it refers to)."""
        return [*self.layers, self.config, self.manifest]


@dataclass(frozen=True)
class ImageIndex:
    """A multi-platform image: an index (or Docker manifest list) over images."""

    index: Blob
    images: tuple[Image, ...]

    @property
    def root(self) -> Blob:
        return self.index

    def blobs(self) -> list[Blob]:
        seen: dict[str, Blob] = {}
        for image in self.images:
            for blob in image.blobs():
                seen.setdefault(blob.descriptor.digest, blob)
        return [*seen.values(), self.index]


AnyImage = Image | ImageIndex


@dataclass(frozen=True)
class PushedImage:
    """What a push left in the registry, for tests to assert on."""

    ref: str
    descriptor: Descriptor  # the root: manifest, or index when multi-platform
    manifest_digest: str  # the host platform's manifest
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    image: AnyImage
    index_digest: str | None = None


# -- building ---------------------------------------------------------------------------


def busybox_binary() -> Path:
    """The static busybox binary from Debian's busybox-static package."""
    found = shutil.which("busybox")
    if found is None:
        raise FileNotFoundError("busybox not found: `apt-get install busybox-static`")
    path = Path(found).resolve()
    if L.elf_interpreter(path) is not None:
        raise FileNotFoundError(
            f"{path} is dynamically linked: `apt-get install busybox-static` for a static busybox"
        )
    return path


def busybox_entries() -> list[L.TarEntry]:
    """The root filesystem of the ``busybox`` test image."""
    entries = [
        L.directory("bin"),
        L.file("bin/busybox", busybox_binary().read_bytes(), mode=0o755),
        *(L.symlink(f"bin/{applet}", "busybox") for applet in BUSYBOX_APPLETS),
        L.directory("dev"),
        L.directory("etc"),
        L.file("etc/group", GROUP),
        L.file("etc/passwd", PASSWD),
        L.directory("home"),
        L.directory("home/app", uid=1000, gid=1000),
        L.directory("proc"),
        L.directory("root", mode=0o700),
        L.directory("sys"),
        L.directory("tmp", mode=0o1777),
    ]
    return entries


def _layer_media_type(media: str, compression: str) -> str:
    table = (
        mediatypes.OCI_LAYER_BY_COMPRESSION
        if media == "oci"
        else mediatypes.DOCKER_LAYER_BY_COMPRESSION
    )
    if media not in ("oci", "docker") or compression not in table:
        raise InvalidArgument(
            f"no layer media type for media={media!r} compression={compression!r}: "
            "use media oci (gzip, zstd, none) or docker (gzip, none)"
        )
    return table[compression]


def _blob(media_type: str, data: bytes) -> Blob:
    return Blob(Descriptor.for_bytes(media_type, data), data)


def build_layer(
    entries: Sequence[L.TarEntry], media: str = "oci", compression: str = "gzip"
) -> tuple[Blob, str]:
    """A layer blob and its diff ID (digest of the uncompressed tar)."""
    tar = L.tar_bytes(entries)
    blob = _blob(_layer_media_type(media, compression), L.compress(tar, compression))
    return blob, "sha256:" + hashlib.sha256(tar).hexdigest()


def config_document(
    platform: Platform,
    diff_ids: Sequence[str],
    *,
    cmd: Sequence[str] = ("sh",),
    env: Sequence[str] = (DEFAULT_PATH_ENV,),
    working_dir: str = "/",
    user: str = "",
    labels: Mapping[str, str] | None = None,
) -> dict:
    """An image config (the same JSON shape serves OCI and Docker)."""
    config: dict = {"Env": list(env), "Cmd": list(cmd), "WorkingDir": working_dir}
    if user:
        config["User"] = user
    if labels:
        config["Labels"] = dict(labels)
    document: dict = {
        "created": CREATED,
        "architecture": platform.architecture,
        "os": platform.os,
    }
    if platform.variant:
        document["variant"] = platform.variant
    document["config"] = config
    document["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    document["history"] = [
        {"created": CREATED, "created_by": f"pycontainerd test layer {n}"}
        for n in range(len(diff_ids))
    ]
    return document


def assemble_image(
    layer_blobs: Sequence[Blob],
    diff_ids: Sequence[str],
    *,
    media: str = "oci",
    platform: Platform | None = None,
    **config_options,
) -> Image:
    """Config and manifest over ready-made layer blobs."""
    platform = platform or default_platform()
    config_type, manifest_type = (
        (mediatypes.OCI_CONFIG, mediatypes.OCI_MANIFEST)
        if media == "oci"
        else (mediatypes.DOCKER_CONFIG, mediatypes.DOCKER_MANIFEST)
    )
    config = _blob(
        config_type, canonical_json(config_document(platform, diff_ids, **config_options))
    )
    manifest = Manifest(
        config.descriptor, tuple(b.descriptor for b in layer_blobs), media_type=manifest_type
    )
    return Image(
        manifest=_blob(manifest_type, manifest.to_bytes()),
        config=config,
        layers=tuple(layer_blobs),
        diff_ids=tuple(diff_ids),
        platform=platform,
    )


def build_image(
    layer_entries: Sequence[Sequence[L.TarEntry]],
    *,
    media: str = "oci",
    compression: str = "gzip",
    platform: Platform | None = None,
    **config_options,
) -> Image:
    """An image from layers given as lists of tar entries (base layer first).

    ``media`` is ``oci`` or ``docker`` (schema 2); ``compression`` is ``gzip``,
    ``zstd`` (OCI only) or ``none``; ``config_options`` go to :func:`config_document`.
    """
    built = [build_layer(entries, media, compression) for entries in layer_entries]
    return assemble_image(
        [blob for blob, _ in built],
        [diff_id for _, diff_id in built],
        media=media,
        platform=platform,
        **config_options,
    )


def busybox_image(
    media: str = "oci", compression: str = "gzip", platform: Platform | None = None
) -> Image:
    return build_image([busybox_entries()], media=media, compression=compression, platform=platform)


def multilayer_changes() -> list[list[L.TarEntry]]:
    """Two layers over busybox that exercise every layer-apply rule.

    The result after applying them is :data:`MULTILAYER_EXPECTED`.
    """
    first = [
        L.directory("data"),
        L.file("data/keep.txt", "keep\n"),
        L.file("data/remove-me.txt", "gone soon\n"),
        L.directory("data/dir-to-file"),
        L.file("data/dir-to-file/child.txt", "child\n"),
        L.directory("opaque"),
        L.file("opaque/old-1.txt", "old 1\n"),
        L.file("opaque/old-2.txt", "old 2\n"),
        L.directory("links"),
        L.file("links/target.txt", "target\n"),
        L.hardlink("links/hard.txt", "links/target.txt"),
        L.symlink("links/relative", "target.txt"),
        L.symlink("links/absolute", "/links/target.txt"),
        L.file("app/owned.txt", "owned by app\n", uid=1000, gid=1000),
    ]
    second = [
        L.whiteout("data/remove-me.txt"),
        L.file("data/dir-to-file", "now a file\n"),
        L.opaque("opaque"),
        L.file("opaque/new.txt", "new\n"),
        L.file("data/keep.txt", "kept and changed\n"),
    ]
    return [first, second]


# path -> (kind, content or link target); paths listed as None must not exist.
MULTILAYER_EXPECTED: dict[str, tuple[str, str] | None] = {
    "data/keep.txt": ("file", "kept and changed\n"),
    "data/remove-me.txt": None,
    "data/dir-to-file": ("file", "now a file\n"),
    "opaque/old-1.txt": None,
    "opaque/old-2.txt": None,
    "opaque/new.txt": ("file", "new\n"),
    "links/target.txt": ("file", "target\n"),
    "links/hard.txt": ("hardlink", "links/target.txt"),
    "links/relative": ("symlink", "target.txt"),
    "links/absolute": ("symlink", "/links/target.txt"),
    "app/owned.txt": ("file", "owned by app\n"),
}


def overlay_edge_changes() -> list[list[L.TarEntry]]:
    """Four layers over busybox with every case a layer extracted on its own must get right.

    Whiteouts of files and of a directory from lower layers, an opaque directory, a
    directory replaced by a file and back, a layer writing through a symlinked
    directory of a lower one, hard links, directories a layer implies whose mode and
    owner are below it, and a directory implied before the layer lists it.
    """
    first = [
        L.directory("data"),
        L.file("data/keep.txt", "keep\n"),
        L.file("data/remove-me.txt", "gone soon\n"),
        L.directory("data/remove-dir"),
        L.file("data/remove-dir/inner.txt", "inner\n"),
        L.directory("opaque"),
        L.file("opaque/old.txt", "old\n"),
        L.directory("opaque/old-dir"),
        L.file("opaque/old-dir/x.txt", "x\n"),
        L.directory("flip"),
        L.file("flip/child.txt", "child\n"),
        L.directory("real", mode=0o750, uid=1000, gid=1000),
        L.file("real/orig.txt", "orig\n"),
        L.symlink("linked", "real"),
        L.directory("owned", mode=0o700, uid=1000, gid=1000),
        L.directory("owned/sub", mode=0o711, uid=1001, gid=1002),
        L.file("owned/sub/f.txt", "f\n"),
        L.directory("links"),
        L.file("links/target.txt", "target\n"),
        L.hardlink("links/hard.txt", "links/target.txt"),
    ]
    second = [
        L.whiteout("data/remove-me.txt"),
        L.whiteout("data/remove-dir"),
        L.opaque("opaque"),
        L.file("opaque/new.txt", "new\n"),
        L.file("flip", "now a file\n"),
        L.file("owned/sub/deeper/new.txt", "below implied directories\n"),
        L.directory("links2"),
        L.file("links2/a.txt", "a\n"),
        L.hardlink("links2/b.txt", "links2/a.txt"),
        L.file("data/keep.txt", "kept and changed\n"),
    ]
    third = [L.file("linked/through.txt", "through the symlinked directory\n")]
    fourth = [
        L.directory("flip"),
        L.file("flip/back.txt", "a directory again\n"),
        L.whiteout("opaque/new.txt"),
        L.file("late/x.txt", "x\n"),
        L.directory("late", mode=0o700, uid=7, gid=7),
    ]
    return [first, second, third, fourth]


def overlay_edge_image(compression: str = "gzip") -> Image:
    return build_image([busybox_entries(), *overlay_edge_changes()], compression=compression)


def multilayer_image(
    media: str = "oci", compression: str = "gzip", platform: Platform | None = None
) -> Image:
    return build_image(
        [busybox_entries(), *multilayer_changes()],
        media=media,
        compression=compression,
        platform=platform,
    )


def foreign_platform(host: Platform | None = None) -> Platform:
    """A platform this host cannot run natively: arm64 on amd64, s390x elsewhere."""
    host = host or default_platform()
    if host.architecture != "arm64":
        return Platform("linux", "arm64", "v8")
    return Platform("linux", "s390x")


def build_index(images: Sequence[Image], media: str = "oci") -> ImageIndex:
    index_type = mediatypes.OCI_INDEX if media == "oci" else mediatypes.DOCKER_MANIFEST_LIST
    manifests = tuple(
        Descriptor(
            image.manifest.descriptor.media_type,
            image.manifest.descriptor.digest,
            image.manifest.descriptor.size,
            platform=image.platform,
        )
        for image in images
    )
    document = Index(manifests, media_type=index_type)
    return ImageIndex(_blob(index_type, document.to_bytes()), tuple(images))


def multiplatform_index(
    media: str = "oci",
    compression: str = "gzip",
    others: Sequence[Platform] | None = None,
) -> ImageIndex:
    """Busybox for this host plus images for ``others`` (valid blobs, foreign config).

    Each foreign image gets an ``/etc/platform`` file so its layer digest differs.
    """
    host_image = busybox_image(media, compression)
    images = [host_image]
    for platform in others or [foreign_platform()]:
        marker = [L.directory("etc"), L.file("etc/platform", f"{platform}\n")]
        images.append(
            build_image(
                [busybox_entries(), marker],
                media=media,
                compression=compression,
                platform=platform,
            )
        )
    return build_index(images, media)


def large_image(
    workdir: Path,
    *,
    total_size: int,
    file_count: int,
    layer_count: int,
    compression: str = "gzip",
    seed: int = 0,
) -> Image:
    """A big image for benchmarks: random (incompressible) files spread over layers.

    Layers are written to files under ``workdir`` (not kept in memory); the base
    layer is busybox so the image still runs.
    """
    if layer_count < 1 or file_count < layer_count or total_size < file_count:
        raise InvalidArgument("need layer_count >= 1, file_count >= layer_count, size >= files")
    rng = random.Random(seed)
    base, base_diff = build_layer(busybox_entries(), "oci", compression)
    blobs, diff_ids = [base], [base_diff]
    file_size = total_size // file_count
    for layer_number in range(layer_count):
        files = range(layer_number, file_count, layer_count)
        path = workdir / f"layer-{layer_number}.tar.{compression}"
        blob, diff_id = _write_random_layer(path, layer_number, files, file_size, rng, compression)
        blobs.append(blob)
        diff_ids.append(diff_id)
    return assemble_image(blobs, diff_ids)


def _write_random_layer(
    path: Path, number: int, files: range, file_size: int, rng: random.Random, compression: str
) -> tuple[Blob, str]:
    uncompressed = hashlib.sha256()
    with path.open("wb") as out, L.compressing_writer(out, compression) as packed:
        tar_stream = L.HashingWriter(packed, uncompressed)
        with tarfile.open(fileobj=tar_stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(L.tar_info(L.directory(f"large/{number}")))
            for index in files:
                info = L.tar_info(L.file(f"large/{number}/file-{index:06d}", b""))
                info.size = file_size
                tar.addfile(info, io.BytesIO(rng.randbytes(file_size)))
    media_type = _layer_media_type("oci", compression)
    digest = hashlib.sha256()
    with path.open("rb") as packed_file:
        while chunk := packed_file.read(1 << 20):
            digest.update(chunk)
    descriptor = Descriptor(media_type, "sha256:" + digest.hexdigest(), path.stat().st_size)
    return Blob(descriptor, path=path), "sha256:" + uncompressed.hexdigest()


# -- pushing ------------------------------------------------------------------------------


def push_image(
    registry: TestRegistry, image: AnyImage, repo: str, tag: str = "latest"
) -> PushedImage:
    """Push every blob of ``image`` with our Pusher, then tag the root."""
    ref = registry.ref(repo, tag)
    with registry.resolver(registry.credentials()) as resolver:
        pusher = resolver.pusher(ref)
        root = image.root
        for blob in image.blobs():
            is_root = blob is root
            with blob.open() as stream:
                pusher.push(blob.descriptor, stream, tag=tag if is_root else None)
    host_image = image if isinstance(image, Image) else image.images[0]
    return PushedImage(
        ref=ref,
        descriptor=root.descriptor,
        manifest_digest=host_image.manifest.descriptor.digest,
        config_digest=host_image.config.descriptor.digest,
        layer_digests=tuple(b.descriptor.digest for b in host_image.layers),
        diff_ids=host_image.diff_ids,
        image=image,
        index_digest=root.descriptor.digest if isinstance(image, ImageIndex) else None,
    )


def push_busybox(
    registry: TestRegistry,
    repo: str = "library/busybox",
    tag: str = "latest",
    media: str = "oci",
    compression: str = "gzip",
) -> PushedImage:
    return push_image(registry, busybox_image(media, compression), repo, tag)


def push_multilayer(
    registry: TestRegistry,
    repo: str = "test/multilayer",
    tag: str = "latest",
    media: str = "oci",
    compression: str = "gzip",
) -> PushedImage:
    return push_image(registry, multilayer_image(media, compression), repo, tag)


def push_multiplatform(
    registry: TestRegistry,
    repo: str = "test/multiplatform",
    tag: str = "latest",
    media: str = "oci",
    compression: str = "gzip",
) -> PushedImage:
    return push_image(registry, multiplatform_index(media, compression), repo, tag)


# -- OCI layout archives -------------------------------------------------------------------


def write_oci_archive(path: Path, image: AnyImage, name: str) -> Descriptor:
    """Write ``image`` as an OCI image layout tar (what ``ctr import`` reads).

    ``name`` is the full image name (``docker.io/library/busybox:latest``); it is
    recorded as ``io.containerd.image.name`` and its tag as
    ``org.opencontainers.image.ref.name``. Returns the root descriptor as listed.
    """
    reference = parse_reference(name)
    root = image.root.descriptor
    annotations = {ANNOTATION_IMAGE_NAME: str(reference)}
    if reference.tag:
        annotations[ANNOTATION_REF_NAME] = reference.tag
    listed = Descriptor(root.media_type, root.digest, root.size, annotations=annotations)
    index = Index((listed,), media_type=mediatypes.OCI_INDEX)
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", index.to_bytes())
        for directory_name in ("blobs", "blobs/sha256"):
            tar.addfile(L.tar_info(L.directory(directory_name)))
        for blob in _unique(image.blobs()):
            algorithm, _, hex_digest = blob.descriptor.digest.partition(":")
            info = L.tar_info(L.file(f"blobs/{algorithm}/{hex_digest}", b""))
            info.size = blob.descriptor.size
            with blob.open() as stream:
                tar.addfile(info, stream)
    return listed


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(L.tar_info(L.file(name, data)), io.BytesIO(data))


def _unique(blobs: Sequence[Blob]) -> Iterator[Blob]:
    seen: set[str] = set()
    for blob in blobs:
        if blob.descriptor.digest not in seen:
            seen.add(blob.descriptor.digest)
            yield blob


def read_oci_index(path: Path) -> dict:
    """The ``index.json`` of an OCI layout tar (a small convenience for import tests)."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        return json.loads(member.read())


__all__ = [
    "AnyImage",
    "Blob",
    "Image",
    "ImageIndex",
    "MULTILAYER_EXPECTED",
    "PushedImage",
    "build_image",
    "build_index",
    "build_layer",
    "busybox_entries",
    "busybox_image",
    "foreign_platform",
    "large_image",
    "multilayer_changes",
    "multilayer_image",
    "multiplatform_index",
    "push_busybox",
    "push_image",
    "push_multilayer",
    "push_multiplatform",
    "write_oci_archive",
]
