"""Garbage collection: marking from roots, and when passes run."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.gc import Collector, label_refs
from pycontainerd.metadata.images import Descriptor, Image
from pycontainerd.metadata.leases import Resource
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore

D = ["sha256:" + c * 64 for c in "0123456789"]


@pytest.fixture
def store(tmp_path):
    metadata = MetadataStore(Database(tmp_path / "meta.db"), LocalContentStore(tmp_path / "c"))
    yield metadata
    metadata.close()


def _add_content(store, ns, digest, labels=None):
    store.namespaces.ensure(ns)
    with store.db.tx() as c:
        c.execute(
            "INSERT INTO content(namespace, digest, size, labels, created_at, updated_at)"
            " VALUES (?, ?, 1, ?, 0, 0)",
            (ns, digest, __import__("json").dumps(labels or {})),
        )


def _remaining(store):
    return {(r["namespace"], r["digest"]) for r in store.db.query("SELECT * FROM content")}


def test_label_refs():
    labels = {
        "containerd.io/gc.ref.content.l.0": D[1],
        "containerd.io/gc.ref.content": D[2],
        "containerd.io/gc.ref.snapshot.overlayfs": "chain",
        "containerd.io/gc.ref.contentious": D[3],  # not a reference: no dot after "content"
        "other": "x",
    }
    refs = set(label_refs("ns", labels))
    assert refs == {
        ("content", "ns", D[1]),
        ("content", "ns", D[2]),
        ("snapshot", "ns", "overlayfs/chain"),
    }


def test_images_and_label_chains_are_kept(store):
    _add_content(store, "a", D[0], {"containerd.io/gc.ref.content.config": D[1]})
    _add_content(store, "a", D[1], {"containerd.io/gc.ref.content.l.0": D[2]})
    _add_content(store, "a", D[2])
    _add_content(store, "a", D[3])  # unreferenced
    _add_content(store, "b", D[1])  # same digest, other namespace, unreferenced there
    store.images.create("a", Image("img", Descriptor("m", D[0], 10)))
    sweep = Collector(store.db).collect()
    assert set(sweep.content) == {("a", D[3]), ("b", D[1])}
    assert _remaining(store) == {("a", D[0]), ("a", D[1]), ("a", D[2])}


def test_roots_leases_and_expiry(store):
    _add_content(store, "a", D[4], {"containerd.io/gc.root": "x"})
    _add_content(store, "a", D[5])
    _add_content(store, "a", D[6])
    store.leases.create("a", "keep", {})
    store.leases.add_resource("a", "keep", Resource(D[5], "content"))
    past = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.leases.create("a", "old", {"containerd.io/gc.expire": past})
    store.leases.add_resource("a", "old", Resource(D[6], "content"))
    sweep = Collector(store.db).collect()
    assert sweep.leases == [("a", "old")]
    assert _remaining(store) == {("a", D[4]), ("a", D[5])}


def test_flat_lease_does_not_follow_labels(store):
    _add_content(store, "a", D[7], {"containerd.io/gc.ref.content": D[8]})
    _add_content(store, "a", D[8])
    store.leases.create("a", "flat", {"containerd.io/gc.flat": "true"})
    store.leases.add_resource("a", "flat", Resource(D[7], "content"))
    Collector(store.db).collect()
    assert _remaining(store) == {("a", D[7])}


def test_writes_without_a_lease_are_collected_and_leased_ones_kept(store):
    """As in containerd: after a failed pull its lease goes, and its half-written layers too."""
    store.leases.create("a", "pull", {})
    kept = store.content.writer("a", "kept", lease="pull")
    kept.write(b"leased bytes")
    kept.close()
    abandoned = store.content.writer("a", "abandoned")
    abandoned.write(b"half a layer")
    abandoned.close()
    in_use = store.content.writer("a", "in-use")  # no lease, but a writer holds it
    in_use.write(b"still writing")

    sweep = Collector(store.db).collect()
    assert set(sweep.ingests) == {("a", "abandoned"), ("a", "in-use")}
    store.content.abort_unreferenced_writes(store.collector.referenced_ingests)
    assert [s.ref for s in store.content.list_statuses("a")] == ["kept"]
    # The held write's bytes stay on disk until its writer lets go.
    assert len(store.content.backend.list_statuses()) == 2
    in_use.close()
    store.content.abort_unreferenced_writes(store.collector.referenced_ingests)
    assert len(store.content.backend.list_statuses()) == 1

    store.leases.delete("a", "pull")
    assert Collector(store.db).collect().ingests == [("a", "kept")]
    store.content.abort_unreferenced_writes(store.collector.referenced_ingests)
    assert store.content.backend.list_statuses() == []


def test_schedule_during_a_pass_runs_another(store):
    async def scenario() -> int:
        scheduler = GCScheduler(store.db, Collector(store.db))
        passes = 0
        started = asyncio.Event()
        release = asyncio.Event()
        real_collect = scheduler.collect

        async def slow_collect():
            nonlocal passes
            passes += 1
            started.set()
            await release.wait()
            return await real_collect()

        await scheduler.start()  # runs the start-up pass with the real collect
        scheduler.collect = slow_collect  # type: ignore[method-assign]
        scheduler.schedule()
        await asyncio.wait_for(started.wait(), 5)
        scheduler.schedule()  # arrives while the first pass runs
        release.set()
        for _ in range(50):
            if passes >= 2:
                break
            await asyncio.sleep(0.05)
        await scheduler.stop()
        return passes

    assert asyncio.run(scenario()) >= 2


def test_lease_expiry_wakes_the_scheduler(store):
    async def scenario() -> bool:
        scheduler = GCScheduler(store.db, Collector(store.db))
        await scheduler.start()
        soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        await store.db.run(store.leases.create, "a", "brief", {"containerd.io/gc.expire": soon})
        scheduler.retime()
        for _ in range(60):
            if not await store.db.run(store.leases.list, "a"):
                break
            await asyncio.sleep(0.1)
        await scheduler.stop()
        return not await store.db.run(store.leases.list, "a")

    assert asyncio.run(scenario())


def test_passes_after_deletions_stay_within_the_pause_threshold(store):
    """containerd's rule: the period of passes is the average pass over the threshold."""

    async def scenario() -> list[float]:
        scheduler = GCScheduler(store.db, Collector(store.db), pause_threshold=0.25)
        starts: list[float] = []

        def slow_sweeper(collector, sweep) -> None:  # type: ignore[no-untyped-def]
            starts.append(time.monotonic())
            time.sleep(0.05)

        scheduler.add_sweeper(slow_sweeper)
        await scheduler.start()  # the start-up pass: ~0.05 s
        for _ in range(5):  # a burst of deletions
            scheduler.schedule()
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.6)  # room for a third pass, if the burst made one
        await scheduler.stop()
        return starts

    starts = asyncio.run(scenario())
    # A pass of ~0.05 s at 25% gives a period of ~0.2 s; the burst is one pass, not five.
    assert len(starts) == 2, starts
    assert starts[1] - starts[0] >= 0.19, starts


def test_a_collection_asked_for_directly_does_not_wait(store):
    async def scenario() -> float:
        scheduler = GCScheduler(store.db, Collector(store.db), pause_threshold=0.01)
        scheduler.add_sweeper(lambda collector, sweep: time.sleep(0.05))
        await scheduler.start()
        assert scheduler.pause() > 1.0  # ~5 s for a deletion-triggered pass
        started = time.monotonic()
        await scheduler.collect()  # what --sync does
        waited = time.monotonic() - started
        await scheduler.stop()
        return waited

    assert asyncio.run(scenario()) < 1.0
