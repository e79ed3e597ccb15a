"""A pull with unpack applies each layer while later layers still download.

A small proxy on loopback sits between the pull and the registry and holds
back the last layer's blob until the daemon has committed the base layer's
snapshot (or, should the pull not overlap at all, until a generous fallback
expires). The test then checks only the order of two moments: the commit
event of the base layer's snapshot, and the progress report that the last
layer finished downloading.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from pycontainerd.client import Client, ProgressEvent, Status
from pycontainerd.client.transfer import PriorityGate
from pycontainerd.client.unpack import UnpackStatus, chain_ids
from tests.support import layers as L
from tests.support.counting_proxy import CountingProxy
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.images import PushedImage, build_image, busybox_entries, push_image
from tests.support.registry import TestRegistry

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def three_layer_image(registry: TestRegistry) -> PushedImage:
    """Busybox plus two small layers; each layer's digest is unique to this test."""
    marker = str(time.time_ns())
    layers = [
        busybox_entries(),
        [L.directory("data"), L.file("data/second.txt", f"second {marker}\n")],
        [L.directory("data"), L.file("data/third.txt", f"third {marker}\n")],
    ]
    return push_image(registry, build_image(layers), "test/pipeline")


@pytest.fixture(scope="module")
def registry() -> Iterator[TestRegistry]:
    with TestRegistry() as running:
        yield running


async def pull_through_proxy(
    daemon: DaemonProcess, proxy: CountingProxy, pushed: PushedImage
) -> tuple[dict[str, datetime], dict[str, float], list[str]]:
    """Pull with unpack; returns commit times by snapshot name, done times by layer, statuses."""
    committed: dict[str, datetime] = {}
    downloaded: dict[str, float] = {}
    statuses: list[str] = []
    base_chain_id = chain_ids(pushed.diff_ids)[0]

    def on_progress(event: ProgressEvent) -> None:
        statuses.append(f"{event.key} {event.status}")
        if event.status is Status.DONE:
            downloaded[event.digest] = time.time()

    async with Client(str(daemon.address)) as client:
        subscribed = asyncio.Event()

        async def watch_commits() -> None:
            events = client.events.subscribe(['topic=="/snapshot/commit"'])
            subscribed.set()
            async for envelope in events:
                assert envelope.timestamp is not None
                committed[envelope.event.name] = envelope.timestamp  # type: ignore[union-attr]
                if envelope.event.name == base_chain_id:  # type: ignore[union-attr]
                    proxy.release()

        watcher = asyncio.create_task(watch_commits())
        await asyncio.wait_for(subscribed.wait(), 10)
        await asyncio.sleep(0.2)  # let the subscription reach the daemon
        ref = pushed.ref.replace(pushed.ref.split("/", 1)[0], proxy.host, 1)
        try:
            await client.pull(ref, plain_http=True, unpack=True, progress=on_progress)
            await asyncio.sleep(0.2)  # the last commit events are still on their way
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return committed, downloaded, statuses


def test_base_layer_is_committed_before_the_last_layer_arrives(
    daemon: DaemonProcess, ctr: Ctr, registry: TestRegistry
) -> None:
    pushed = three_layer_image(registry)
    last_layer = pushed.layer_digests[-1]
    chain = chain_ids(pushed.diff_ids)

    held = f"/blobs/{last_layer}"
    with CountingProxy(registry.host, held=lambda path: path.endswith(held)) as proxy:
        committed, downloaded, statuses = asyncio.run(pull_through_proxy(daemon, proxy, pushed))

    assert proxy.blob_gets(last_layer) >= 1, "the last layer never went through the proxy"
    assert set(chain) <= set(committed), f"snapshots committed: {sorted(committed)}"
    base_committed_at = committed[chain[0]].timestamp()
    assert base_committed_at < downloaded[last_layer], (
        "the base layer was committed only after the last layer had downloaded: "
        "the pull did not unpack while downloading"
    )
    # Each layer shows an unpacking phase after its download.
    for layer in pushed.layer_digests:
        assert f"unpack-{layer} {UnpackStatus.UNPACKING}" in statuses
        assert f"unpack-{layer} {UnpackStatus.UNPACKED}" in statuses
    snapshots = ctr.ok("snapshots", "ls")
    assert all(chain_id in snapshots for chain_id in chain)


def test_pyctr_pull_unpacks_by_default_and_shows_each_phase(
    daemon: DaemonProcess, ctr: Ctr, registry: TestRegistry
) -> None:
    pushed = three_layer_image(registry)
    result = subprocess.run(
        [sys.executable, "-m", "ctr.main", "-a", str(daemon.address)]
        + ["images", "pull", "--plain-http", "--snapshotter", "overlayfs", pushed.ref],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    for layer in pushed.layer_digests:
        assert f"layer-{layer}: done" in result.stdout
        assert f"unpack-{layer}: unpacked" in result.stdout
    assert "elapsed:" in result.stdout and "/s)" in result.stdout
    top = chain_ids(pushed.diff_ids)[-1]
    assert top in ctr.ok("snapshots", "ls")
    check = next(ln for ln in ctr.ok("images", "check").splitlines() if pushed.ref in ln)
    assert " complete " in check


def test_pyctr_pull_no_unpack_leaves_no_snapshot(
    daemon: DaemonProcess, ctr: Ctr, registry: TestRegistry
) -> None:
    pushed = three_layer_image(registry)
    result = subprocess.run(
        [sys.executable, "-m", "ctr.main", "-a", str(daemon.address)]
        + ["images", "pull", "--plain-http", "--no-unpack", pushed.ref],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "unpack-" not in result.stdout
    assert chain_ids(pushed.diff_ids)[0] not in ctr.ok("snapshots", "ls")


def test_the_write_gate_serves_the_earliest_blob_first() -> None:
    """Downloads' chunk writes pass a PriorityGate: the lowest number wins when contended,
    also over a holder that releases and asks again at once, and cancelled waiters are
    skipped."""

    async def scenario() -> list[int]:
        gate = PriorityGate(1)
        order: list[int] = []
        opened = asyncio.Event()

        async def writer(priority: int, chunks: int) -> None:
            for _ in range(chunks):
                async with gate.hold(priority):
                    await opened.wait()
                    order.append(priority)

        writers = [asyncio.create_task(writer(p, 2)) for p in (3, 1, 2)]  # 3 holds, 1 and 2 wait
        cancelled = asyncio.create_task(writer(0, 2))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        opened.set()
        await asyncio.gather(*writers)
        return order

    assert asyncio.run(scenario()) == [3, 1, 1, 2, 2, 3]
