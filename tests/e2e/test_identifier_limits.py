"""Lease ids are validated; errors that quote huge values still fit a gRPC status; the
daemon's metadata and task-state directories are 0711, as containerd's."""

from __future__ import annotations

import stat

import grpc
import pytest

from pycontainerd.api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2, images_pb2_grpc
from pycontainerd.api.services.leases.v1 import leases_pb2, leases_pb2_grpc
from pycontainerd.api.services.namespaces.v1 import namespace_pb2, namespace_pb2_grpc

pytestmark = pytest.mark.e2e
C = grpc.StatusCode
HUGE = "x" * 10_000
BAD_LEASE_IDS = ["../x", "a\0b", HUGE, "lease-é", "/a/../b", " lead", "trail ", "tab\there", ".."]
#: What containerd's leases.WithRandomID makes (a number, "-", four URL-safe base64 characters).
#: And what `ctr images mount` makes: the target path.
GOOD_LEASE_IDS = ["123456789-_a-Z", "42-ab_-", "sha256:" + "0" * 64, "/tmp/x/rootfs", "./mnt"]


def _error(call, request, metadata) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(request, metadata=metadata, timeout=30)
    return info.value


@pytest.mark.parametrize("lease_id", BAD_LEASE_IDS, ids=repr)
def test_bad_lease_ids_are_invalid_arguments(raw, lease_id: str) -> None:
    stub = leases_pb2_grpc.LeasesStub(raw.channel)
    error = _error(stub.Create, leases_pb2.CreateRequest(id=lease_id), raw.metadata)
    assert error.code() == C.INVALID_ARGUMENT, error.details()
    assert "lease id" in error.details() and len(error.details()) < 400
    listed = stub.List(leases_pb2.ListRequest(), metadata=raw.metadata, timeout=30)
    assert list(listed.leases) == [], "nothing was created"


def test_lease_ids_clients_make_are_accepted(raw, ctr) -> None:
    stub = leases_pb2_grpc.LeasesStub(raw.channel)
    for lease_id in GOOD_LEASE_IDS:
        created = stub.Create(leases_pb2.CreateRequest(id=lease_id), metadata=raw.metadata)
        assert created.lease.id == lease_id
    ctr.ok("leases", "create")  # ctr makes its own id
    assert "../x" not in ctr.ok("leases", "ls")
    refused = ctr.fails("leases", "create", "--id", "/x/../y")
    assert "InvalidArgument" in refused or "invalid" in refused.lower(), refused


def test_errors_that_quote_huge_values_keep_their_code(raw) -> None:
    """A 10k-character id used to overflow gRPC's 8 KiB status: RESOURCE_EXHAUSTED."""
    m = raw.metadata
    containers = containers_pb2_grpc.ContainersStub(raw.channel)
    images = images_pb2_grpc.ImagesStub(raw.channel)
    leases = leases_pb2_grpc.LeasesStub(raw.channel)
    namespaces = namespace_pb2_grpc.NamespacesStub(raw.channel)
    cases = [
        (containers.Get, containers_pb2.GetContainerRequest(id=HUGE), C.NOT_FOUND),
        (images.Get, images_pb2.GetImageRequest(name=HUGE), C.NOT_FOUND),
        (images.Delete, images_pb2.DeleteImageRequest(name="é" * 5000), C.NOT_FOUND),
        (leases.Delete, leases_pb2.DeleteRequest(id=HUGE), C.NOT_FOUND),
        (
            containers.Create,
            containers_pb2.CreateContainerRequest(
                container=containers_pb2.Container(id=HUGE, image="i", runtime={"name": "r"})
            ),
            C.INVALID_ARGUMENT,
        ),
        (
            namespaces.Create,
            namespace_pb2.CreateNamespaceRequest(namespace=namespace_pb2.Namespace(name=HUGE)),
            C.INVALID_ARGUMENT,
        ),
        (images.List, images_pb2.ListImagesRequest(filters=["name==" + "é" * 5000 + ",("]), C.INVALID_ARGUMENT),
    ]  # fmt: skip
    for call, request, code in cases:
        error = _error(call, request, m)
        assert error.code() == code, (call, error.code(), error.details()[:200])
        assert len(error.details().encode()) < 8192


def test_metadata_and_task_state_directories_are_0711(daemon) -> None:
    for directory in (
        daemon.root,
        daemon.state,
        daemon.root / "io.containerd.metadata.v1.sqlite",
        daemon.state / "io.containerd.runtime.v2.task",
        daemon.root / "io.containerd.runtime.v2.task",
    ):
        assert directory.is_dir(), directory
        assert stat.S_IMODE(directory.stat().st_mode) == 0o711, directory
