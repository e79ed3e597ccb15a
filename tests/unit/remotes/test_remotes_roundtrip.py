"""Push with our Pusher, then resolve and fetch back, against a real distribution registry."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest
import zstandard

from pycontainerd.digest import Hasher, digest_of_bytes
from pycontainerd.errdefs import InvalidArgument, NotFound
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.errors import DataLoss
from pycontainerd.remotes.fetcher import VerifyingReader, read_all
from pycontainerd.remotes.manifest import (
    Descriptor,
    children,
    parse_config,
    parse_index,
    parse_manifest,
)
from pycontainerd.remotes.platforms import default_matcher, default_platform
from tests.support import images
from tests.support.registry import TestRegistry


def _decompress(data: bytes, media_type: str) -> bytes:
    kind = mediatypes.layer_compression(media_type)
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


@pytest.mark.parametrize(
    ("media", "compression", "manifest_type", "layer_type"),
    [
        ("oci", "gzip", mediatypes.OCI_MANIFEST, mediatypes.OCI_LAYER_GZIP),
        ("oci", "zstd", mediatypes.OCI_MANIFEST, mediatypes.OCI_LAYER_ZSTD),
        ("oci", "none", mediatypes.OCI_MANIFEST, mediatypes.OCI_LAYER),
        ("docker", "gzip", mediatypes.DOCKER_MANIFEST, mediatypes.DOCKER_LAYER_GZIP),
    ],
)
def test_single_platform_round_trip(
    registry: TestRegistry, media: str, compression: str, manifest_type: str, layer_type: str
) -> None:
    pushed = images.push_multilayer(
        registry, repo=f"rt/{media}-{compression}", media=media, compression=compression
    )
    with registry.resolver() as resolver:
        name, desc = resolver.resolve(pushed.ref)
        assert name == pushed.ref
        assert desc.media_type == manifest_type
        assert desc.digest == pushed.manifest_digest

        fetcher = resolver.fetcher(name)
        manifest = parse_manifest(read_all(fetcher, desc), desc.media_type)
        assert [layer.digest for layer in manifest.layers] == list(pushed.layer_digests)
        assert {layer.media_type for layer in manifest.layers} == {layer_type}
        config = parse_config(read_all(fetcher, manifest.config))
        assert config.diff_ids == pushed.diff_ids
        assert config.platform.architecture == default_platform().architecture
        assert config.config["Cmd"] == ["sh"]

        for layer, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
            tar = _decompress(read_all(fetcher, layer), layer.media_type)
            assert str(digest_of_bytes(tar)) == diff_id
        last = _decompress(read_all(fetcher, manifest.layers[-1]), layer_type)
        with tarfile.open(fileobj=io.BytesIO(last)) as tar:
            names = tar.getnames()
        assert "data/.wh.remove-me.txt" in names and "opaque/.wh..wh..opq" in names


@pytest.mark.parametrize(
    ("media", "index_type"),
    [("oci", mediatypes.OCI_INDEX), ("docker", mediatypes.DOCKER_MANIFEST_LIST)],
)
def test_index_resolves_and_selects_host_platform(
    registry: TestRegistry, media: str, index_type: str
) -> None:
    pushed = images.push_multiplatform(registry, repo=f"multi/{media}", media=media)
    with registry.resolver() as resolver:
        name, desc = resolver.resolve(pushed.ref)
        assert desc.media_type == index_type
        assert desc.digest == pushed.index_digest
        fetcher = resolver.fetcher(name)
        index = parse_index(read_all(fetcher, desc))
        assert len(index.manifests) == 2
        chosen = [m for m in index.manifests if default_matcher().match(m.platform)]
        assert [m.digest for m in chosen] == [pushed.manifest_digest]
        for child in index.manifests:
            manifest_bytes = read_all(fetcher, child)
            config_desc = children(child, manifest_bytes)[0]
            config = parse_config(read_all(fetcher, config_desc))
            assert config.platform.architecture == child.platform.architecture


def test_resolve_by_digest_and_not_found(registry: TestRegistry) -> None:
    pushed = images.push_busybox(registry, repo="lookup/busybox")
    with registry.resolver() as resolver:
        by_digest = f"{registry.host}/lookup/busybox@{pushed.manifest_digest}"
        _, desc = resolver.resolve(by_digest)
        assert desc == pushed.descriptor
        with pytest.raises(NotFound, match="lookup/busybox:missing"):
            resolver.resolve(f"{registry.host}/lookup/busybox:missing")
        with pytest.raises(NotFound):
            resolver.resolve(f"{registry.host}/no/such/repo:latest")


def test_fetch_from_offset_resumes_a_blob(registry: TestRegistry) -> None:
    pushed = images.push_busybox(registry, repo="resume/busybox")
    layer = pushed.image.layers[0]
    whole = layer.read()
    offset = len(whole) // 3
    with registry.resolver() as resolver:
        fetcher = resolver.fetcher(pushed.ref)
        with fetcher.fetch(layer.descriptor, offset=offset) as reader:
            tail = reader.read()
        assert tail == whole[offset:]
        # A resumed download verifies with a hasher primed by the first part.
        hasher = Hasher()
        hasher.update(whole[:offset])
        stream = fetcher.fetch(layer.descriptor, offset=offset)
        with VerifyingReader(stream, layer.descriptor, offset=offset, hasher=hasher) as verified:
            assert verified.read() == whole[offset:]


def test_verifying_reader_rejects_wrong_content(registry: TestRegistry) -> None:
    pushed = images.push_busybox(registry, repo="verify/busybox")
    config = pushed.image.config.descriptor
    lying = Descriptor(config.media_type, "sha256:" + "0" * 64, config.size)
    with registry.resolver() as resolver:
        fetcher = resolver.fetcher(pushed.ref)
        with pytest.raises(NotFound):
            fetcher.fetch(lying)
        short = Descriptor(config.media_type, config.digest, config.size + 10)
        with pytest.raises(DataLoss, match="ended after"):
            VerifyingReader(io.BytesIO(pushed.image.config.read()), short).read()
        other = pushed.image.manifest.read()
        wrong = Descriptor(config.media_type, config.digest, len(other))
        with pytest.raises(DataLoss, match="digest mismatch"):
            VerifyingReader(io.BytesIO(other), wrong).read()


def test_push_skips_existing_and_supports_chunks_and_mounts(registry: TestRegistry) -> None:
    payload = b"chunked payload " * 5000
    desc = Descriptor.for_bytes(mediatypes.OCI_LAYER, payload)
    with registry.resolver() as resolver:
        pusher = resolver.pusher(f"{registry.host}/push/source:latest")
        assert not pusher.exists(desc)
        assert pusher.push(desc, io.BytesIO(payload), chunk_size=16 * 1024) is True
        assert pusher.exists(desc)
        assert pusher.push(desc, payload) is False

        target = resolver.pusher(f"{registry.host}/push/target:latest", mount_from="push/source")
        assert not target.exists(desc)
        assert target.push(desc, payload, mount_from="push/source") is False
        assert target.exists(desc)
        fetched = read_all(resolver.fetcher(f"{registry.host}/push/target:latest"), desc)
        assert fetched == payload


def test_push_rejects_data_that_does_not_match(registry: TestRegistry) -> None:
    desc = Descriptor.for_bytes(mediatypes.OCI_LAYER, b"right")
    with registry.resolver() as resolver:
        pusher = resolver.pusher(f"{registry.host}/push/bad:latest")
        with pytest.raises(InvalidArgument, match="does not match"):
            pusher.push(desc, b"wrong")
        with pytest.raises(InvalidArgument, match="only manifests take a tag"):
            pusher.push(desc, b"right", tag="latest")
        # A stream with wrong content is refused by the registry's digest check.
        with pytest.raises(InvalidArgument):
            pusher.push(desc, io.BytesIO(b"wrong"))


def test_manifest_pushed_by_digest_then_tagged(registry: TestRegistry) -> None:
    image = images.busybox_image()
    with registry.resolver() as resolver:
        pusher = resolver.pusher(f"{registry.host}/tagging/busybox:v1")
        for blob in image.blobs():
            pusher.push(blob.descriptor, blob.read())
        digest_ref = f"{registry.host}/tagging/busybox@{image.manifest.descriptor.digest}"
        assert resolver.resolve(digest_ref)[1].digest == image.manifest.descriptor.digest
        with pytest.raises(NotFound):
            resolver.resolve(f"{registry.host}/tagging/busybox:v1")
        pusher.push(image.manifest.descriptor, image.manifest.read(), tag="v1")
        assert resolver.resolve(f"{registry.host}/tagging/busybox:v1")[1].digest == (
            image.manifest.descriptor.digest
        )
