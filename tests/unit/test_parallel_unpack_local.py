"""The daemon's unpack over its own stores: layers extracted beside each other, and
unpacks of one image at once making each chain once.

The blobs are written straight into the content store; nothing is pulled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import Message

from pycontainerd import errdefs, mount
from pycontainerd.content.store import LocalContentStore
from pycontainerd.diff.walking import WalkingDiffer
from pycontainerd.distribution.coordination import coordination_for
from pycontainerd.distribution.local import LocalStores
from pycontainerd.distribution.unpack import chain_ids, unpack_layers
from pycontainerd.events.exchange import Exchange
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.snapshots.overlay import OverlaySnapshotter
from tests.support import layers as L
from tests.support.images import (
    Image,
    assemble_image,
    build_image,
    busybox_entries,
    overlay_edge_image,
)
from tests.support.trees import describe_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking mounts snapshots")


class RecordingExchange(Exchange):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, str, Message]] = []

    def publish(self, namespace: str, topic: str, event: Message) -> None:
        self.published.append((namespace, topic, event))
        super().publish(namespace, topic, event)

    def events(self, namespace: str, topic: str) -> list[Message]:
        return [e for ns, t, e in self.published if ns == namespace and t == topic]


class Daemon:
    """The stores of a daemon with both snapshotters, without its gRPC server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backends = {
            "overlayfs": OverlaySnapshotter(root / "overlayfs"),
            "native": NativeSnapshotter(root / "native"),
        }
        self.metadata = MetadataStore(
            Database(root / "meta.db"), LocalContentStore(root / "content"), dict(self.backends)
        )
        self.differ = WalkingDiffer(self.metadata.content, root / "tmpmounts")
        self.exchange = RecordingExchange()

    def stores(self, namespace: str) -> LocalStores:
        return LocalStores(self.metadata, [self.differ], namespace, exchange=self.exchange)

    def set_unpacks(self, count: int) -> None:
        coordination_for(self.metadata).max_concurrent_unpacks = count

    def close(self) -> None:
        self.metadata.close()
        for backend in self.backends.values():
            backend.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    made = Daemon(tmp_path)
    try:
        yield made
    finally:
        made.close()
        mount.unmount_all(str(tmp_path), flags=mount.MNT_DETACH)


async def store_image(stores: LocalStores, image: Image) -> None:
    for blob in (image.config, *image.layers):
        d = blob.descriptor
        await stores.content.write(f"test-{d.digest}", blob.read(), expected=d.digest, total=d.size)


async def unpack(stores: LocalStores, image: Image, snapshotter: str = "overlayfs") -> str:
    layers = [blob.descriptor for blob in image.layers]
    async with stores.lease_if_none():
        return await unpack_layers(stores, image.config.descriptor, layers, snapshotter)


def rootfs(daemon: Daemon, namespace: str, chain_id: str, snapshotter: str = "overlayfs") -> dict:
    backend = daemon.metadata.snapshots.get(snapshotter)
    key = f"view-{namespace}"
    mounts = backend.view(namespace, key, chain_id)
    try:
        with mount.temp_mount(mounts, parent=str(daemon.root)) as root:
            return describe_tree(Path(root))
    finally:
        backend.remove(namespace, key)


def prepares(daemon: Daemon, namespace: str) -> list[tuple[str, str]]:
    return [(e.key, e.parent) for e in daemon.exchange.events(namespace, "/snapshot/prepare")]  # type: ignore[attr-defined]


def unpack_in(daemon: Daemon, namespace: str, image: Image, unpacks: int) -> dict:
    daemon.set_unpacks(unpacks)
    stores = daemon.stores(namespace)

    async def run() -> str:
        await store_image(stores, image)
        return await unpack(stores, image)

    return rootfs(daemon, namespace, asyncio.run(run()))


def test_parallel_unpack_gives_the_sequential_root_filesystem(daemon: Daemon) -> None:
    image = overlay_edge_image()

    sequential = unpack_in(daemon, "sequential", image, 1)
    parallel = unpack_in(daemon, "parallel", image, 4)

    assert parallel == sequential
    assert sequential["data/keep.txt"][4] == b"kept and changed\n"
    for gone in ("data/remove-me.txt", "data/remove-dir", "opaque/old.txt", "opaque/new.txt"):
        assert gone not in sequential
    assert sequential["owned/sub"][1:4] == (0o711, 1001, 1002)  # implied by layer 2
    assert sequential["flip/back.txt"][4] == b"a directory again\n"
    assert "flip/child.txt" not in sequential
    assert sequential["links2/b.txt"][6] == "links2/a.txt"
    # The sequential run staged nothing; the parallel one staged every layer but the
    # first without a parent, and applied the one writing through a symlink again.
    assert all(parent for _, parent in prepares(daemon, "sequential")[1:])
    staged = [key for key, parent in prepares(daemon, "parallel") if not parent]
    assert len(staged) == len(image.layers)  # base layer + 4 staged
    chain = chain_ids(image.diff_ids)
    applied_again = [parent for _, parent in prepares(daemon, "parallel") if parent]
    assert applied_again == [chain[2]]  # the third change writes through `linked`


def test_parallel_unpack_only_on_overlayfs(daemon: Daemon) -> None:
    daemon.set_unpacks(4)
    stores = daemon.stores("native")
    image = overlay_edge_image()

    async def run() -> str:
        await store_image(stores, image)
        return await unpack(stores, image, "native")

    top = asyncio.run(run())

    assert top == chain_ids(image.diff_ids)[-1]
    assert all(parent for _, parent in prepares(daemon, "native")[1:])


def test_a_layer_that_does_not_stage_is_applied_in_order(daemon: Daemon) -> None:
    # A hard link to a file of the layer below: overlay apply refuses it either way.
    image = build_image([busybox_entries(), [L.file("x.txt", "x")], [L.hardlink("y.txt", "x.txt")]])
    daemon.set_unpacks(4)
    stores = daemon.stores("bad-link")

    async def run() -> str:
        await store_image(stores, image)
        return await unpack(stores, image)

    with pytest.raises(Exception, match="does not exist in the layer or its parents"):
        asyncio.run(run())
    chain = chain_ids(image.diff_ids)
    assert [parent for _, parent in prepares(daemon, "bad-link") if parent] == [chain[1]]
    backend = daemon.metadata.snapshots.get("overlayfs")
    assert [info.name for info in backend.list("bad-link")] == sorted(chain[:2])


def test_a_failing_base_layer_leaves_no_staged_snapshot(daemon: Daemon) -> None:
    good = overlay_edge_image()
    wrong = ("sha256:" + "0" * 64, *good.diff_ids[1:])  # the config lies about the base
    image = assemble_image(list(good.layers), wrong)
    daemon.set_unpacks(4)
    stores = daemon.stores("failing")

    async def run() -> str:
        await store_image(stores, image)
        return await unpack(stores, image)

    with pytest.raises(errdefs.InvalidArgument, match="diff ID"):
        asyncio.run(run())

    assert daemon.metadata.snapshots.get("overlayfs").list("failing") == []


def test_unpacks_at_once_make_each_chain_once(daemon: Daemon) -> None:
    image = overlay_edge_image()
    daemon.set_unpacks(2)
    first, second = daemon.stores("shared"), daemon.stores("shared")

    async def run() -> list[str]:
        await store_image(first, image)
        return await asyncio.gather(unpack(first, image), unpack(second, image))

    tops = asyncio.run(run())

    chain = chain_ids(image.diff_ids)
    assert tops == [chain[-1], chain[-1]]
    commits = [e.name for e in daemon.exchange.events("shared", "/snapshot/commit")]  # type: ignore[attr-defined]
    assert sorted(commits) == sorted(chain)
    # One prepare per layer, one more for the layer applied again after staging.
    assert len(prepares(daemon, "shared")) == len(chain) + 1
    assert len(coordination_for(daemon.metadata).locks) == 0


def test_a_waiting_unpack_holds_the_chain_in_its_own_lease(daemon: Daemon) -> None:
    image = overlay_edge_image()
    daemon.set_unpacks(2)
    stores = daemon.stores("leased")
    leases = daemon.metadata.leases

    async def run() -> None:
        await store_image(stores, image)
        await unpack(stores, image)  # made under a lease that is gone now
        created = leases.create("leased", "second-pull", {})
        async with stores.lease(created.id):
            await unpack(stores, image)  # finds every chain made

    asyncio.run(run())

    held = {r.id for r in leases.list_resources("leased", "second-pull")}
    assert set(chain_ids(image.diff_ids)) <= held
    with contextlib.suppress(Exception):
        leases.delete("leased", "second-pull")
