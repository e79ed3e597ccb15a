"""containerd 2.x's additions to the 1.x services, through the socket.

Introspection.Server's pid and PID namespace and PluginInfo; the snapshotter
named in snapshot events and the ContentCreate event; the new request fields
answer as containerd does, or Unimplemented with a message where we do not
support what they ask.
"""

from __future__ import annotations

import hashlib
import os
import threading

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2, timestamp_pb2

from pycontainerd.api.events import content_pb2 as content_events
from pycontainerd.api.events import snapshot_pb2 as snapshot_events
from pycontainerd.api.services.diff.v1 import diff_pb2, diff_pb2_grpc
from pycontainerd.api.services.events.v1 import events_pb2, events_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2, images_pb2_grpc
from pycontainerd.api.services.introspection.v1 import (
    introspection_pb2,
    introspection_pb2_grpc,
)
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from pycontainerd.api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from pycontainerd.api.types import descriptor_pb2
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.grpc_client import RawClient

pytestmark = pytest.mark.e2e

C = grpc.StatusCode


def test_server_reports_pid_and_pid_namespace(raw: RawClient, daemon: DaemonProcess):
    stub = introspection_pb2_grpc.IntrospectionStub(raw.channel)

    reply = stub.Server(empty_pb2.Empty(), metadata=raw.metadata, timeout=30)

    assert reply.uuid
    assert daemon.proc is not None and reply.pid == daemon.proc.pid
    assert reply.pidns == os.stat(f"/proc/{daemon.proc.pid}/ns/pid").st_ino


def test_plugin_info_names_one_plugin(raw: RawClient):
    stub = introspection_pb2_grpc.IntrospectionStub(raw.channel)
    request = introspection_pb2.PluginInfoRequest(type="io.containerd.grpc.v1", id="transfer")

    reply = stub.PluginInfo(request, metadata=raw.metadata, timeout=30)

    assert (reply.plugin.type, reply.plugin.id) == ("io.containerd.grpc.v1", "transfer")
    missing = introspection_pb2.PluginInfoRequest(type="io.containerd.grpc.v1", id="nope")
    assert raw.code_of(stub.PluginInfo, missing) == C.NOT_FOUND
    with_options = introspection_pb2.PluginInfoRequest(
        type="io.containerd.grpc.v1",
        id="transfer",
        options=any_pb2.Any(type_url="containerd.types.RuntimeRequest"),
    )
    assert raw.code_of(stub.PluginInfo, with_options) == C.UNIMPLEMENTED
    wrong_kind = introspection_pb2.PluginInfoRequest(
        type="io.containerd.runtime.v2", id="task", options=any_pb2.Any(type_url="example/x")
    )
    assert raw.code_of(stub.PluginInfo, wrong_kind) == C.UNIMPLEMENTED


def test_ctr2_inspects_the_runtime(daemon: DaemonProcess):
    """ctr 2's inspect-runtime: the shim's -info, with runc's features."""
    import json

    from tests.support.ctr2 import Ctr2

    info = json.loads(Ctr2(daemon.address).ok("plugins", "inspect-runtime"))

    assert info["Name"] == "io.containerd.runc.v2"
    assert info["Version"]["Version"]
    assert info["Features"]["ociVersionMin"].startswith("1.")  # runc features, decoded by ctr 2


def _collect_events(raw: RawClient, topics: set[str], into: list[events_pb2.Envelope]):  # type: ignore[no-untyped-def]
    stub = events_pb2_grpc.EventsStub(raw.channel)
    call = stub.Subscribe(events_pb2.SubscribeRequest(), metadata=raw.metadata, timeout=60)
    ready = threading.Event()

    def read() -> None:
        ready.set()
        try:
            for envelope in call:
                into.append(envelope)
                if {e.topic for e in into} >= topics:
                    return
        except grpc.RpcError:
            pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    ready.wait(10)
    return call, thread


def test_snapshot_and_content_events_carry_2x_fields(raw: RawClient, ctr: Ctr):
    wanted = {"/snapshot/prepare", "/snapshot/commit", "/snapshot/remove", "/content/create"}
    seen: list[events_pb2.Envelope] = []
    call, thread = _collect_events(raw, wanted, seen)
    try:
        # the subscription is live once a first event comes through
        ctr.ok("namespaces", "create", "events-ready")
        snapshots = snapshots_pb2_grpc.SnapshotsStub(raw.channel)
        md = raw.metadata
        snapshots.Prepare(
            snapshots_pb2.PrepareSnapshotRequest(snapshotter="overlayfs", key="k1"), metadata=md
        )
        snapshots.Commit(
            snapshots_pb2.CommitSnapshotRequest(snapshotter="overlayfs", name="c1", key="k1"),
            metadata=md,
        )
        snapshots.Remove(
            snapshots_pb2.RemoveSnapshotRequest(snapshotter="overlayfs", key="c1"), metadata=md
        )
        data = b"content create event"
        ctr.ok("content", "ingest", "create-event", input=data)
        thread.join(30)
    finally:
        call.cancel()
    by_topic = {e.topic: e for e in seen}
    assert wanted <= by_topic.keys(), [e.topic for e in seen]
    for topic, message in (
        ("/snapshot/prepare", snapshot_events.SnapshotPrepare()),
        ("/snapshot/commit", snapshot_events.SnapshotCommit()),
        ("/snapshot/remove", snapshot_events.SnapshotRemove()),
    ):
        message.ParseFromString(by_topic[topic].event.value)  # a bare type URL: no Unpack
        assert message.snapshotter == "overlayfs"  # type: ignore[attr-defined]
    created = content_events.ContentCreate()
    created.ParseFromString(by_topic["/content/create"].event.value)
    assert created.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert created.size == len(data)


def test_commit_onto_another_parent_is_unimplemented(raw: RawClient):
    stub = snapshots_pb2_grpc.SnapshotsStub(raw.channel)
    md = raw.metadata
    stub.Prepare(
        snapshots_pb2.PrepareSnapshotRequest(snapshotter="overlayfs", key="base-a"), metadata=md
    )
    stub.Commit(
        snapshots_pb2.CommitSnapshotRequest(snapshotter="overlayfs", name="base", key="base-a"),
        metadata=md,
    )
    stub.Prepare(
        snapshots_pb2.PrepareSnapshotRequest(snapshotter="overlayfs", key="top-a", parent="base"),
        metadata=md,
    )

    rebase = snapshots_pb2.CommitSnapshotRequest(
        snapshotter="overlayfs", name="top", key="top-a", parent="other"
    )
    assert raw.code_of(stub.Commit, rebase) == C.UNIMPLEMENTED
    same = snapshots_pb2.CommitSnapshotRequest(
        snapshotter="overlayfs", name="top", key="top-a", parent="base"
    )
    assert raw.code_of(stub.Commit, same) == C.OK


def test_delete_image_with_a_stale_target_is_not_found(raw: RawClient, ctr: Ctr):
    data = b"a target"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ctr.ok("content", "ingest", "target", input=data)
    stub = images_pb2_grpc.ImagesStub(raw.channel)
    target = descriptor_pb2.Descriptor(media_type="application/octet-stream", digest=digest, size=8)
    stub.Create(
        images_pb2.CreateImageRequest(
            image=images_pb2.Image(name="example.test/t:1", target=target)
        ),
        metadata=raw.metadata,
    )
    stale = descriptor_pb2.Descriptor(digest="sha256:" + "0" * 64)

    request = images_pb2.DeleteImageRequest(name="example.test/t:1", target=stale)
    assert raw.code_of(stub.Delete, request) == C.NOT_FOUND
    assert "example.test/t:1" in ctr.ok("images", "ls", "-q")
    current = images_pb2.DeleteImageRequest(name="example.test/t:1", target=target)
    assert raw.code_of(stub.Delete, current) == C.OK


def test_unsupported_2x_request_fields_are_unimplemented(raw: RawClient):
    diff = diff_pb2_grpc.DiffStub(raw.channel)
    clamped = diff_pb2.DiffRequest(source_date_epoch=timestamp_pb2.Timestamp(seconds=1))
    assert raw.code_of(diff.Diff, clamped) == C.UNIMPLEMENTED
    tasks = tasks_pb2_grpc.TasksStub(raw.channel)
    sandboxed = tasks_pb2.CreateTaskRequest(container_id="c", task_api_address="unix:///x")
    assert raw.code_of(tasks.Create, sandboxed) == C.UNIMPLEMENTED


def test_ctr2_lists_sandboxes_from_the_store(raw: RawClient, daemon: DaemonProcess):
    from pycontainerd.api.services.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
    from pycontainerd.api.types import sandbox_pb2 as sandbox_types
    from tests.support.ctr2 import Ctr2

    ctr2 = Ctr2(daemon.address)
    assert ctr2.ok("sandboxes", "ls").split() == ["ID", "CREATED", "RUNTIME"]
    store = sandbox_pb2_grpc.StoreStub(raw.channel)
    record = sandbox_types.Sandbox(
        sandbox_id="pod-a", runtime=sandbox_types.Sandbox.Runtime(name="io.containerd.runc.v2")
    )
    store.Create(sandbox_pb2.StoreCreateRequest(sandbox=record), metadata=raw.metadata)

    listing = ctr2.ok("sandboxes", "ls")
    assert "pod-a" in listing and "io.containerd.runc.v2" in listing
    duplicate = sandbox_pb2.StoreCreateRequest(sandbox=record)
    assert raw.code_of(store.Create, duplicate) == C.ALREADY_EXISTS
    assert raw.code_of(store.Get, sandbox_pb2.StoreGetRequest(sandbox_id="nope")) == C.NOT_FOUND
    controller = sandbox_pb2_grpc.ControllerStub(raw.channel)
    start = sandbox_pb2.ControllerStartRequest(sandbox_id="pod-a")
    assert raw.code_of(controller.Start, start) == C.UNIMPLEMENTED
    store.Delete(sandbox_pb2.StoreDeleteRequest(sandbox_id="pod-a"), metadata=raw.metadata)
    assert "pod-a" not in ctr2.ok("sandboxes", "ls")


def test_a_container_in_a_sandbox_is_refused_not_dropped(raw: RawClient, ctr: Ctr):
    from pycontainerd.api.services.containers.v1 import containers_pb2, containers_pb2_grpc

    stub = containers_pb2_grpc.ContainersStub(raw.channel)
    container = containers_pb2.Container(
        id="in-sandbox",
        runtime=containers_pb2.Container.Runtime(name="io.containerd.runc.v2"),
        sandbox="pod-a",
    )
    request = containers_pb2.CreateContainerRequest(container=container)

    assert raw.code_of(stub.Create, request) == C.UNIMPLEMENTED
    assert "in-sandbox" not in ctr.ok("containers", "ls")
