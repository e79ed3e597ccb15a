"""ctr 2's pulls (Transfer) with layers unpacked beside each other, and pulls at once.

With ``max_concurrent_unpacks`` above 1 the daemon extracts every layer but the
first on its own and settles it onto its parent chain afterwards. The root
filesystem must be exactly what the unpack in order gives, whiteouts, opaque
directories, symlinked directories and hard links included; and two pulls of
one image at once download every layer once and make every snapshot once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import mount
from pycontainerd.distribution.unpack import chain_ids
from tests.support.counting_proxy import CountingProxy
from tests.support.ctr2 import Ctr2
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.images import PushedImage, overlay_edge_image, push_image, push_multilayer
from tests.support.real_containerd import containerd_daemon
from tests.support.registry import TestRegistry
from tests.support.trees import describe_tree

#: How long `ctr2 events` may take to subscribe.
SUBSCRIBE_TIMEOUT = 20.0

pytestmark = pytest.mark.e2e


def unpacks_config(count: int) -> str:
    return f'[plugins."io.containerd.transfer.v1.local"]\n  max_concurrent_unpacks = {count}\n'


@contextlib.contextmanager
def started(unpacks: int) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(extra_config=unpacks_config(unpacks))
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


@pytest.fixture(scope="module")
def edge_image(registry: TestRegistry) -> PushedImage:
    return push_image(registry, overlay_edge_image(), "test/overlay-edges")


def pulled_rootfs(address: Path, ref: str, target: Path) -> dict:
    """Pull ``ref`` with ctr 2, mount the image and describe its root filesystem."""
    ctr2 = Ctr2(address)
    ctr2.ok("images", "pull", "--plain-http", ref)
    target.mkdir()
    try:
        ctr2.ok("images", "mount", ref, str(target))
        return describe_tree(target)
    finally:
        if ctr2.run("images", "unmount", "--rm", str(target)).returncode != 0:
            mount.unmount_all(str(target), flags=mount.MNT_DETACH)


def test_parallel_unpack_gives_the_root_filesystem_of_the_unpack_in_order(
    edge_image: PushedImage, tmp_path: Path
) -> None:
    with started(1) as sequential_daemon:
        sequential = pulled_rootfs(sequential_daemon.address, edge_image.ref, tmp_path / "seq")
    with started(4) as parallel_daemon, SnapshotEvents(Ctr2(parallel_daemon.address)) as events:
        parallel = pulled_rootfs(parallel_daemon.address, edge_image.ref, tmp_path / "par")

    assert parallel == sequential
    # Every layer but the first was staged without a parent; the one writing through
    # the symlinked directory was applied on its parent again.
    chain = chain_ids(list(edge_image.diff_ids))
    unpacks = [(key, parent) for key, parent in events.prepared if key.startswith("extract-")]
    staged = [key.rsplit(" ", 1)[1] for key, parent in unpacks if not parent]
    assert sorted(staged) == sorted(chain)
    assert [parent for _, parent in unpacks if parent] == [chain[2]]
    assert sequential["owned/sub/deeper/new.txt"][4] == b"below implied directories\n"
    assert sequential["owned/sub"][1:4] == (0o711, 1001, 1002)
    assert sequential["flip/back.txt"][4] == b"a directory again\n"
    assert "data/remove-dir" not in sequential and "opaque/old.txt" not in sequential
    assert sequential["links/target.txt"][6] == "links/hard.txt"


def test_parallel_unpack_matches_containerd_2(edge_image: PushedImage, tmp_path: Path) -> None:
    with containerd_daemon(2) as containerd2:
        # Built by scripts/install.sh --test: a missing one is a broken set-up, not a skip.
        assert containerd2 is not None, "containerd 2 is not installed: run scripts/go-tools.sh"
        theirs = pulled_rootfs(containerd2, edge_image.ref, tmp_path / "theirs")
    with started(4) as daemon:
        ours = pulled_rootfs(daemon.address, edge_image.ref, tmp_path / "ours")

    assert ours == theirs


class SnapshotEvents:
    """`ctr2 events` of a daemon while the block runs: its snapshot prepares and commits."""

    def __init__(self, ctr2: Ctr2) -> None:
        self._ctr2 = ctr2
        self._lines: queue.Queue[str] = queue.Queue()
        self.prepared: list[tuple[str, str]] = []  # (key, parent)
        self.committed: list[str] = []

    def __enter__(self) -> SnapshotEvents:
        command = [str(self._ctr2.binary), "-a", str(self._ctr2.address), "events"]
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        # Subscribed once an event made now comes through. An event published
        # before `ctr2 events` has subscribed is not for it: probe again.
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        for attempt in itertools.count():
            self._ctr2.ok("namespaces", "create", f"events-probe-{attempt}")
            try:
                while "/namespaces/create" not in self._lines.get(timeout=0.5):
                    pass
            except queue.Empty:
                assert time.monotonic() < deadline, "`ctr2 events` never subscribed"
                continue
            return self
        raise AssertionError("unreachable")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)

    def __exit__(self, *exc_info: object) -> None:
        self._proc.terminate()
        self._proc.wait(10)
        while not self._lines.empty():
            line = self._lines.get()
            if "{" not in line:
                continue
            event = json.loads(line[line.index("{") :])
            if "/snapshot/prepare" in line:
                self.prepared.append((event["key"], event.get("parent", "")))
            elif "/snapshot/commit" in line:
                self.committed.append(event["name"])


def test_two_pulls_at_once_download_and_unpack_each_layer_once(
    registry: TestRegistry, daemon: DaemonProcess, ctr: Ctr
) -> None:
    pushed = push_multilayer(registry, repo="test/pulls-at-once")
    ctr2 = Ctr2(daemon.address)
    held = CountingProxy(
        registry.host, held=lambda path: "/blobs/" in path, release_after_manifests=2
    )
    with SnapshotEvents(ctr2) as events, held as proxy:
        ref = pushed.ref.replace(registry.host, proxy.host)
        pull = [str(ctr2.binary), "-a", str(daemon.address), "images", "pull", "--plain-http"]
        pulls = [
            subprocess.Popen([*pull, ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        results = [p.communicate(timeout=120) + (p.returncode,) for p in pulls]

    for _, stderr, code in results:
        assert code == 0, stderr.decode(errors="replace")
    for digest in pushed.layer_digests:
        assert proxy.blob_gets(digest) == 1, proxy.requests
    chain = chain_ids(list(pushed.diff_ids))
    assert sorted(events.committed) == sorted(chain)
    assert sorted(key.rsplit(" ", 1)[1] for key, _ in events.prepared) == sorted(chain)
    assert ctr.ok("leases", "ls").strip().splitlines()[1:] == []
    assert ctr2.ok("run", "--rm", ref, "pulled-at-once", "cat", "/data/keep.txt").strip() == (
        "kept and changed"
    )
