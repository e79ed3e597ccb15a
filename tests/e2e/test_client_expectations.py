"""Answers that containerd's clients rely on, call for call, through the socket.

Each test is one behaviour of containerd that a client (the real ctr, or the
raw gRPC stubs where ctr cannot make the call) sees differently if we get it
wrong. The Go client's view of the same is in test_go_client.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import grpc
import pytest
from google.protobuf import any_pb2, field_mask_pb2

from pycontainerd.api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from pycontainerd.api.services.content.v1 import content_pb2, content_pb2_grpc
from pycontainerd.api.services.namespaces.v1 import namespace_pb2, namespace_pb2_grpc
from pycontainerd.api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from pycontainerd.remotes.platforms import default_platform, format_platform
from pycontainerd.shim_v2.options import LEGACY_OPTIONS_TYPE, legacy_options_class
from tests.support.ctr_env import ctr_run_env
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.grpc_client import RawClient

pytestmark = pytest.mark.e2e
C = grpc.StatusCode
SNAPSHOTTER_LABEL = "containerd.io/defaults/snapshotter"


def _error(call, request, raw: RawClient, namespace: str | None = None) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    metadata = raw.metadata if namespace is None else (("containerd-namespace", namespace),)
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata, timeout=30)
    return caught.value


# 1. Namespace labels on a namespace nobody created


def test_labelling_a_missing_namespace_creates_it(ctr: Ctr, raw: RawClient) -> None:
    # ctr's `namespaces label` is SetLabel: an update with the mask labels.<key>.
    ctr.ok("namespaces", "label", "fresh", f"{SNAPSHOTTER_LABEL}=native")
    assert f"{SNAPSHOTTER_LABEL}=native" in ctr.ok("namespaces", "ls")
    # A full replace with no labels leaves a missing namespace missing, as in containerd.
    stub = namespace_pb2_grpc.NamespacesStub(raw.channel)
    stub.Update(
        namespace_pb2.UpdateNamespaceRequest(namespace=namespace_pb2.Namespace(name="absent")),
        metadata=raw.metadata,
        timeout=30,
    )
    assert "absent" not in ctr.ok("namespaces", "ls", "-q").split()
    # A bad mask changes nothing, not even the namespace's existence.
    bad = namespace_pb2.UpdateNamespaceRequest(
        namespace=namespace_pb2.Namespace(name="never", labels={"a": "b"}),
        update_mask=field_mask_pb2.FieldMask(paths=["labels.a", "name"]),
    )
    assert raw.code_of(stub.Update, bad) == C.INVALID_ARGUMENT
    assert "never" not in ctr.ok("namespaces", "ls", "-q").split()


# 2. Commit of content that already exists


def _write(stub, raw: RawClient, *requests: content_pb2.WriteContentRequest):  # type: ignore[no-untyped-def]
    return list(stub.Write(iter(requests), metadata=raw.metadata, timeout=30))


def test_commit_of_existing_content_ends_the_write(ctr: Ctr, raw: RawClient) -> None:
    data = os.urandom(256)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ctr.ok("content", "ingest", "seed", input=data)
    stub = content_pb2_grpc.ContentStub(raw.channel)
    for attempt in (1, 2):
        stat, write = content_pb2.STAT, content_pb2.WRITE
        replies = _write(stub, raw, content_pb2.WriteContentRequest(action=stat, ref="again"))
        # containerd's Go client sends the offset with the commit (0 would truncate).
        assert replies[0].offset == 0, f"attempt {attempt} resumed a finished write"
        commit = content_pb2.WriteContentRequest(
            action=content_pb2.COMMIT, ref="again", offset=256, total=256, expected=digest
        )
        with pytest.raises(grpc.RpcError) as caught:
            _write(
                stub,
                raw,
                content_pb2.WriteContentRequest(action=write, ref="again", data=data),
                commit,
            )
        assert caught.value.code() == C.ALREADY_EXISTS, caught.value.details()
        assert raw.code_of(stub.Status, content_pb2.StatusRequest(ref="again")) == C.NOT_FOUND
    # The same bytes under a new ref, without an expected digest: found at commit.
    third = (
        content_pb2.WriteContentRequest(action=content_pb2.WRITE, ref="third", data=data),
        content_pb2.WriteContentRequest(action=content_pb2.COMMIT, ref="third", offset=256),
    )
    with pytest.raises(grpc.RpcError) as caught:
        _write(stub, raw, *third)
    assert caught.value.code() == C.ALREADY_EXISTS, caught.value.details()
    assert raw.code_of(stub.Status, content_pb2.StatusRequest(ref="third")) == C.NOT_FOUND
    assert ctr.ok("content", "active").splitlines()[1:] == []


# 5. Error texts that clients match


def test_missing_runc_binary_is_named_as_containerd_names_it(
    daemon: DaemonProcess, busybox_pushed
) -> None:  # type: ignore[no-untyped-def]
    with ctr_run_env(daemon, busybox_pushed.ref) as env:
        message = env.ctr.fails(
            *env.run_args("--rm", "--runc-binary", "no-runc", busybox_pushed.ref, "nr", "true")
        )
        assert '"no-runc": executable file not found in $PATH' in message, message
        assert "install it" in message, message  # our hint follows
        assert env.containers() == []


def test_missing_legacy_runtime_binary_is_named(
    daemon: DaemonProcess, busybox_pushed, raw: RawClient
) -> None:  # type: ignore[no-untyped-def]
    """io.containerd.runtime.v1.linux names its runc binary in RuncOptions.runtime."""
    with ctr_run_env(daemon, busybox_pushed.ref) as env:
        env.ctr.ok(
            "containers", "create", "--runtime", "io.containerd.runtime.v1.linux",
            busybox_pushed.ref, "legacy", "true",
        )  # fmt: skip
        options = legacy_options_class()(runtime="no-runc")
        request = tasks_pb2.CreateTaskRequest(
            container_id="legacy",
            options=any_pb2.Any(type_url=LEGACY_OPTIONS_TYPE, value=options.SerializeToString()),
        )
        stub = tasks_pb2_grpc.TasksStub(raw.channel)
        error = _error(stub.Create, request, raw, env.namespace)
        assert '"no-runc": executable file not found in $PATH' in error.details(), error.details()
        assert env.tasks() == {}
        env.ctr.ok("containers", "rm", "legacy")
        # The legacy runtime name runs on our shim (with runc) when nothing is missing.
        legacy = ("--runtime", "io.containerd.runtime.v1.linux")
        ran = env.ctr.ok(
            *env.run_args("--rm", *legacy, busybox_pushed.ref, "legacy-ok", "echo", "hi")
        )
        assert ran == "hi\n"


def test_status_messages_end_with_containerds_words(ctr: Ctr, raw: RawClient) -> None:
    """containerd's errdefs end each message with its kind; raw gRPC clients match that."""
    containers = containers_pb2_grpc.ContainersStub(raw.channel)
    missing = _error(containers.Get, containers_pb2.GetContainerRequest(id="nope"), raw)
    assert missing.code() == C.NOT_FOUND and missing.details().endswith(": not found")
    namespaces = namespace_pb2_grpc.NamespacesStub(raw.channel)
    ctr.ok("namespaces", "create", "twice")
    again = namespace_pb2.CreateNamespaceRequest(namespace=namespace_pb2.Namespace(name="twice"))
    exists = _error(namespaces.Create, again, raw)
    assert exists.code() == C.ALREADY_EXISTS and exists.details().endswith(": already exists")
    ctr.ok("content", "ingest", "held", input=b"x", namespace="twice")
    busy = _error(namespaces.Delete, namespace_pb2.DeleteNamespaceRequest(name="twice"), raw)
    assert busy.code() == C.FAILED_PRECONDITION
    assert busy.details().endswith(": failed precondition"), busy.details()
    bad_name = namespace_pb2.Namespace(name="bad name")
    bad = _error(namespaces.Create, namespace_pb2.CreateNamespaceRequest(namespace=bad_name), raw)
    assert bad.details().endswith(": invalid argument"), bad.details()
    # ctr (containerd's client) strips the suffix and adds its own: it appears once.
    message = ctr.fails("containers", "info", "nope")
    assert message.count(": not found") == 1, message


# 6. The namespace of /namespaces/create events


def test_namespace_events_are_published_in_the_callers_namespace(
    ctr: Ctr, daemon: DaemonProcess
) -> None:
    watcher = subprocess.Popen(
        [ctr.binary, "-a", str(daemon.address), "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(0.5)  # let the subscription reach the daemon
        ctr.ok("namespaces", "create", "made", namespace="caller")
        ctr.ok("namespaces", "label", "made", "a=b", namespace="caller")
        ctr.ok("namespaces", "rm", "made", namespace="caller")
        time.sleep(0.5)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    # A line: DATE TIME ZONE-OFFSET ZONE NAMESPACE TOPIC EVENT
    seen = [tuple(line.split()[4:6]) for line in out.splitlines() if len(line.split()) >= 6]
    assert ("caller", "/namespaces/create") in seen, out
    assert ("caller", "/namespaces/update") in seen, out
    assert ("made", "/namespaces/delete") in seen, out  # containerd: the deleted one's
    assert ("made", "/namespaces/create") not in seen, out


# 7. Platforms in introspection


def test_snapshotters_and_the_runtime_report_the_host_platform(ctr: Ctr) -> None:
    host = format_platform(default_platform())
    rows = {
        (fields[0], fields[1]): fields[2]
        for fields in (line.split() for line in ctr.ok("plugins", "ls").splitlines()[1:])
        if len(fields) >= 4
    }
    for plugin in (
        ("io.containerd.snapshotter.v1", "overlayfs"),
        ("io.containerd.snapshotter.v1", "native"),
        ("io.containerd.runtime.v2", "task"),
        ("io.containerd.differ.v1", "walking"),
    ):
        assert rows[plugin] == host, (plugin, rows)
    detailed = ctr.ok("plugins", "ls", "-d", "id==task")
    assert host in detailed.split("Platforms:")[1], detailed


# 8. Unknown methods


@pytest.mark.parametrize(
    "method, text",
    [
        (
            "/containerd.services.version.v1.Version/Nope",
            "unknown method Nope for service containerd.services.version.v1.Version",
        ),
        ("/containerd.services.nothere.v1.Nothing/Get", "unknown service containerd.services.nothere.v1.Nothing"),
    ],
)  # fmt: skip
def test_unknown_methods_answer_as_grpc_go(raw: RawClient, method: str, text: str) -> None:
    call = raw.channel.unary_unary(method)
    with pytest.raises(grpc.RpcError) as caught:
        call(b"", metadata=raw.metadata, timeout=30)
    assert caught.value.code() == C.UNIMPLEMENTED
    assert caught.value.details() == text
    streaming = raw.channel.stream_stream(method)
    with pytest.raises(grpc.RpcError) as caught:
        list(streaming(iter([b"", b""]), metadata=raw.metadata, timeout=30))
    assert (caught.value.code(), caught.value.details()) == (C.UNIMPLEMENTED, text)
