"""The test-image builders and the test registry are themselves tested here."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import parse_config, parse_index, parse_manifest
from pycontainerd.remotes.platforms import default_platform
from tests.support import images
from tests.support import layers as L
from tests.support.registry import RegistryStartError, TestRegistry, bcrypt_hash


def _members(layer: images.Blob) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.read()))) as tar:
        return {member.name: member for member in tar.getmembers()}


def test_builds_are_deterministic() -> None:
    first, second = images.multilayer_image(), images.multilayer_image()
    assert [b.descriptor for b in first.blobs()] == [b.descriptor for b in second.blobs()]
    assert images.multiplatform_index().index == images.multiplatform_index().index


def test_busybox_layer_contents() -> None:
    image = images.busybox_image()
    members = _members(image.layers[0])
    assert members["bin/busybox"].mode == 0o755 and members["bin/busybox"].size > 100_000
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777
    assert members["home/app"].uid == 1000
    assert {m.mtime for m in members.values()} == {L.FIXED_MTIME}
    config = parse_config(image.config.read())
    assert config.platform.architecture == default_platform().architecture
    assert config.config["Cmd"] == ["sh"] and config.config["Env"][0].startswith("PATH=")
    manifest = parse_manifest(image.manifest.read())
    assert manifest.config == image.config.descriptor


def test_docker_variant_uses_docker_media_types() -> None:
    image = images.busybox_image(media="docker")
    manifest = json.loads(image.manifest.read())
    assert manifest["mediaType"] == mediatypes.DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == mediatypes.DOCKER_CONFIG
    assert manifest["layers"][0]["mediaType"] == mediatypes.DOCKER_LAYER_GZIP
    with pytest.raises(InvalidArgument, match="docker"):
        images.busybox_image(media="docker", compression="zstd")


def test_multiplatform_index_lists_host_and_foreign() -> None:
    index = images.multiplatform_index()
    parsed = parse_index(index.index.read())
    platforms = [m.platform for m in parsed.manifests]
    assert platforms == [default_platform(), images.foreign_platform()]
    foreign = parse_config(index.images[1].config.read())
    assert foreign.platform.architecture == images.foreign_platform().architecture


def test_custom_layers_from_entries() -> None:
    layer = [L.file("hello.txt", "hi\n"), L.whiteout("gone/file"), L.opaque("dir")]
    image = images.build_image([layer], compression="gzip")
    assert set(_members(image.layers[0])) == {"hello.txt", "gone/.wh.file", "dir/.wh..wh..opq"}


def test_write_oci_archive(tmp_path: Path) -> None:
    image = images.multiplatform_index()
    path = tmp_path / "image.tar"
    listed = images.write_oci_archive(path, image, "docker.io/library/busybox:1.0")
    index = images.read_oci_index(path)
    assert index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "docker.io/library/busybox:1.0",
        "org.opencontainers.image.ref.name": "1.0",
    }
    assert index["manifests"][0]["digest"] == listed.digest == image.index.descriptor.digest
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        assert json.loads(tar.extractfile("oci-layout").read()) == {"imageLayoutVersion": "1.0.0"}
    expected = {f"blobs/sha256/{b.descriptor.digest.split(':')[1]}" for b in image.blobs()}
    assert expected <= names


def test_large_image_writes_layers_to_files(tmp_path: Path) -> None:
    image = images.large_image(tmp_path, total_size=64_000, file_count=8, layer_count=2)
    assert len(image.layers) == 3 and len(image.diff_ids) == 3
    for blob in image.layers[1:]:
        assert blob.path is not None and blob.path.stat().st_size == blob.descriptor.size
        with tarfile.open(blob.path) as tar:
            assert len([m for m in tar.getmembers() if m.isfile()]) == 4


def test_registry_stops_and_cleans_up() -> None:
    with TestRegistry() as registry:
        pid = registry._process.pid
        storage = registry.storage_dir
        assert storage.parent.is_dir()
    assert not storage.parent.exists()
    assert not Path(f"/proc/{pid}").exists() or _is_zombie_free(pid)


def _is_zombie_free(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "State:\tZ" not in status.read_text()


def test_registry_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.devnull)
    with pytest.raises(RegistryStartError, match="apt-get install docker-registry"):
        TestRegistry().start()


def test_bcrypt_hash_format() -> None:
    hashed = bcrypt_hash("pw")
    assert hashed.startswith("$2b$") and len(hashed) == 60
