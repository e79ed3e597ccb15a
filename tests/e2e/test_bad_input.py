"""Bad input gets the right gRPC code and a clear message, and changes nothing."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest
from google.protobuf import field_mask_pb2

from pycontainerd.api.services.content.v1 import content_pb2, content_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2, images_pb2_grpc
from pycontainerd.api.services.leases.v1 import leases_pb2, leases_pb2_grpc
from pycontainerd.api.services.namespaces.v1 import namespace_pb2, namespace_pb2_grpc
from pycontainerd.api.types import descriptor_pb2

pytestmark = pytest.mark.e2e
C = grpc.StatusCode
BAD_DIGESTS = ["sha256:xyz", "sha256:" + "A" * 64, "md5:" + "0" * 32, "", "sha256:" + "0" * 63]


def _ingest(ctr, size: int = 100) -> str:
    data = os.urandom(size)
    ctr.ok("content", "ingest", "seed", input=data)
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_malformed_digests(raw, digest):
    stub = content_pb2_grpc.ContentStub(raw.channel)
    assert raw.code_of(stub.Info, content_pb2.InfoRequest(digest=digest)) == C.INVALID_ARGUMENT
    assert (
        raw.code_of(stub.Read, content_pb2.ReadContentRequest(digest=digest)) == C.INVALID_ARGUMENT
    )
    assert (
        raw.code_of(stub.Delete, content_pb2.DeleteContentRequest(digest=digest))
        == C.INVALID_ARGUMENT
    )


def test_unknown_digest_is_not_found(raw):
    stub = content_pb2_grpc.ContentStub(raw.channel)
    request = content_pb2.InfoRequest(digest="sha256:" + "1" * 64)
    assert raw.code_of(stub.Info, request) == C.NOT_FOUND


def test_read_past_the_end(raw, ctr):
    digest = _ingest(ctr, 100)
    stub = content_pb2_grpc.ContentStub(raw.channel)
    past = content_pb2.ReadContentRequest(digest=digest, offset=101)
    assert raw.code_of(stub.Read, past) == C.OUT_OF_RANGE
    chunks = list(
        stub.Read(
            content_pb2.ReadContentRequest(digest=digest, offset=90, size=50), metadata=raw.metadata
        )
    )
    assert sum(len(c.data) for c in chunks) == 10


def test_unknown_field_mask_changes_nothing(raw, ctr):
    digest = _ingest(ctr)
    ctr.ok("content", "label", digest, "a=1")
    stub = content_pb2_grpc.ContentStub(raw.channel)
    request = content_pb2.UpdateRequest(
        info=content_pb2.Info(digest=digest, labels={"a": "2"}, size=5),
        update_mask=field_mask_pb2.FieldMask(paths=["labels.a", "size"]),
    )
    assert raw.code_of(stub.Update, request) == C.INVALID_ARGUMENT
    line = next(ln for ln in ctr.ok("content", "ls").splitlines() if ln.startswith(digest))
    assert "a=1" in line

    ns_stub = namespace_pb2_grpc.NamespacesStub(raw.channel)
    ctr.ok("namespaces", "create", "masked", "x=1")
    update = namespace_pb2.UpdateNamespaceRequest(
        namespace=namespace_pb2.Namespace(name="masked", labels={"x": "2"}),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
    )
    assert raw.code_of(ns_stub.Update, update) == C.INVALID_ARGUMENT
    assert "x=1" in ctr.ok("namespaces", "ls")


def test_bad_namespace_names(raw, ctr):
    stub = namespace_pb2_grpc.NamespacesStub(raw.channel)
    for name in ["", "has space", "-lead", "a" * 77, "x..y", "ünï"]:
        request = namespace_pb2.CreateNamespaceRequest(namespace=namespace_pb2.Namespace(name=name))
        assert raw.code_of(stub.Create, request) == C.INVALID_ARGUMENT, name
    assert (
        raw.code_of(stub.Delete, namespace_pb2.DeleteNamespaceRequest(name="nope")) == C.NOT_FOUND
    )
    err = ctr.fails("namespaces", "create", "bad name")
    assert "invalid argument" in err
    assert "bad name" not in ctr.ok("namespaces", "ls")


def test_bad_images(raw):
    stub = images_pb2_grpc.ImagesStub(raw.channel)
    good_target = descriptor_pb2.Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json",
        digest="sha256:" + "2" * 64,
        size=10,
    )
    cases = [
        images_pb2.Image(name="", target=good_target),
        images_pb2.Image(
            name="x", target=descriptor_pb2.Descriptor(media_type="m", digest="sha256:bad", size=10)
        ),
        images_pb2.Image(
            name="x",
            target=descriptor_pb2.Descriptor(media_type="m", digest=good_target.digest, size=0),
        ),
        images_pb2.Image(
            name="x",
            target=descriptor_pb2.Descriptor(media_type="", digest=good_target.digest, size=10),
        ),
        images_pb2.Image(name="x", target=good_target, labels={"k": "v" * 5000}),
    ]
    for image in cases:
        request = images_pb2.CreateImageRequest(image=image)
        assert raw.code_of(stub.Create, request) == C.INVALID_ARGUMENT, image
    assert raw.code_of(stub.List, images_pb2.ListImagesRequest()) == C.OK
    assert list(stub.List(images_pb2.ListImagesRequest(), metadata=raw.metadata).images) == []
    ok = images_pb2.CreateImageRequest(image=images_pb2.Image(name="x", target=good_target))
    assert raw.code_of(stub.Create, ok) == C.OK
    assert raw.code_of(stub.Create, ok) == C.ALREADY_EXISTS
    bad_mask = images_pb2.UpdateImageRequest(
        image=images_pb2.Image(name="x", target=good_target),
        update_mask=field_mask_pb2.FieldMask(paths=["created_at"]),
    )
    assert raw.code_of(stub.Update, bad_mask) == C.INVALID_ARGUMENT
    assert raw.code_of(stub.Get, images_pb2.GetImageRequest(name="nope")) == C.NOT_FOUND
    assert (
        raw.code_of(stub.List, images_pb2.ListImagesRequest(filters=["name~=("]))
        == C.INVALID_ARGUMENT
    )


def test_bad_leases(raw):
    stub = leases_pb2_grpc.LeasesStub(raw.channel)
    assert raw.code_of(stub.Create, leases_pb2.CreateRequest(id=" ")) == C.INVALID_ARGUMENT
    assert raw.code_of(stub.Delete, leases_pb2.DeleteRequest(id="missing")) == C.NOT_FOUND
    assert raw.code_of(stub.Create, leases_pb2.CreateRequest(id="l1")) == C.OK
    assert raw.code_of(stub.Create, leases_pb2.CreateRequest(id="l1")) == C.ALREADY_EXISTS
    bad_type = leases_pb2.AddResourceRequest(
        id="l1", resource=leases_pb2.Resource(id="x", type="bogus")
    )
    assert raw.code_of(stub.AddResource, bad_type) == C.UNIMPLEMENTED
    bad_digest = leases_pb2.AddResourceRequest(
        id="l1", resource=leases_pb2.Resource(id="sha256:nope", type="content")
    )
    assert raw.code_of(stub.AddResource, bad_digest) == C.INVALID_ARGUMENT
    resources = stub.ListResources(leases_pb2.ListResourcesRequest(id="l1"), metadata=raw.metadata)
    assert list(resources.resources) == []


def test_namespace_header_required(daemon):
    channel = grpc.insecure_channel(f"unix://{daemon.address}")
    try:
        stub = images_pb2_grpc.ImagesStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.List(images_pb2.ListImagesRequest(), timeout=10)
        assert info.value.code() == C.FAILED_PRECONDITION
        assert "namespace is required" in info.value.details()
    finally:
        channel.close()


def test_write_with_wrong_size_commits_nothing(raw, daemon):
    stub = content_pb2_grpc.ContentStub(raw.channel)
    data = b"x" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    requests = iter(
        [
            content_pb2.WriteContentRequest(action=content_pb2.WRITE, ref="w1", data=data),
            content_pb2.WriteContentRequest(
                action=content_pb2.COMMIT, ref="w1", total=999, expected=digest
            ),
        ]
    )
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Write(requests, metadata=raw.metadata, timeout=10))
    assert info.value.code() == C.FAILED_PRECONDITION
    assert raw.code_of(stub.Info, content_pb2.InfoRequest(digest=digest)) == C.NOT_FOUND
