"""Containers end to end: records made by the real ctr or raw gRPC, read back by both."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, field_mask_pb2

from pycontainerd.api.runtime.v2.runc.options import oci_pb2
from pycontainerd.api.services.containers.v1 import containers_pb2 as api
from pycontainerd.api.services.containers.v1 import containers_pb2_grpc
from pycontainerd.oci.spec import default_spec
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.grpc_client import RawClient
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
RUNC_OPTIONS_TYPE = "containerd.runc.v1.Options"
RUNTIME = "io.containerd.runc.v2"


def _spec_any(container_id: str, namespace: str = "default") -> any_pb2.Any:
    """A default spec, indented so that any re-encoding by the daemon would show."""
    spec = default_spec(namespace, container_id)
    return any_pb2.Any(type_url=SPEC_TYPE, value=json.dumps(spec, indent=3).encode() + b"\n")


def _container(container_id: str, namespace: str = "default", **fields) -> api.Container:  # type: ignore[no-untyped-def]
    options = oci_pb2.Options(binary_name="crun", systemd_cgroup=False)
    defaults = {
        "runtime": api.Container.Runtime(
            name=RUNTIME,
            options=any_pb2.Any(type_url=RUNC_OPTIONS_TYPE, value=options.SerializeToString()),
        ),
        "spec": _spec_any(container_id, namespace),
    }
    return api.Container(id=container_id, **{**defaults, **fields})


class Containers:
    """The containers stub on a raw channel, in one namespace."""

    def __init__(self, address: Path, namespace: str = "default") -> None:
        self.raw = RawClient(address, namespace)
        self.stub = containers_pb2_grpc.ContainersStub(self.raw.channel)

    def create(self, container: api.Container) -> api.Container:
        reply = self.stub.Create(
            api.CreateContainerRequest(container=container), metadata=self.raw.metadata, timeout=30
        )
        return reply.container

    def get(self, container_id: str) -> api.Container:
        reply = self.stub.Get(
            api.GetContainerRequest(id=container_id), metadata=self.raw.metadata, timeout=30
        )
        return reply.container

    def error(self, call: Callable, request) -> grpc.RpcError:  # type: ignore[no-untyped-def]
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=self.raw.metadata, timeout=30)
        return caught.value

    def close(self) -> None:
        self.raw.close()


@pytest.fixture
def containers(daemon: DaemonProcess) -> Iterator[Containers]:
    client = Containers(daemon.address)
    try:
        yield client
    finally:
        client.close()


def test_ctr_create_ls_info_label_rm(ctr: Ctr, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    ctr.ok("containers", "create", "--rootfs", "--label", "team=blue", str(rootfs), "web-1")
    ctr.ok("containers", "create", "--rootfs", str(rootfs), "web-2")

    listing = ctr.ok("containers", "ls").splitlines()
    assert listing[0].split() == ["CONTAINER", "IMAGE", "RUNTIME"]
    assert [line.split() for line in listing[1:]] == [
        ["web-1", "-", RUNTIME],
        ["web-2", "-", RUNTIME],
    ]
    assert ctr.ok("containers", "ls", "-q").split() == ["web-1", "web-2"]
    assert ctr.ok("containers", "ls", "-q", "labels.team==blue").split() == ["web-1"]
    assert ctr.ok("containers", "ls", "-q", "id==web-2").split() == ["web-2"]

    info = json.loads(ctr.ok("containers", "info", "web-1"))
    assert info["ID"] == "web-1"
    assert info["Runtime"]["Name"] == RUNTIME
    assert info["Labels"] == {"team": "blue"}
    assert info["Spec"]["root"]["path"] == str(rootfs)
    assert info["CreatedAt"] == info["UpdatedAt"]
    spec_only = json.loads(ctr.ok("containers", "info", "--spec", "web-1"))
    assert spec_only == info["Spec"]

    assert ctr.ok("containers", "label", "web-1", "team=red", "tier=front").strip() in (
        "team=red,tier=front",
        "tier=front,team=red",
    )
    ctr.ok("containers", "label", "web-1", "team=")  # an empty value removes the label
    relabelled = json.loads(ctr.ok("containers", "info", "web-1"))
    assert relabelled["Labels"] == {"tier": "front"}
    assert _when(relabelled["UpdatedAt"]) > _when(relabelled["CreatedAt"])
    assert relabelled["Spec"] == info["Spec"]

    ctr.ok("containers", "rm", "web-1", "web-2")
    assert ctr.ok("containers", "ls", "-q").split() == []
    assert "not found" in ctr.fails("containers", "info", "web-1")
    assert "not found" in ctr.fails("containers", "rm", "web-1")


def test_raw_create_is_kept_byte_exact_and_shown_by_ctr(ctr: Ctr, containers: Containers) -> None:
    sent = _container(
        "raw-1",
        image="docker.io/library/busybox:latest",
        labels={"owner": "alice"},
        extensions={"example.ext": any_pb2.Any(type_url="example.com/Ext", value=b"\x00\x01\xff")},
    )
    created = containers.create(sent)
    assert created.created_at.ToNanoseconds() > 0
    got = containers.get("raw-1")
    assert got == created
    assert got.spec == sent.spec
    assert got.runtime == sent.runtime
    assert dict(got.extensions) == dict(sent.extensions)

    info = json.loads(ctr.ok("containers", "info", "raw-1"))
    assert info["Spec"] == json.loads(sent.spec.value)
    assert info["Image"] == "docker.io/library/busybox:latest"
    assert info["Labels"] == {"owner": "alice"}
    assert info["Runtime"]["Options"]["type_url"] == RUNC_OPTIONS_TYPE
    line = ctr.ok("containers", "ls").splitlines()[1].split()
    assert line == ["raw-1", "docker.io/library/busybox:latest", RUNTIME]
    assert ctr.ok("containers", "ls", "-q", "image==other").split() == []

    streamed = list(
        containers.stub.ListStream(
            api.ListContainersRequest(filters=["labels.owner==alice"]),
            metadata=containers.raw.metadata,
            timeout=30,
        )
    )
    assert [m.container for m in streamed] == [got]


def test_update_masks_and_events(
    ctr: Ctr, daemon: DaemonProcess, containers: Containers, tmp_path: Path
) -> None:
    with _EventWatcher(ctr, tmp_path / "events.log") as watcher:
        containers.create(_container("ev-1", image="img:1"))
        request = api.UpdateContainerRequest(
            container=api.Container(id="ev-1", image="img:2", snapshot_key="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["image"]),
        )
        updated = containers.stub.Update(request, metadata=containers.raw.metadata).container
        assert (updated.image, updated.snapshot_key) == ("img:2", "")
        containers.stub.Delete(
            api.DeleteContainerRequest(id="ev-1"), metadata=containers.raw.metadata
        )
        seen = watcher.wait_for(["/containers/create", "/containers/update", "/containers/delete"])
    by_topic = {topic: payload for topic, payload in seen}
    assert by_topic["/containers/create"]["id"] == "ev-1"
    assert by_topic["/containers/create"]["image"] == "img:1"
    assert by_topic["/containers/create"]["runtime"]["name"] == RUNTIME
    assert by_topic["/containers/update"] == {"id": "ev-1", "image": "img:2"}
    assert by_topic["/containers/delete"] == {"id": "ev-1"}


def test_bad_input_gets_containerds_status_codes(
    daemon: DaemonProcess, containers: Containers
) -> None:
    stub, code_of = containers.stub, containers.raw.code_of
    create = api.CreateContainerRequest
    assert code_of(stub.Create, create(container=_container("dup"))) == grpc.StatusCode.OK
    assert code_of(stub.Create, create(container=_container("dup"))) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    for bad_id in ("", "bad id", "-leading", "x" * 77):
        bad = _container("placeholder")
        bad.id = bad_id
        assert code_of(stub.Create, create(container=bad)) == grpc.StatusCode.INVALID_ARGUMENT

    no_runtime = _container("no-runtime")
    no_runtime.ClearField("runtime")
    error = containers.error(stub.Create, create(container=no_runtime))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must specify a runtime name" in error.details()
    no_spec = _container("no-spec")
    no_spec.ClearField("spec")
    assert code_of(stub.Create, create(container=no_spec)) == grpc.StatusCode.INVALID_ARGUMENT
    key_only = _container("key-only", snapshot_key="k")
    assert code_of(stub.Create, create(container=key_only)) == grpc.StatusCode.INVALID_ARGUMENT

    def update(*paths: str, **fields) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
        request = api.UpdateContainerRequest(
            container=_container("dup", **fields),
            update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
        )
        return code_of(stub.Update, request)

    for path in ("bogus", "id", "snapshotter", "runtime"):
        assert update(path, snapshotter="native") == grpc.StatusCode.INVALID_ARGUMENT, path
    assert update(snapshotter="native") == grpc.StatusCode.INVALID_ARGUMENT
    assert update("labels.ok", labels={"ok": "1"}) == grpc.StatusCode.OK
    assert containers.get("dup").labels == {"ok": "1"}
    ghost = api.UpdateContainerRequest(
        container=_container("ghost"), update_mask=field_mask_pb2.FieldMask(paths=["image"])
    )
    assert code_of(stub.Update, ghost) == grpc.StatusCode.NOT_FOUND

    assert code_of(stub.Get, api.GetContainerRequest(id="ghost")) == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.Delete, api.DeleteContainerRequest(id="ghost")) == (
        grpc.StatusCode.NOT_FOUND
    )
    bad_filter = api.ListContainersRequest(filters=["id=="])
    assert code_of(stub.List, bad_filter) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(stub.ListStream, bad_filter) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as no_namespace:
        stub.List(api.ListContainersRequest(), timeout=30)
    assert no_namespace.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_namespace_with_containers_cannot_be_removed(ctr: Ctr, daemon: DaemonProcess) -> None:
    team = Containers(daemon.address, "team-c")
    try:
        team.create(_container("held", namespace="team-c"))
    finally:
        team.close()
    assert ctr.ok("containers", "ls", "-q").split() == []  # other namespace
    assert ctr.ok("containers", "ls", "-q", namespace="team-c").split() == ["held"]
    error = ctr.fails("namespaces", "rm", "team-c")
    assert "containers" in error and "failed precondition" in error
    ctr.ok("containers", "rm", "held", namespace="team-c")
    ctr.ok("namespaces", "rm", "team-c")


def test_container_labels_keep_content_from_gc(ctr: Ctr, containers: Containers) -> None:
    data = b"referenced by a container label\n"
    ctr.ok("content", "ingest", "held-blob", input=data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    containers.create(_container("holder", labels={"containerd.io/gc.ref.content.blob": digest}))
    ctr.ok("leases", "create", "--id", "gc-trigger")
    ctr.ok("leases", "rm", "--sync", "gc-trigger")  # a synchronous collection
    assert digest in ctr.ok("content", "ls")
    ctr.ok("containers", "rm", "holder")
    wait_for(lambda: digest not in ctr.ok("content", "ls"), "collection after container removal")


def test_create_survives_kill9(ctr: Ctr, daemon: DaemonProcess) -> None:
    client = Containers(daemon.address)
    try:
        sent = _container("durable", labels={"k": "v"})
        created = client.create(sent)
    finally:
        client.close()
    daemon.kill9()
    daemon.start()
    assert ctr.ok("containers", "ls", "-q").split() == ["durable"]
    client = Containers(daemon.address)
    try:
        got = client.get("durable")
    finally:
        client.close()
    assert got.spec.type_url == SPEC_TYPE
    assert got.spec.value == sent.spec.value
    assert got == created


class _EventWatcher:
    """`ctr events` in the background, written to a file; ready once it shows a probe event."""

    def __init__(self, ctr: Ctr, log_path: Path) -> None:
        self.ctr = ctr
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _EventWatcher:
        assert self.ctr.binary is not None
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [self.ctr.binary, "-a", str(self.ctr.address), "events"],
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
        try:
            self._wait_until_subscribed()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_subscribed(self) -> None:
        probe = Containers(self.ctr.address, "probe")
        try:
            for attempt in range(100):
                probe.create(_container(f"probe-{attempt}", namespace="probe"))
                if "probe-" in self.log_path.read_text():
                    return
                time.sleep(0.1)
        finally:
            probe.close()
        raise AssertionError("ctr events never showed a probe event")

    def container_events(self) -> list[tuple[str, dict]]:
        """(topic, payload) of /containers/ events in namespace default, in order."""
        found = []
        for line in self.log_path.read_text().splitlines():
            # "<timestamp words> <namespace> <topic> <payload json>"
            words = line.split()
            topic_at = next((i for i, w in enumerate(words) if w.startswith("/containers/")), None)
            if topic_at is not None and words[topic_at - 1] == "default":
                found.append((words[topic_at], json.loads(" ".join(words[topic_at + 1 :]))))
        return found

    def wait_for(self, topics: list[str], timeout: float = 10.0) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.container_events()
            if [topic for topic, _ in seen] == topics:
                return seen
            time.sleep(0.05)
        raise AssertionError(f"expected events {topics}, saw {self.container_events()}")

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _when(rfc3339: str) -> datetime:
    """ctr's timestamps trim trailing zeros, so compare them as times, not strings."""
    return datetime.fromisoformat(rfc3339)
