"""ctr 2.x's image commands through pycontainerd's Transfer and Streaming services.

ctr 2 pulls, pushes, imports, exports and tags by asking the daemon to do it
(Transfer), with progress, credentials and archives carried on Streaming
streams. Bad input is sent with raw gRPC calls, to check the status codes.
"""

from __future__ import annotations

import io
import queue
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2

from pycontainerd.api.services.streaming.v1 import streaming_pb2, streaming_pb2_grpc
from pycontainerd.api.services.transfer.v1 import transfer_pb2, transfer_pb2_grpc
from pycontainerd.api.types.transfer import (
    imagestore_pb2,
    importexport_pb2,
    registry_pb2,
)
from pycontainerd.api.types.transfer import streaming_pb2 as data_pb2
from pycontainerd.remotes.platforms import format_platform
from tests.support.ctr2 import Ctr2
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.fake_registry import FakeRegistry
from tests.support.grpc_client import RawClient
from tests.support.images import (
    ImageIndex,
    PushedImage,
    busybox_image,
    push_busybox,
    push_multilayer,
    push_multiplatform,
)
from tests.support.pyctr import content_labels
from tests.support.registry import TestRegistry

pytestmark = pytest.mark.e2e

USER, SECRET = "transfer", "s3cret-transfer"


@pytest.fixture
def ctr2(daemon: DaemonProcess) -> Ctr2:
    return Ctr2(daemon.address)


@pytest.fixture(scope="module")
def multilayer(registry: TestRegistry) -> PushedImage:
    return push_multilayer(registry, repo="test/ctr2-multilayer")


@pytest.fixture(scope="module")
def private_registry() -> Iterator[TestRegistry]:
    with TestRegistry(users={USER: SECRET}) as running:
        yield running


def _image_lines(ctr: Ctr) -> list[str]:
    return ctr.ok("images", "ls", "-q").split()


def _nothing_left(ctr: Ctr) -> None:
    """No image record, no unfinished write and no lease from a failed transfer."""
    assert _image_lines(ctr) == []
    assert ctr.ok("content", "active").strip().splitlines()[1:] == []
    assert ctr.ok("leases", "ls").strip().splitlines()[1:] == []


# -- through ctr 2 -------------------------------------------------------------------------


def test_pull_plain_http_unpacks_with_progress(ctr2: Ctr2, ctr: Ctr, multilayer: PushedImage):
    out = ctr2.ok("images", "pull", "--plain-http", multilayer.ref)

    assert f"Pulling from OCI Registry ({multilayer.ref})" in out
    assert "complete" in out and "extracted" in out, out
    assert _image_lines(ctr) == [multilayer.ref]
    assert multilayer.descriptor.digest in ctr.ok("images", "ls")
    check = ctr2.ok("images", "check")
    assert "complete (" in check and check.rstrip().endswith("true"), check
    labels = content_labels(ctr, "default")
    assert labels[multilayer.manifest_digest].get("containerd.io/gc.ref.content.l.0")
    assert any(
        k.startswith("containerd.io/distribution.source.") for k in labels[multilayer.config_digest]
    )
    assert ctr.ok("leases", "ls").strip().splitlines()[1:] == []  # the transfer's lease is gone
    # The unpacked image runs.
    assert ctr2.ok("run", "--rm", multilayer.ref, "ctr2-pulled", "ls", "/").strip()


def test_pull_again_finds_everything_stored(ctr2: Ctr2, multilayer: PushedImage):
    ctr2.ok("images", "pull", "--plain-http", multilayer.ref)
    again = ctr2.ok("images", "pull", "--plain-http", multilayer.ref)
    assert "already exists" in again, again


def test_pull_with_basic_auth_asks_the_client_for_credentials(
    ctr2: Ctr2, ctr: Ctr, private_registry: TestRegistry
):
    pushed = push_busybox(private_registry, repo="private/busybox")

    ctr2.ok("images", "pull", "--plain-http", "--user", f"{USER}:{SECRET}", pushed.ref)

    assert _image_lines(ctr) == [pushed.ref]


def test_refused_credentials_fail_and_leave_nothing(
    ctr2: Ctr2, ctr: Ctr, private_registry: TestRegistry
):
    pushed = push_busybox(private_registry, repo="private/refused")

    wrong = ctr2.fails("images", "pull", "--plain-http", "--user", f"{USER}:wrong", pushed.ref)
    anonymous = ctr2.fails("images", "pull", "--plain-http", pushed.ref)

    for stderr in (wrong, anonymous):
        assert "401" in stderr or "unauthorized" in stderr.lower(), stderr
    _nothing_left(ctr)


def test_push_tag_export_import_round_trip(
    ctr2: Ctr2, ctr: Ctr, registry: TestRegistry, tmp_path: Path
):
    pushed = push_busybox(registry, repo="test/ctr2-busybox")
    ctr2.ok("images", "pull", "--plain-http", pushed.ref)

    ctr2.ok("images", "tag", pushed.ref, "example.test/ctr2/tagged:v1")
    target = registry.ref("test/ctr2-pushed", "v2")
    ctr2.ok("images", "push", "--plain-http", target, "example.test/ctr2/tagged:v1")
    tarball = tmp_path / "export.tar"
    ctr2.ok("images", "export", str(tarball), "example.test/ctr2/tagged:v1")

    with tarfile.open(tarball) as tar:
        assert {"index.json", "oci-layout"} <= set(tar.getnames())
    # The pushed image is in the registry: pull it into another namespace.
    ctr2.ok("images", "pull", "--plain-http", target, namespace="pushed")
    assert pushed.descriptor.digest in ctr.ok("images", "ls", namespace="pushed")
    # The archive imports into a third namespace and runs there.
    out = ctr2.ok("images", "import", str(tarball), namespace="imported")
    assert "saved" in out
    assert _image_lines(Ctr(ctr.address, "imported")) == ["example.test/ctr2/tagged:v1"]
    assert ctr2.ok("images", "check", namespace="imported").rstrip().endswith("true")


def test_tag_of_a_missing_image_is_not_found(ctr2: Ctr2):
    stderr = ctr2.fails("images", "tag", "example.test/none:1", "example.test/none:2")
    assert "not found" in stderr


# -- bad input through Transfer -------------------------------------------------------------


def _pack(message) -> any_pb2.Any:  # type: ignore[no-untyped-def]
    return any_pb2.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())


def _transfer_code(raw: RawClient, source: any_pb2.Any, destination: any_pb2.Any, **options):  # type: ignore[no-untyped-def]
    stub = transfer_pb2_grpc.TransferStub(raw.channel)
    request = transfer_pb2.TransferRequest(
        source=source,
        destination=destination,
        options=transfer_pb2.TransferOptions(**options),
    )
    try:
        stub.Transfer(request, metadata=raw.metadata, timeout=60)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def test_unknown_source_type_is_not_found(raw: RawClient, ctr: Ctr):
    unknown = any_pb2.Any(type_url="example.test/NoSuchType", value=b"")
    store = _pack(imagestore_pb2.ImageStore(name="example.test/x:1"))

    code, details = _transfer_code(raw, unknown, store)

    assert code == grpc.StatusCode.NOT_FOUND and "NoSuchType" in details
    _nothing_left(ctr)


def test_a_pair_transfer_does_not_move_is_unimplemented(raw: RawClient):
    empty = _pack(empty_pb2.Empty())
    store = _pack(imagestore_pb2.ImageStore(name="example.test/x:1"))

    for source, destination in ((empty, store), (store, empty)):
        code, details = _transfer_code(raw, source, destination)
        assert code == grpc.StatusCode.UNIMPLEMENTED, details
        assert "not implemented" in details


def test_a_progress_stream_nobody_opened_is_not_found(raw: RawClient):
    registry = _pack(registry_pb2.OCIRegistry(reference="example.test/x:1"))
    store = _pack(imagestore_pb2.ImageStore(name="example.test/x:1"))

    code, _ = _transfer_code(raw, registry, store, progress_stream="no-such-stream")

    assert code == grpc.StatusCode.NOT_FOUND


def test_a_layer_that_does_not_match_its_digest_is_refused(raw: RawClient, ctr: Ctr):
    image = busybox_image()
    with FakeRegistry() as fake:
        for blob in image.blobs():
            fake.state.blobs[blob.descriptor.digest] = blob.read()
        layer = image.layers[0]
        good = fake.state.blobs[layer.descriptor.digest]
        fake.state.blobs[layer.descriptor.digest] = bytes([good[0] ^ 0xFF]) + good[1:]
        fake.state.add_manifest(image.manifest.descriptor.media_type, image.manifest.read(), "bad")
        ref = f"{fake.host}/test/corrupt:bad"
        source = _pack(
            registry_pb2.OCIRegistry(
                reference=ref, resolver=registry_pb2.RegistryResolver(default_scheme="http")
            )
        )
        store = _pack(imagestore_pb2.ImageStore(name=ref))

        code, details = _transfer_code(raw, source, store)

    assert code == grpc.StatusCode.FAILED_PRECONDITION, details
    assert layer.descriptor.digest in details
    _nothing_left(ctr)


class _OpenStream:
    """A Streaming stream opened by hand: messages we queue go out, replies are collected."""

    def __init__(self, raw: RawClient, stream_id: str) -> None:
        self._outbox: queue.Queue[any_pb2.Any | None] = queue.Queue()
        self.received: queue.Queue[any_pb2.Any] = queue.Queue()
        self._outbox.put(_pack(streaming_pb2.StreamInit(id=stream_id)))
        stub = streaming_pb2_grpc.StreamingStub(raw.channel)
        self._call = stub.Stream(iter(self._outbox.get, None), metadata=raw.metadata)
        self.received.put(next(self._call))  # the daemon's acknowledgement
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self._call:
                self.received.put(message)
        except grpc.RpcError:
            pass

    def send(self, message) -> None:  # type: ignore[no-untyped-def]
        self._outbox.put(_pack(message))

    def close(self) -> None:
        """End our side; the daemon ends the call when it is done with the stream."""
        self._outbox.put(None)


def test_an_import_stream_closed_mid_archive_imports_nothing(
    raw: RawClient, ctr: Ctr, registry: TestRegistry, tmp_path: Path
):
    image = busybox_image()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for blob in image.blobs():
            data = blob.read()
            member = tarfile.TarInfo("blobs/sha256/" + blob.descriptor.digest.split(":")[1])
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    half = archive.getvalue()[: len(archive.getvalue()) // 2]
    stream = _OpenStream(raw, "import-closed-early")
    stream.send(data_pb2.Data(data=half))
    stream.close()  # the client stops half way through the archive
    source = _pack(importexport_pb2.ImageImportStream(stream="import-closed-early"))
    store = _pack(
        imagestore_pb2.ImageStore(
            extra_references=[imagestore_pb2.ImageReference(name="import", is_prefix=True)]
        )
    )

    code, details = _transfer_code(raw, source, store)

    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    _nothing_left(ctr)
    assert content_labels(ctr, "default") == {}


def test_the_daemon_reports_a_2x_version(ctr2: Ctr2, ctr: Ctr):
    """nerdctl 2 uses Transfer for pull and push only from 2.0.0; ctr 1.6 accepts it too."""
    server = ctr2.ok("version").split("Server:", 1)[1]
    assert "Version:  2." in server, server
    assert "Server:" in ctr.ok("version")


def test_pull_honours_the_hosts_directory(ctr2: Ctr2, ctr: Ctr, registry: TestRegistry, tmp_path):  # type: ignore[no-untyped-def]
    pushed = push_busybox(registry, repo="test/hosts-dir")
    hosts = tmp_path / "certs.d" / "registry.example.test"
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        f'[host."http://{registry.host}"]\n  capabilities = ["pull", "resolve"]\n'
    )
    ref = "registry.example.test/test/hosts-dir:latest"

    ctr2.ok("images", "pull", "--hosts-dir", str(tmp_path / "certs.d"), ref)

    assert _image_lines(ctr) == [ref]
    assert pushed.descriptor.digest in ctr.ok("images", "ls")


def test_pull_keeps_every_platforms_metadata_but_only_this_hosts_layers(
    ctr2: Ctr2, ctr: Ctr, registry: TestRegistry, tmp_path
):  # type: ignore[no-untyped-def]
    pushed = push_multiplatform(registry, repo="test/ctr2-multiplatform")
    index: ImageIndex = pushed.image  # type: ignore[assignment]
    host, foreign = index.images[0], index.images[1]

    ctr2.ok("images", "pull", "--plain-http", pushed.ref)  # ctr 2 asks for all metadata

    stored = set(content_labels(ctr, "default"))
    assert {foreign.manifest.descriptor.digest, foreign.config.descriptor.digest} <= stored
    host_layers = {layer.descriptor.digest for layer in host.layers}
    foreign_only = {layer.descriptor.digest for layer in foreign.layers} - host_layers
    assert foreign_only and not foreign_only & stored
    assert host_layers <= stored
    platforms = ctr2.ok("images", "ls").splitlines()[1]
    assert format_platform(foreign.platform) in platforms, platforms
    # The archive carries what is stored: the foreign platform's metadata, no layers.
    tarball = tmp_path / "multi.tar"
    ctr2.ok("images", "export", str(tarball), pushed.ref)
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert "blobs/sha256/" + foreign.manifest.descriptor.digest.split(":")[1] in names
    assert "blobs/sha256/" + host.layers[0].descriptor.digest.split(":")[1] in names


def test_ctr2_drives_the_1x_services_too(ctr2: Ctr2, registry: TestRegistry, tmp_path):  # type: ignore[no-untyped-def]
    """Beyond images, ctr 2 runs, inspects and cleans up through the services 1.x had."""
    pushed = push_busybox(registry, repo="test/ctr2-run")
    ctr2.ok("images", "pull", "--plain-http", pushed.ref)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    ctr2.ok("images", "mount", pushed.ref, str(mountpoint))
    try:
        assert (mountpoint / "bin" / "busybox").exists()
    finally:
        ctr2.ok("images", "unmount", str(mountpoint))

    ctr2.ok("run", "-d", pushed.ref, "ctr2-d", "sleep", "60")
    try:
        assert "RUNNING" in ctr2.ok("tasks", "ls")
        assert "ctr2-d" in ctr2.ok("containers", "ls")
        assert '"ID": "ctr2-d"' in ctr2.ok("containers", "info", "ctr2-d")
        assert (
            ctr2.ok("tasks", "exec", "--exec-id", "e1", "ctr2-d", "echo", "exec-ok") == "exec-ok\n"
        )
    finally:
        ctr2.run("tasks", "kill", "-s", "SIGKILL", "ctr2-d")
        ctr2.run("tasks", "delete", "--force", "ctr2-d")
        ctr2.run("containers", "rm", "ctr2-d")
    assert "ctr2-d" not in ctr2.ok("containers", "ls")
    for listing in (("snapshots", "ls"), ("content", "ls"), ("leases", "ls"), ("namespaces", "ls")):
        ctr2.ok(*listing)
    assert "io.containerd.grpc.v1" in ctr2.ok("plugins", "ls")


def test_resolver_headers_go_with_every_registry_request(raw: RawClient, ctr: Ctr):
    image = busybox_image()
    with FakeRegistry() as fake:
        for blob in image.blobs():
            fake.state.blobs[blob.descriptor.digest] = blob.read()
        fake.state.add_manifest(image.manifest.descriptor.media_type, image.manifest.read(), "v1")
        ref = f"{fake.host}/test/headers:v1"
        resolver = registry_pb2.RegistryResolver(
            default_scheme="http", headers={"X-Transfer-Test": "yes"}
        )
        source = _pack(registry_pb2.OCIRegistry(reference=ref, resolver=resolver))
        store = _pack(imagestore_pb2.ImageStore(name=ref))

        code, details = _transfer_code(raw, source, store)

        assert code == grpc.StatusCode.OK, details
        assert fake.state.requests
        assert all(r.headers.get("X-Transfer-Test") == "yes" for r in fake.state.requests)
    assert _image_lines(ctr) == [ref]


def test_import_of_a_named_index_is_refused(ctr2: Ctr2, ctr: Ctr, tmp_path):  # type: ignore[no-untyped-def]
    from tests.support.images import write_oci_archive

    archive = tmp_path / "one.tar"
    write_oci_archive(archive, busybox_image(), "example.test/imported:v1")

    named = ctr2.fails("images", "import", "--index-name", "example.test/index:v1", str(archive))

    assert "index-name" in named and "not implemented" in named
    _nothing_left(ctr)
    ctr2.ok("images", "import", str(archive))
    assert _image_lines(ctr) == ["example.test/imported:v1"]


def test_import_with_digest_references(ctr2: Ctr2, ctr: Ctr, tmp_path):  # type: ignore[no-untyped-def]
    """ctr 2's --digests adds <base>@<digest> names; for named images only with
    --skip-digest-for-named (ctr inverts it into the request's skip_named_digest)."""
    from tests.support.images import write_oci_archive

    archive = tmp_path / "one.tar"
    root = write_oci_archive(archive, busybox_image(), "example.test/digested:v1")
    base = ["images", "import", "--base-name", "example.test/base", "--digests"]

    ctr2.ok(*base, str(archive))
    assert _image_lines(ctr) == ["example.test/digested:v1"]
    ctr2.ok("images", "rm", "example.test/digested:v1")
    ctr2.ok(*base, "--skip-digest-for-named", str(archive))
    names = set(_image_lines(ctr))
    assert names == {"example.test/digested:v1", f"example.test/base@{root.digest}"}, names
