"""pyctr and the SDK against a private daemon and registry, checked with the real ctr."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.client import Client, ProgressEvent, Status
from pycontainerd.client.sync import Client as SyncClient
from pycontainerd.distribution import push as push_module
from pycontainerd.remotes.fetcher import Fetcher
from pycontainerd.remotes.platforms import format_platform
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.images import foreign_platform, push_busybox, push_multilayer, push_multiplatform
from tests.support.pyctr import Pyctr, content_labels
from tests.support.registry import TestRegistry

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTH_USER, AUTH_SECRET = "pulluser", "pullsecret"


@pytest.fixture(scope="module")
def registry() -> Iterator[TestRegistry]:
    with TestRegistry() as running:
        yield running


@pytest.fixture(scope="module")
def auth_registry() -> Iterator[TestRegistry]:
    with TestRegistry(users={AUTH_USER: AUTH_SECRET}) as running:
        yield running


def pyctr(
    daemon: DaemonProcess, *args: str, namespace: str = "default", address: str | None = None
) -> subprocess.CompletedProcess[str]:
    return Pyctr(address or daemon.address, namespace).run(*args, timeout=120)


def pyctr_ok(daemon: DaemonProcess, *args: str, namespace: str = "default") -> str:
    return Pyctr(daemon.address, namespace).ok(*args, timeout=120)


def assert_same_as_ctr_fetch(ctr: Ctr, ref: str, *platform_args: str) -> dict:
    """The content pyctr pulled into "default" has the labels ctr's own fetch gives."""
    ctr.ok("content", "fetch", "--plain-http", *platform_args, ref, namespace="by-ctr")
    ours, theirs = content_labels(ctr, "default"), content_labels(ctr, "by-ctr")
    assert ours == theirs
    return ours


def assert_image_complete(ctr: Ctr, name: str) -> None:
    assert name in ctr.ok("images", "ls", "-q").split()
    line = next(ln for ln in ctr.ok("images", "check").splitlines() if ln.startswith(name))
    assert " complete " in line, line


@pytest.mark.parametrize("media", ["oci", "docker"])
def test_pull_busybox(daemon, ctr, registry, media):
    pushed = push_busybox(registry, repo=f"pull/busybox-{media}", media=media)
    out = pyctr_ok(daemon, "images", "pull", "--plain-http", "--no-unpack", pushed.ref)
    assert f"pulled {pushed.ref}" in out and "elapsed:" in out
    assert_image_complete(ctr, pushed.ref)
    labels = assert_same_as_ctr_fetch(ctr, pushed.ref)
    manifest = labels[pushed.manifest_digest]
    assert manifest["containerd.io/gc.ref.content.config"] == pushed.config_digest
    assert manifest["containerd.io/gc.ref.content.l.0"] == pushed.layer_digests[0]
    assert manifest["containerd.io/distribution.source.127.0.0.1"] == f"pull/busybox-{media}"

    listing = pyctr_ok(daemon, "images", "ls").splitlines()
    assert listing[0].split() == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    row = next(line.split() for line in listing if line.startswith(pushed.ref))
    assert row[2] == pushed.descriptor.digest
    assert row[-2] == format_platform(pushed.image.platform)  # type: ignore[union-attr]
    # Pulling again downloads nothing.
    again = pyctr_ok(daemon, "images", "pull", "--plain-http", pushed.ref)
    assert ": downloading" not in again and ": exists" in again


@pytest.mark.parametrize(("media", "compression"), [("oci", "zstd"), ("docker", "gzip")])
def test_pull_multilayer(daemon, ctr, registry, media, compression):
    pushed = push_multilayer(
        registry, repo=f"pull/multi-{compression}", media=media, compression=compression
    )
    pyctr_ok(daemon, "images", "pull", "--plain-http", "--no-unpack", pushed.ref)
    assert_image_complete(ctr, pushed.ref)
    labels = assert_same_as_ctr_fetch(ctr, pushed.ref)
    manifest = labels[pushed.manifest_digest]
    for number, layer in enumerate(pushed.layer_digests):
        assert manifest[f"containerd.io/gc.ref.content.l.{number}"] == layer
        assert layer in labels


def test_pull_multiplatform_default_platform(daemon, ctr, registry):
    pushed = push_multiplatform(registry, repo="pull/multi-platform")
    foreign_manifest = pushed.image.images[1].manifest.descriptor.digest
    pyctr_ok(daemon, "images", "pull", "--plain-http", "--no-unpack", pushed.ref)
    assert_image_complete(ctr, pushed.ref)
    labels = assert_same_as_ctr_fetch(ctr, pushed.ref)
    assert pushed.manifest_digest in labels and foreign_manifest not in labels
    index = labels[pushed.index_digest]
    assert set(index.values()) >= {pushed.manifest_digest, foreign_manifest}


def test_pull_multiplatform_other_platform(daemon, ctr, registry):
    pushed = push_multiplatform(registry, repo="pull/multi-other")
    foreign = format_platform(foreign_platform())
    foreign_manifest = pushed.image.images[1].manifest.descriptor.digest
    pyctr_ok(
        daemon, "images", "pull", "--plain-http", "--no-unpack", "--platform", foreign, pushed.ref
    )
    labels = assert_same_as_ctr_fetch(ctr, pushed.ref, "--platform", foreign)
    assert foreign_manifest in labels and pushed.manifest_digest not in labels


def test_pull_multiplatform_all_platforms(daemon, ctr, registry):
    pushed = push_multiplatform(registry, repo="pull/multi-all")
    pyctr_ok(daemon, "images", "pull", "--plain-http", "--no-unpack", "--all-platforms", pushed.ref)
    labels = assert_same_as_ctr_fetch(ctr, pushed.ref, "--all-platforms")
    assert set(labels) == {blob.descriptor.digest for blob in pushed.image.blobs()}
    row = pyctr_ok(daemon, "images", "ls").splitlines()[1].split()
    assert row[-2] == ",".join(sorted(format_platform(i.platform) for i in pushed.image.images))


def test_pull_with_basic_auth(daemon, ctr, auth_registry):
    pushed = push_busybox(auth_registry, repo="private/busybox")
    denied = pyctr(daemon, "images", "pull", "--plain-http", pushed.ref)
    assert denied.returncode == 1
    assert denied.stderr.count("\n") == 1 and "unauthorized" in denied.stderr
    user = f"{AUTH_USER}:{AUTH_SECRET}"
    pyctr_ok(daemon, "images", "pull", "--plain-http", "--user", user, pushed.ref)
    assert_image_complete(ctr, pushed.ref)


def test_push_to_a_new_repository(daemon, ctr, registry):
    pushed = push_multilayer(registry, repo="push/source")
    pyctr_ok(daemon, "images", "pull", "--plain-http", pushed.ref)
    target = registry.ref("push/copy", "v1")
    out = pyctr_ok(daemon, "images", "push", "--plain-http", target, pushed.ref)
    assert f"pushed {target} ({pushed.descriptor.digest})" in out
    ctr.ok("content", "fetch", "--plain-http", target, namespace="fetched")
    assert set(content_labels(ctr, "fetched")) == set(content_labels(ctr, "default"))
    assert target in ctr.ok("images", "ls", "-q", namespace="fetched").split()


def test_errors_are_one_line(daemon, registry, tmp_path):
    missing = tmp_path / "nothing.sock"
    result = pyctr(daemon, "images", "ls", address=str(missing))
    assert result.returncode == 1
    assert result.stderr == (
        f"pyctr: cannot connect to pycontainerd at {missing}: no socket there; "
        f"is the daemon running? (pycontainerd --address {missing})\n"
    )
    unknown = pyctr(daemon, "images", "pull", "--plain-http", registry.ref("no/such", "tag"))
    assert unknown.returncode == 1 and unknown.stderr.startswith("pyctr: ")
    assert unknown.stderr.count("\n") == 1 and "not found" in unknown.stderr
    tag = pyctr(daemon, "images", "tag", "no/such:image", "other:tag")
    assert tag.returncode == 1 and tag.stderr.count("\n") == 1 and "not found" in tag.stderr
    assert "Traceback" not in unknown.stderr + tag.stderr + result.stderr


def test_pyctr_namespaces_content_and_leases(daemon):
    pyctr_ok(daemon, "namespaces", "create", "team", "owner=alice")
    assert "owner=alice" in pyctr_ok(daemon, "namespaces", "ls")
    ingest = subprocess.run(
        [sys.executable, "-m", "ctr.main", "-a", str(daemon.address), "-n", "team"]
        + ["content", "ingest", "blob-ref"],
        input=b"hello world",
        capture_output=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert ingest.returncode == 0, ingest.stderr
    digest = pyctr_ok(daemon, "content", "ls", "-q", namespace="team").split()[0]
    assert pyctr_ok(daemon, "content", "get", digest, namespace="team") == "hello world"
    pyctr_ok(daemon, "content", "label", digest, "k=v", namespace="team")
    assert "k=v" in pyctr_ok(daemon, "content", "ls", namespace="team")
    pyctr_ok(daemon, "content", "rm", digest, namespace="team")
    pyctr_ok(daemon, "namespaces", "rm", "team")
    lease = pyctr_ok(daemon, "leases", "create", "--id", "my-lease", "a=b").strip()
    assert lease == "my-lease"
    assert "my-lease" in pyctr_ok(daemon, "leases", "ls")
    pyctr_ok(daemon, "leases", "rm", "my-lease")
    assert "my-lease" not in pyctr_ok(daemon, "leases", "ls")


def _record_fetch_offsets(monkeypatch) -> dict[str, list[int]]:
    offsets: dict[str, list[int]] = {}
    original = Fetcher.fetch

    def fetch(self, desc, offset=0, **kwargs):  # type: ignore[no-untyped-def]
        offsets.setdefault(desc.digest, []).append(offset)
        return original(self, desc, offset, **kwargs)

    monkeypatch.setattr(Fetcher, "fetch", fetch)
    return offsets


def test_a_bad_partial_download_is_discarded(daemon, registry, monkeypatch):
    pushed = push_busybox(registry, repo="sdk/bad-partial")
    layer = pushed.image.layers[0]  # type: ignore[union-attr]
    fetched_from = _record_fetch_offsets(monkeypatch)

    async def scenario() -> None:
        async with Client(str(daemon.address)) as client:
            ref = f"layer-{layer.descriptor.digest}"
            writer = await client.content.writer(ref, total=layer.descriptor.size)
            await writer.write(b"garbage" * 100)
            await writer.close()
            image = await client.pull(pushed.ref, plain_http=True)
            assert image.target.digest == pushed.descriptor.digest
            # Resumed after the garbage, failed verification, started over once.
            assert fetched_from[layer.descriptor.digest] == [700, 0]
            assert await client.content.list_statuses() == []

    asyncio.run(scenario())


def test_async_sdk_pull_events_lease_and_resume(daemon, registry, monkeypatch):
    pushed = push_busybox(registry, repo="sdk/busybox")
    layer = pushed.image.layers[0]  # type: ignore[union-attr]
    layer_data = layer.read()
    fetched_from = _record_fetch_offsets(monkeypatch)

    async def scenario() -> None:
        async with Client(str(daemon.address)) as client:
            # A pull broken off halfway left an ingest: the next pull resumes it.
            ref = f"layer-{layer.descriptor.digest}"
            writer = await client.content.writer(
                ref, expected=layer.descriptor.digest, total=layer.descriptor.size
            )
            await writer.write(layer_data[: len(layer_data) // 2])
            await writer.close()
            assert (await client.content.status(ref)).offset == len(layer_data) // 2

            events = client.events.subscribe(['topic=="/images/create"'])
            first_event = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.2)
            seen: list[ProgressEvent] = []
            image = await client.pull(pushed.ref, plain_http=True, progress=seen.append)
            envelope = await asyncio.wait_for(first_event, 10)
            await events.aclose()
            assert envelope.topic == "/images/create" and envelope.event.name == image.name
            assert image.target.digest == pushed.descriptor.digest
            assert await client.content.list_statuses() == []
            assert await client.content.read_all(layer.descriptor.digest) == layer_data
            layer_events = [e for e in seen if e.digest == layer.descriptor.digest]
            assert layer_events[-1].status == Status.DONE
            assert fetched_from[layer.descriptor.digest] == [len(layer_data) // 2]

            async with client.lease(lease_id="sdk-lease") as lease:
                await client.content.write("note", b"leased note", labels={"a": "b"})
                resources = await client.leases.resources(lease.id)
            assert any(r.type == "content" for r in resources)
            assert "sdk-lease" not in [x.id for x in await client.leases.list()]

            # Push through the streaming reader (as for big layers).
            monkeypatch.setattr(push_module, "IN_MEMORY_LIMIT", 0)
            target = registry.ref("sdk/pushed", "v2")
            root = await client.push(target, pushed.ref, plain_http=True)
            assert root.digest == pushed.descriptor.digest
            with pytest.raises(errdefs.NotFound):
                await client.images.get("never/pulled:here")

    asyncio.run(scenario())


def test_sync_sdk(daemon, registry):
    pushed = push_busybox(registry, repo="sdk/sync")
    with SyncClient(str(daemon.address), namespace="sync") as client:
        assert client.version().version
        image = client.pull(pushed.ref, plain_http=True)
        assert [i.name for i in client.images.list()] == [image.name]
        data = b"".join(client.content.read(pushed.config_digest))
        assert data == pushed.image.config.read()  # type: ignore[union-attr]
        with client.lease(lease_id="sync-lease"):
            client.content.write("sync-note", b"note")
            assert client.leases.resources("sync-lease")
        client.images.tag(image.name, "example.com/copy:1")
        client.images.delete("example.com/copy:1", sync=True)
        assert len(client.images.list()) == 1
        with pytest.raises(errdefs.NotFound):
            client.content.info("sha256:" + "0" * 64)
