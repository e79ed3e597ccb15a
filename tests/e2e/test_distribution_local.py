"""The distribution machinery in-process: pull, unpack, push, export and import over the
daemon's own stores (no socket, no SDK), against the local test registry."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import mount
from pycontainerd.content.store import LocalContentStore
from pycontainerd.diff.walking import WalkingDiffer
from pycontainerd.distribution import archive, pull, push
from pycontainerd.distribution.labels import DISTRIBUTION_SOURCE_PREFIX, GC_REF_LAYER_PREFIX
from pycontainerd.distribution.local import LocalStores
from pycontainerd.distribution.progress import ProgressEvent
from pycontainerd.distribution.unpack import chain_ids, gc_snapshot_label, is_unpacked
from pycontainerd.events.exchange import Exchange
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.snapshots.native import NativeSnapshotter
from tests.support.images import PushedImage, push_busybox, push_multilayer
from tests.support.registry import TestRegistry

pytestmark = pytest.mark.e2e

NS = "transfer-test"
SNAPSHOTTER = "native"


class RecordingExchange(Exchange):
    def __init__(self) -> None:
        super().__init__()
        self.topics: list[str] = []

    def forward(self, envelope) -> None:  # type: ignore[no-untyped-def]
        self.topics.append(envelope.topic)
        super().forward(envelope)


class Daemon:
    """A daemon's stores on one root, without its gRPC server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backend = NativeSnapshotter(root / "native")
        self.metadata = MetadataStore(
            Database(root / "meta.db"),
            LocalContentStore(root / "content"),
            {SNAPSHOTTER: self.backend},
        )
        self.differ = WalkingDiffer(self.metadata.content, root / "tmpmounts")
        self.exchange = RecordingExchange()
        self.stores = LocalStores(self.metadata, [self.differ], NS, exchange=self.exchange)

    def close(self) -> None:
        self.metadata.close()
        self.backend.close()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path)
    try:
        yield daemon
    finally:
        daemon.close()
        mount.unmount_all(str(tmp_path), flags=mount.MNT_DETACH)


@pytest.fixture(scope="module")
def multilayer(registry: TestRegistry) -> PushedImage:
    return push_multilayer(registry, repo="test/local-multilayer")


def test_in_process_pull_unpacks_into_the_daemons_stores(local: Daemon, multilayer: PushedImage):
    if os.geteuid() != 0:
        pytest.skip("unpacking mounts snapshots")
    events: list[ProgressEvent] = []

    image = asyncio.run(
        pull.pull(
            local.stores,
            multilayer.ref,
            plain_http=True,
            unpack=True,
            snapshotter=SNAPSHOTTER,
            progress=events.append,
        )
    )

    md = local.metadata
    assert image.target.digest == multilayer.descriptor.digest
    assert md.images.get(NS, multilayer.ref).target.digest == multilayer.descriptor.digest
    manifest = md.content.info(NS, multilayer.manifest_digest)
    assert manifest.labels[f"{GC_REF_LAYER_PREFIX}0"] == multilayer.layer_digests[0]
    for digest in (multilayer.config_digest, *multilayer.layer_digests):
        labels = md.content.info(NS, digest).labels
        assert any(k.startswith(DISTRIBUTION_SOURCE_PREFIX) for k in labels), labels
    top = chain_ids(list(multilayer.diff_ids))[-1]
    config = md.content.info(NS, multilayer.config_digest)
    assert config.labels[gc_snapshot_label(SNAPSHOTTER)] == top
    assert md.snapshots.get(SNAPSHOTTER).stat(NS, top).name == top
    assert asyncio.run(is_unpacked(local.stores, image, SNAPSHOTTER))
    # The pull's own lease is gone; what it stored is held by the image.
    assert md.leases.list(NS) == []
    assert {"/images/create", "/snapshot/prepare", "/snapshot/commit"} <= set(local.exchange.topics)
    assert {e.digest for e in events} >= set(multilayer.layer_digests)


def test_in_process_pull_again_reuses_everything(local: Daemon, multilayer: PushedImage):
    asyncio.run(pull.pull(local.stores, multilayer.ref, plain_http=True))
    events: list[ProgressEvent] = []

    asyncio.run(pull.pull(local.stores, multilayer.ref, plain_http=True, progress=events.append))

    blob_states = {e.digest: e.status for e in events if e.digest in multilayer.layer_digests}
    assert set(blob_states.values()) == {"exists"}
    assert "/images/update" in local.exchange.topics


def test_a_pull_finding_blobs_stored_holds_them_in_its_lease(
    local: Daemon, multilayer: PushedImage
):
    asyncio.run(pull.pull(local.stores, multilayer.ref, plain_http=True))
    leases = local.metadata.leases
    lease = leases.create(NS, "second-pull", {})

    async def pull_again() -> None:
        async with local.stores.lease(lease.id):
            await pull.pull(local.stores, multilayer.ref, plain_http=True)

    asyncio.run(pull_again())

    held = {r.id for r in leases.list_resources(NS, lease.id) if r.type == "content"}
    wanted = {multilayer.manifest_digest, multilayer.config_digest, *multilayer.layer_digests}
    assert wanted <= held


def test_in_process_push_export_and_import(
    local: Daemon, registry: TestRegistry, tmp_path: Path
) -> None:
    pushed = push_busybox(registry, repo="test/local-busybox")
    asyncio.run(pull.pull(local.stores, pushed.ref, plain_http=True))
    target = registry.ref("test/local-pushed", "v1")

    root = asyncio.run(push.push(local.stores, target, pushed.ref, plain_http=True))
    assert root.digest == pushed.descriptor.digest

    again = Daemon(tmp_path / "second")
    try:
        asyncio.run(pull.pull(again.stores, target, plain_http=True))
        assert again.metadata.images.get(NS, target).target.digest == pushed.descriptor.digest

        tarball = tmp_path / "export.tar"
        asyncio.run(archive.export_archive(again.stores, tarball, [target]))
        imported = asyncio.run(archive.import_archive(local.stores, tarball))
    finally:
        again.close()
    assert [i.name for i in imported] == [target]
    assert local.metadata.images.get(NS, target).target.digest == pushed.descriptor.digest
