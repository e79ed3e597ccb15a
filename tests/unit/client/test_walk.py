"""Walking an image for a pull, with fake content instead of a registry and a daemon."""

from __future__ import annotations

import asyncio

import pytest

from pycontainerd import errdefs
from pycontainerd.client.pull import platform_policy
from pycontainerd.client.walk import ChildPolicy, ImageWalk, LabelsFor
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor, Index, Manifest
from pycontainerd.remotes.platforms import ALL, Platform, any_of, default_platform, only

HOST = default_platform()
FOREIGN = (
    Platform("linux", "s390x") if HOST.architecture != "s390x" else Platform("linux", "ppc64le")
)


class FakeStore:
    """A WalkTarget over an in-memory blob table, recording what was stored and labelled."""

    def __init__(self, blobs: dict[str, bytes], fail_on: str = "") -> None:
        self.blobs = blobs
        self.fail_on = fail_on
        self.stored: list[str] = []
        self.labels: dict[str, dict[str, str]] = {}

    async def store_document(self, desc: Descriptor, labels_for: LabelsFor) -> bytes:
        data = self.blobs[desc.digest]
        self.labels[desc.digest] = labels_for(data)
        self.stored.append(desc.digest)
        return data

    async def store_blob(self, desc: Descriptor) -> None:
        await asyncio.sleep(0)
        if desc.digest == self.fail_on:
            raise errdefs.Unavailable("registry went away")
        self.stored.append(desc.digest)


def _blob(blobs: dict[str, bytes], media_type: str, data: bytes, **kw) -> Descriptor:
    desc = Descriptor.for_bytes(media_type, data, **kw)
    blobs[desc.digest] = data
    return desc


def _image(blobs: dict[str, bytes], name: str, shared_layer: Descriptor, platform: Platform):
    config = _blob(blobs, mediatypes.OCI_CONFIG, f'{{"n":"{name}"}}'.encode())
    own = _blob(blobs, mediatypes.OCI_LAYER_GZIP, f"layer-{name}".encode())
    manifest = Manifest(config, (shared_layer, own))
    desc = _blob(blobs, mediatypes.OCI_MANIFEST, manifest.to_bytes(), platform=platform)
    return desc, config, own


@pytest.fixture
def index_tree():
    blobs: dict[str, bytes] = {}
    shared = _blob(blobs, mediatypes.OCI_LAYER_GZIP, b"shared base layer")
    host = _image(blobs, "host", shared, HOST)
    foreign = _image(blobs, "foreign", shared, FOREIGN)
    index = Index((host[0], foreign[0]))
    root = _blob(blobs, mediatypes.OCI_INDEX, index.to_bytes())
    return blobs, root, shared, host, foreign


def _walk(store: FakeStore, root: Descriptor, policy: ChildPolicy) -> list[Descriptor]:
    return asyncio.run(ImageWalk(store, policy).run(root))


def test_default_policy_fetches_the_host_platform_only(index_tree):
    blobs, root, shared, host, foreign = index_tree
    store = FakeStore(blobs)
    _walk(store, root, platform_policy(None, False))
    assert set(store.stored) == {
        root.digest,
        host[0].digest,
        host[1].digest,
        host[2].digest,
        shared.digest,
    }
    # The index still names every manifest, fetched or not (containerd does the same).
    assert store.labels[root.digest] == {
        "containerd.io/gc.ref.content.m.0": host[0].digest,
        "containerd.io/gc.ref.content.m.1": foreign[0].digest,
    }
    assert store.labels[host[0].digest] == {
        "containerd.io/gc.ref.content.config": host[1].digest,
        "containerd.io/gc.ref.content.l.0": shared.digest,
        "containerd.io/gc.ref.content.l.1": host[2].digest,
    }


def test_a_named_platform_fetches_that_one(index_tree):
    blobs, root, shared, host, foreign = index_tree
    store = FakeStore(blobs)
    _walk(store, root, platform_policy(str(FOREIGN), False))
    assert foreign[0].digest in store.stored and host[0].digest not in store.stored


def test_all_platforms_fetches_everything_once(index_tree):
    blobs, root, *_ = index_tree
    store = FakeStore(blobs)
    handled = _walk(store, root, platform_policy(None, True))
    assert sorted(store.stored) == sorted(blobs)  # the shared layer only once
    assert len(handled) == len(blobs)
    assert handled[0] == root


def test_no_matching_platform_is_not_found(index_tree):
    blobs, root, *_ = index_tree
    policy = ChildPolicy(any_of(Platform("windows", "arm64")), limit=1)
    with pytest.raises(errdefs.NotFound, match="no manifest .* matches"):
        _walk(FakeStore(blobs), root, policy)


def test_limit_keeps_the_best_match_first():
    low = Descriptor(
        mediatypes.OCI_MANIFEST, "sha256:" + "1" * 64, 1, platform=Platform("linux", "386")
    )
    best = Descriptor(
        mediatypes.OCI_MANIFEST, "sha256:" + "2" * 64, 1, platform=Platform("linux", "amd64")
    )
    parent = Descriptor(mediatypes.OCI_INDEX, "sha256:" + "3" * 64, 1)
    matcher = only(Platform("linux", "amd64"))
    assert ChildPolicy(matcher, limit=1).select(parent, [low, best]) == [best]
    assert ChildPolicy(matcher, limit=0).select(parent, [low, best]) == [low, best]
    assert ChildPolicy(ALL).select(parent, [low, best]) == [low, best]


def test_a_single_manifest_image_needs_no_platform():
    blobs: dict[str, bytes] = {}
    layer = _blob(blobs, mediatypes.DOCKER_LAYER_GZIP, b"l")
    config = _blob(blobs, mediatypes.DOCKER_CONFIG, b"{}")
    root = _blob(
        blobs,
        mediatypes.DOCKER_MANIFEST,
        Manifest(config, (layer,), mediatypes.DOCKER_MANIFEST).to_bytes(),
    )
    store = FakeStore(blobs)
    _walk(store, root, ChildPolicy(any_of(FOREIGN), limit=1))
    assert set(store.stored) == {root.digest, config.digest, layer.digest}


def test_schema1_manifests_are_refused():
    data = b'{"schemaVersion":1,"fsLayers":[]}'
    blobs: dict[str, bytes] = {}
    root = _blob(blobs, mediatypes.DOCKER_MANIFEST_SCHEMA1, data)
    with pytest.raises(errdefs.NotImplemented_, match="schema 1"):
        _walk(FakeStore(blobs), root, ChildPolicy())


def test_a_failing_blob_fails_the_walk(index_tree):
    blobs, root, shared, *_ = index_tree
    with pytest.raises(errdefs.Unavailable):
        _walk(FakeStore(blobs, fail_on=shared.digest), root, platform_policy(None, True))
