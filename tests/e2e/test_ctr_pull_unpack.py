"""The real ctr pulling, unpacking, mounting, importing and diffing through pycontainerd.

ctr unpacks on its own side of the API (content Read, snapshots Prepare and
Commit, diff Apply), exactly as it does against containerd: these tests check
the diff service and the snapshotters through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import stat
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from pycontainerd import errdefs, mount
from pycontainerd.api.services.diff.v1 import diff_pb2, diff_pb2_grpc
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from pycontainerd.api.types import descriptor_pb2
from pycontainerd.client import Client, use_lease
from pycontainerd.client.unpack import image_layers, is_unpacked, unpack, unpack_layers
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.remotes.platforms import default_matcher
from tests.support import layers as L
from tests.support.images import (
    MULTILAYER_EXPECTED,
    Blob,
    PushedImage,
    assemble_image,
    build_layer,
    busybox_entries,
    large_image,
    multilayer_image,
    push_image,
    push_multilayer,
    write_oci_archive,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

# (media, compression) of the multi-layer image variants, keyed by name.
VARIANTS = {
    "gzip": ("oci", "gzip"),
    "zstd": ("oci", "zstd"),
    "none": ("oci", "none"),
    "docker-gzip": ("docker", "gzip"),
}
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
SNAPSHOTTER = "overlayfs"
T = TypeVar("T")


# -- helpers ---------------------------------------------------------------------------------


def chain_ids(diff_ids: tuple[str, ...]) -> list[str]:
    """Chain IDs as the OCI image spec defines them, computed here independently."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if chain:
            digest = hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest()
            chain.append(f"sha256:{digest}")
        else:
            chain.append(diff_id)
    return chain


def snapshot_rows(ctr, snapshotter: str = SNAPSHOTTER) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """`ctr snapshots ls` as {key: (parent, kind)}; keys may contain a space (extract-...)."""
    rows = {}
    for line in ctr.ok("snapshots", "--snapshotter", snapshotter, "ls").splitlines()[1:]:
        fields = line.split()
        if not fields:
            continue
        kind = fields[-1]
        parent = fields[-2] if len(fields) >= 3 and fields[-2].startswith("sha256:") else ""
        key_fields = fields[: len(fields) - (2 if parent else 1)]
        rows[" ".join(key_fields)] = (parent, kind)
    return rows


def blobs_on_disk(daemon) -> list[str]:  # type: ignore[no-untyped-def]
    directory = daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    return sorted(os.listdir(directory)) if directory.exists() else []


def snapshots_on_disk(daemon, snapshotter: str = SNAPSHOTTER) -> list[str]:  # type: ignore[no-untyped-def]
    directory = daemon.root / f"io.containerd.snapshotter.v1.{snapshotter}" / "snapshots"
    return sorted(os.listdir(directory)) if directory.exists() else []


@contextlib.contextmanager
def image_mounted(ctr, ref: str, target: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """`ctr images mount`; always `ctr images unmount --rm` (or a lazy unmount) after."""
    target.mkdir(exist_ok=True)
    try:
        ctr.ok("images", "mount", ref, str(target))
        yield target
    finally:
        result = ctr.run("images", "unmount", "--rm", str(target))
        if result.returncode != 0:
            mount.unmount_all(str(target), flags=mount.MNT_DETACH)


@contextlib.contextmanager
def snapshot_mounted(ctr, key: str, target: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """Run the mount command `ctr snapshots mounts` prints; always unmount."""
    target.mkdir(exist_ok=True)
    script = ctr.ok("snapshots", "mounts", str(target), key)
    try:
        subprocess.run(["sh", "-e", "-c", script], check=True, capture_output=True)
        yield target
    finally:
        mount.unmount_all(str(target), flags=mount.MNT_DETACH)


def check_multilayer_tree(root: Path) -> None:
    for relative, expected in MULTILAYER_EXPECTED.items():
        path = root / relative
        if expected is None:
            assert not os.path.lexists(path), f"{relative} should have been removed"
            continue
        kind, value = expected
        if kind == "file":
            assert path.read_text() == value, relative
        elif kind == "symlink":
            assert os.readlink(path) == value, relative
        else:
            assert path.stat().st_ino == (root / value).stat().st_ino, relative
    assert (root / "app/owned.txt").stat().st_uid == 1000
    assert (root / "bin/busybox").stat().st_mode & 0o111


def describe(root: Path) -> dict[str, tuple]:
    tree: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                payload: object = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                payload = os.readlink(path)
            else:
                payload = None
            key = os.path.relpath(path, root)
            tree[key] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, payload)
    return tree


# -- images in the registry ------------------------------------------------------------------


@pytest.fixture(scope="module")
def multilayer_pushed(registry) -> dict[str, PushedImage]:  # type: ignore[no-untyped-def]
    return {
        name: push_multilayer(
            registry, repo=f"test/unpack-{name}", media=media, compression=compression
        )
        for name, (media, compression) in VARIANTS.items()
    }


def _bad_layer_image(registry, repo: str, bad_blob: bytes) -> PushedImage:  # type: ignore[no-untyped-def]
    """busybox plus a second layer whose blob does not unpack to its config's diff ID."""
    base, base_diff = build_layer(busybox_entries())
    _, good_diff = build_layer([L.directory("data"), L.file("data/x", "x\n")])
    bad = Blob(Descriptor.for_bytes(LAYER_GZIP, bad_blob), bad_blob)
    return push_image(registry, assemble_image([base, bad], [base_diff, good_diff]), repo)


# -- pull and unpack ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_pull_unpacks_mounts_and_collects(ctr, daemon, tmp_path, multilayer_pushed, variant):  # type: ignore[no-untyped-def]
    pushed = multilayer_pushed[variant]
    chain = chain_ids(pushed.diff_ids)

    ctr.ok("images", "pull", "--plain-http", pushed.ref)

    check = ctr.ok("images", "check")
    line = next(ln for ln in check.splitlines() if ln.startswith(pushed.ref))
    assert "complete" in line and line.split()[-1] == "true", check
    rows = snapshot_rows(ctr)
    assert rows == {
        chain[0]: ("", "Committed"),
        chain[1]: (chain[0], "Committed"),
        chain[2]: (chain[1], "Committed"),
    }
    tree = ctr.ok("snapshots", "tree").split()
    assert [item for item in tree if item.startswith("sha256:")] == chain
    config_line = next(
        ln for ln in ctr.ok("content", "ls").splitlines() if ln.startswith(pushed.config_digest)
    )
    assert f"containerd.io/gc.ref.snapshot.{SNAPSHOTTER}={chain[-1]}" in config_line

    with image_mounted(ctr, pushed.ref, tmp_path / "rootfs") as root:
        check_multilayer_tree(root)
    assert set(snapshot_rows(ctr)) == set(chain)

    ctr.ok("images", "rm", "--sync", pushed.ref)
    wait_for(lambda: snapshots_on_disk(daemon) == [], "the snapshots to be collected")
    assert blobs_on_disk(daemon) == []
    assert snapshot_rows(ctr) == {}


def test_pull_of_an_unpacked_image_reuses_its_snapshots(ctr, daemon, multilayer_pushed):  # type: ignore[no-untyped-def]
    pushed = multilayer_pushed["gzip"]
    ctr.ok("images", "pull", "--plain-http", pushed.ref)
    before = snapshots_on_disk(daemon)

    ctr.ok("images", "pull", "--plain-http", pushed.ref)

    assert snapshots_on_disk(daemon) == before
    assert set(snapshot_rows(ctr)) == set(chain_ids(pushed.diff_ids))


def test_pull_unpacks_into_the_native_snapshotter(ctr, daemon, multilayer_pushed):  # type: ignore[no-untyped-def]
    pushed = multilayer_pushed["gzip"]
    chain = chain_ids(pushed.diff_ids)

    ctr.ok("images", "pull", "--plain-http", "--snapshotter", "native", pushed.ref)

    assert set(snapshot_rows(ctr, "native")) == set(chain)
    assert snapshot_rows(ctr) == {}
    top = daemon.root / "io.containerd.snapshotter.v1.native" / "snapshots"
    (top_dir,) = [p for p in top.iterdir() if (p / "opaque/new.txt").exists()]
    check_multilayer_tree(top_dir)


@pytest.mark.parametrize("damage", ["truncated", "wrong-diff-id"])
def test_bad_layer_fails_the_pull_and_commits_nothing_for_it(ctr, daemon, registry, damage):  # type: ignore[no-untyped-def]
    good_tar = L.tar_bytes([L.directory("data"), L.file("data/x", "x\n")])
    if damage == "truncated":
        full = L.compress(good_tar, "gzip")
        blob = full[: len(full) - 20]
    else:
        blob = L.compress(L.tar_bytes([L.directory("data"), L.file("data/x", "y\n")]), "gzip")
    pushed = _bad_layer_image(registry, f"test/bad-{damage}", blob)
    chain = chain_ids(pushed.diff_ids)

    err = ctr.fails("images", "pull", "--plain-http", pushed.ref)

    expected = "truncated" if damage == "truncated" else "wrong diff id"
    assert expected in err, err
    rows = snapshot_rows(ctr)
    assert chain[1] not in rows
    assert not [key for key in rows if key.startswith("extract-")], rows


# -- import and export ---------------------------------------------------------------------


def test_import_unpacks_and_export_round_trips(ctr, tmp_path):  # type: ignore[no-untyped-def]
    image = multilayer_image()
    name = "example.test/imported/multilayer:1"
    archive = tmp_path / "in.tar"
    write_oci_archive(archive, image, name)

    ctr.ok("images", "import", str(archive), timeout=120)

    chain = chain_ids(image.diff_ids)
    assert set(snapshot_rows(ctr)) == set(chain)
    with image_mounted(ctr, name, tmp_path / "rootfs") as root:
        check_multilayer_tree(root)
    exported = tmp_path / "out.tar"
    ctr.ok("images", "export", str(exported), name)
    ctr.ok("images", "rm", "--sync", name)
    ctr.ok("images", "import", str(exported))
    assert name in ctr.ok("images", "ls", "-q").split()
    line = next(ln for ln in ctr.ok("images", "check").splitlines() if ln.startswith(name))
    assert "complete" in line and line.split()[-1] == "true"


# -- snapshots diff (Compare) and Apply ------------------------------------------------------


def _apply_over_grpc(daemon, key: str, parent: str, layer: Descriptor) -> None:  # type: ignore[no-untyped-def]
    """Prepare ``key`` on ``parent`` and apply ``layer`` to it with the diff service.

    The snapshot is a GC root (as containerd, a snapshot nothing refers to is
    collected: a collection paced after the diff's deletions could take it).
    """
    metadata = (("containerd-namespace", "default"),)
    with grpc.insecure_channel(f"unix://{daemon.address}") as channel:
        snapshots = snapshots_pb2_grpc.SnapshotsStub(channel)
        prepared = snapshots.Prepare(
            snapshots_pb2.PrepareSnapshotRequest(
                snapshotter=SNAPSHOTTER,
                key=key,
                parent=parent,
                labels={"containerd.io/gc.root": "test"},
            ),
            metadata=metadata,
        )
        request = diff_pb2.ApplyRequest(
            diff=descriptor_pb2.Descriptor(
                media_type=layer.media_type, digest=layer.digest, size=layer.size
            ),
            mounts=prepared.mounts,
        )
        applied = diff_pb2_grpc.DiffStub(channel).Apply(request, metadata=metadata).applied
    assert applied.media_type == "application/vnd.oci.image.layer.v1.tar"


def test_snapshots_diff_produces_a_layer_that_replays_the_change(
    ctr, daemon, tmp_path, multilayer_pushed
):  # type: ignore[no-untyped-def]
    pushed = multilayer_pushed["gzip"]
    ctr.ok("images", "pull", "--plain-http", pushed.ref)
    parent = chain_ids(pushed.diff_ids)[-1]
    ctr.ok("snapshots", "prepare", "work", parent)
    with snapshot_mounted(ctr, "work", tmp_path / "work") as root:
        (root / "data/keep.txt").unlink()
        (root / "links/target.txt").write_text("rewritten\n")
        (root / "new-dir").mkdir(mode=0o700)
        (root / "new-dir/file").write_bytes(b"\x00binary\xff")
        os.symlink("../data", root / "new-dir/up")
        expected = describe(root)

    layers = {}
    for key in ("work", "work-committed"):
        if key == "work-committed":
            ctr.ok("snapshots", "commit", "work-committed", "work")
        blob = subprocess.run(
            [ctr.binary, "-a", str(daemon.address), "-n", "default", "snapshots", "diff"]
            + ["--keep", key],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        layers[key] = Descriptor(
            LAYER_GZIP, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob)
        )
        assert blob[:2] == b"\x1f\x8b"

    content = ctr.ok("content", "ls")
    for index, layer in enumerate(layers.values()):
        line = next(ln for ln in content.splitlines() if ln.startswith(layer.digest))
        assert "containerd.io/uncompressed=sha256:" in line and "containerd.io/gc.root=" in line
        key = f"replay-{index}"
        _apply_over_grpc(daemon, key, parent, layer)
        with snapshot_mounted(ctr, key, tmp_path / key) as root:
            assert describe(root) == expected


# -- a crash in the middle of an unpack ----------------------------------------------------


def test_kill_9_during_unpack_then_pull_again(ctr, daemon, registry, tmp_path):  # type: ignore[no-untyped-def]
    image = large_image(
        tmp_path, total_size=64 << 20, file_count=64, layer_count=1, compression="gzip"
    )
    pushed = push_image(registry, image, "test/large-unpack")
    top = chain_ids(pushed.diff_ids)[-1]
    command = [ctr.binary, "-a", str(daemon.address), "-n", "default"]
    puller = subprocess.Popen(
        [*command, "images", "pull", "--plain-http", pushed.ref],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: any(key.endswith(" " + top) for key in snapshot_rows(ctr)),
            "the unpack of the large layer to start",
            timeout=60,
        )
        daemon.kill9()
    finally:
        if puller.poll() is None:
            puller.send_signal(signal.SIGKILL)
        puller.wait(10)
    daemon.start()

    ctr.ok("images", "pull", "--plain-http", pushed.ref, timeout=120)

    assert snapshot_rows(ctr)[top] == (chain_ids(pushed.diff_ids)[0], "Committed")
    with image_mounted(ctr, pushed.ref, tmp_path / "rootfs") as root:
        files = sorted((root / "large/0").iterdir())
        assert len(files) == 64
        assert {f.stat().st_size for f in files} == {1 << 20}
        assert (root / "bin/busybox").exists()


# -- the SDK's unpack ------------------------------------------------------------------------


def _with_client(daemon, work: Callable[[Client], Awaitable[T]]) -> T:  # type: ignore[no-untyped-def]
    async def run() -> T:
        async with Client(str(daemon.address)) as client:
            return await work(client)

    return asyncio.run(run())


async def _is_unpacked(client: Client, ref: str) -> bool:
    return await is_unpacked(client, await client.images.get(ref), SNAPSHOTTER)


def _unpacked_in_ctr(ctr, ref: str) -> bool:  # type: ignore[no-untyped-def]
    line = next(ln for ln in ctr.ok("images", "check").splitlines() if ln.startswith(ref))
    return "complete" in line and line.split()[-1] == "true"


def test_sdk_unpacks_fetched_content_as_ctr_expects(ctr, daemon, tmp_path, multilayer_pushed):  # type: ignore[no-untyped-def]
    pushed = multilayer_pushed["zstd"]
    ctr.ok("content", "fetch", "--plain-http", pushed.ref)
    assert not _unpacked_in_ctr(ctr, pushed.ref)
    assert not _with_client(daemon, lambda client: _is_unpacked(client, pushed.ref))

    top = _with_client(daemon, lambda client: unpack(client, pushed.ref))
    assert _with_client(daemon, lambda client: _is_unpacked(client, pushed.ref))

    chain = chain_ids(pushed.diff_ids)
    assert top == chain[-1]
    assert _unpacked_in_ctr(ctr, pushed.ref)
    rows = snapshot_rows(ctr)
    assert rows == {
        chain[0]: ("", "Committed"),
        chain[1]: (chain[0], "Committed"),
        chain[2]: (chain[1], "Committed"),
    }
    info = json.loads(ctr.ok("snapshots", "info", chain[-1]))
    assert info["Labels"]["containerd.io/snapshot.ref"] == chain[-1]
    with image_mounted(ctr, pushed.ref, tmp_path / "rootfs") as root:
        check_multilayer_tree(root)
    assert set(snapshot_rows(ctr)) == set(chain)  # ctr's own unpack found nothing to do
    assert _with_client(daemon, lambda client: unpack(client, pushed.ref)) == top


def test_sdk_unpack_waits_for_each_blob_and_keeps_finished_layers(ctr, daemon, multilayer_pushed):  # type: ignore[no-untyped-def]
    pushed = multilayer_pushed["gzip"]
    ctr.ok("content", "fetch", "--plain-http", pushed.ref)
    chain = chain_ids(pushed.diff_ids)
    asked: list[str] = []
    failing = {pushed.layer_digests[-1]}

    async def ready(desc: Descriptor) -> None:
        asked.append(desc.digest)
        if desc.digest in failing:
            raise errdefs.Unavailable("download of the last layer failed")

    async def unpack_streaming(client: Client) -> str:
        # Under a lease the test keeps, so the layers done before the failure stay.
        with use_lease("kept-by-test"):
            image = await client.images.get(pushed.ref)
            config, layers = await image_layers(client, image.target, default_matcher())
            return await unpack_layers(client, config, layers, ready=ready)

    ctr.ok("leases", "create", "--id", "kept-by-test")
    with pytest.raises(errdefs.Unavailable, match="last layer"):
        _with_client(daemon, unpack_streaming)

    assert asked == [pushed.config_digest, *pushed.layer_digests]
    assert snapshot_rows(ctr) == {chain[0]: ("", "Committed"), chain[1]: (chain[0], "Committed")}
    assert not _unpacked_in_ctr(ctr, pushed.ref)

    asked.clear()
    failing.clear()
    assert _with_client(daemon, unpack_streaming) == chain[-1]
    assert asked == [pushed.config_digest, pushed.layer_digests[-1]], "waited for applied layers"
    assert _unpacked_in_ctr(ctr, pushed.ref)


def test_sdk_unpack_refuses_a_layer_with_the_wrong_diff_id(ctr, daemon, registry):  # type: ignore[no-untyped-def]
    blob = L.compress(L.tar_bytes([L.directory("data"), L.file("data/x", "z\n")]), "gzip")
    pushed = _bad_layer_image(registry, "test/bad-for-sdk", blob)
    ctr.ok("content", "fetch", "--plain-http", pushed.ref)

    with pytest.raises(errdefs.InvalidArgument, match="corrupt"):
        _with_client(daemon, lambda client: unpack(client, pushed.ref))

    rows = snapshot_rows(ctr)  # the base layer may stay until a collection
    assert chain_ids(pushed.diff_ids)[1] not in rows
    assert not [key for key in rows if key.startswith("extract-")], rows


def test_sdk_pull_with_unpack(ctr, daemon, tmp_path, busybox_pushed):  # type: ignore[no-untyped-def]
    image = _with_client(
        daemon,
        lambda client: client.pull(busybox_pushed.ref, plain_http=True, unpack=True),
    )

    assert image.target.digest == busybox_pushed.descriptor.digest
    assert _unpacked_in_ctr(ctr, busybox_pushed.ref)
    assert set(snapshot_rows(ctr)) == set(chain_ids(busybox_pushed.diff_ids))
