"""The labels a pull sets, checked against containerd's conventions."""

from __future__ import annotations

import pytest

from pycontainerd.client.labels import (
    DistributionSource,
    append_repository,
    child_gc_labels,
    source_repositories,
)
from pycontainerd.client.progress import ref_key
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.remotes.reference import parse_reference


def _desc(media_type: str, n: int) -> Descriptor:
    return Descriptor(media_type, "sha256:" + f"{n:x}" * 64, 10)


def test_manifest_children_get_config_and_numbered_layers():
    config = _desc(mediatypes.OCI_CONFIG, 1)
    layers = [_desc(mediatypes.OCI_LAYER_GZIP, 2), _desc(mediatypes.OCI_LAYER_ZSTD, 3)]
    assert child_gc_labels([config, *layers]) == {
        "containerd.io/gc.ref.content.config": config.digest,
        "containerd.io/gc.ref.content.l.0": layers[0].digest,
        "containerd.io/gc.ref.content.l.1": layers[1].digest,
    }


def test_docker_types_are_recognised():
    config = _desc(mediatypes.DOCKER_CONFIG, 1)
    layer = _desc(mediatypes.DOCKER_LAYER_GZIP, 2)
    foreign = _desc(mediatypes.DOCKER_LAYER_FOREIGN_GZIP, 3)
    assert set(child_gc_labels([config, layer, foreign])) == {
        "containerd.io/gc.ref.content.config",
        "containerd.io/gc.ref.content.l.0",
        "containerd.io/gc.ref.content.l.1",
    }


def test_index_children_are_numbered_manifests_and_others():
    manifests = [_desc(mediatypes.OCI_MANIFEST, 1), _desc(mediatypes.DOCKER_MANIFEST, 2)]
    nested_index = _desc(mediatypes.OCI_INDEX, 3)
    assert child_gc_labels([*manifests, nested_index]) == {
        "containerd.io/gc.ref.content.m.0": manifests[0].digest,
        "containerd.io/gc.ref.content.m.1": manifests[1].digest,
        "containerd.io/gc.ref.content.0": nested_index.digest,
    }


def test_a_second_config_gets_a_number_suffix():
    first, second = _desc(mediatypes.OCI_CONFIG, 1), _desc(mediatypes.OCI_CONFIG, 2)
    assert child_gc_labels([first, second]) == {
        "containerd.io/gc.ref.content.config": first.digest,
        "containerd.io/gc.ref.content.config1": second.digest,
    }


@pytest.mark.parametrize(
    ("ref", "key", "repo"),
    [
        ("127.0.0.1:5000/test/busybox:latest", "containerd.io/distribution.source.127.0.0.1", "test/busybox"),
        ("busybox", "containerd.io/distribution.source.docker.io", "library/busybox"),
        ("localhost:5000/a/b/c:1", "containerd.io/distribution.source.localhost", "a/b/c"),
    ],
)  # fmt: skip
def test_distribution_source_key_drops_the_port(ref, key, repo):
    source = DistributionSource.for_reference(parse_reference(ref))
    assert (source.key, source.repository) == (key, repo)
    assert source.merged({}) == {key: repo}


def test_distribution_source_values_are_sorted_and_unique():
    assert append_repository("", "b/x") == "b/x"
    assert append_repository("c/x,a/x", "b/x") == "a/x,b/x,c/x"
    assert append_repository("a/x,b/x", "a/x") == "a/x,b/x"
    source = DistributionSource("containerd.io/distribution.source.h", "m/n")
    assert source.merged({source.key: "z/z"}) == {source.key: "m/n,z/z"}


def test_an_overlong_distribution_label_is_skipped():
    source = DistributionSource("containerd.io/distribution.source.h", "new")
    assert source.merged({source.key: "r" * 5000}) == {}


def test_source_repositories_reads_the_label_for_a_domain():
    labels = {"containerd.io/distribution.source.127.0.0.1": "a/b,c/d"}
    assert source_repositories(labels, "127.0.0.1:5000") == ["a/b", "c/d"]
    assert source_repositories(labels, "docker.io") == []


def test_ref_keys_name_the_kind_like_containerd():
    assert ref_key(_desc(mediatypes.OCI_INDEX, 1)).startswith("index-sha256:")
    assert ref_key(_desc(mediatypes.DOCKER_MANIFEST, 1)).startswith("manifest-sha256:")
    assert ref_key(_desc(mediatypes.OCI_CONFIG, 1)).startswith("config-sha256:")
    assert ref_key(_desc(mediatypes.OCI_LAYER_ZSTD, 1)).startswith("layer-sha256:")
    assert ref_key(_desc("application/x-other", 1)).startswith("unknown-sha256:")
