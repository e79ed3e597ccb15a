"""No filter stalls the daemon: catastrophic regexes, huge and deeply nested filters.

Each used to block every other call for seconds (Python's backtracking ``re``,
parsing on the event loop). The acceptance is that none delays a concurrent
``Version`` call (what ``ctr version`` sends) by more than 100 ms; measured here
as a bounded property with a generous margin for a loaded machine, far below
the stalls of seconds this guards against.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2

from pycontainerd.api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from pycontainerd.api.services.events.v1 import events_pb2, events_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2, images_pb2_grpc
from pycontainerd.api.services.version.v1 import version_pb2_grpc
from pycontainerd.api.types import descriptor_pb2
from tests.support.grpc_client import RawClient
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e
C = grpc.StatusCode
#: The acceptance bound and the margin allowed on a shared machine.
BOUND, MARGIN = 0.1, 0.9
BACKTRACKS = "a" * 25 + "!"  # (a+)+$ takes seconds on this with a backtracking engine
DIGEST = "sha256:" + "0" * 64


class VersionProbe:
    """Calls Version over its own connection until stopped; keeps the slowest answer."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(f"unix://{address}")
        self.stub = version_pb2_grpc.VersionStub(self.channel)
        self.slowest = 0.0
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.stub.Version(empty_pb2.Empty(), timeout=60)
            self.slowest = max(self.slowest, time.monotonic() - began)
            self.calls += 1
            time.sleep(0.01)

    def __enter__(self) -> VersionProbe:
        self.stub.Version(empty_pb2.Empty(), timeout=60)  # connected before measuring
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.channel.close()


def _image(name: str, labels: dict[str, str]) -> images_pb2.Image:
    target = descriptor_pb2.Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST, size=1
    )
    return images_pb2.Image(name=name, labels=labels, target=target)


def _code(call, request, metadata) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    try:
        call(request, metadata=metadata, timeout=60)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return C.OK, ""


def test_no_filter_delays_other_calls(daemon) -> None:
    raw = RawClient(daemon.address)
    m = raw.metadata
    images = images_pb2_grpc.ImagesStub(raw.channel)
    containers = containers_pb2_grpc.ContainersStub(raw.channel)
    events = events_pb2_grpc.EventsStub(raw.channel)
    try:
        images.Create(
            images_pb2.CreateImageRequest(image=_image("victim", {"a": BACKTRACKS})), metadata=m
        )
        images.Create(images_pb2.CreateImageRequest(image=_image("hit", {"a": "aaa"})), metadata=m)
        container = containers_pb2.Container(
            id="victim", image="victim", labels={"a": BACKTRACKS},
            runtime=containers_pb2.Container.Runtime(name="io.containerd.runc.v2"),
            spec=any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec", value=b"{}"),
        )  # fmt: skip
        containers.Create(containers_pb2.CreateContainerRequest(container=container), metadata=m)
        catastrophic = ['labels."a"~="(a+)+$"']

        with VersionProbe(str(daemon.address)) as probe:
            # An idle subscriber whose filter backtracks on every topic.
            subscription = events.Subscribe(
                events_pb2.SubscribeRequest(filters=['topic~="(.?.?)*X"']), metadata=m
            )
            listed = images.List(images_pb2.ListImagesRequest(filters=catastrophic), metadata=m)
            assert [i.name for i in listed.images] == ["hit"]
            found = containers.List(
                containers_pb2.ListContainersRequest(filters=catastrophic), metadata=m
            )
            assert list(found.containers) == []
            for i in range(5):  # events for the subscriber to match
                name = f"event-{i}"
                images.Create(images_pb2.CreateImageRequest(image=_image(name, {})), metadata=m)
                images.Delete(images_pb2.DeleteImageRequest(name=name, sync=True), metadata=m)
            huge = images_pb2.ListImagesRequest(filters=["name==" + "x" * (3 << 20)])
            code, details = _code(images.List, huge, m)
            assert code == C.INVALID_ARGUMENT and "too large" in details
            deep = "(" * 3000 + "a" + ")" * 3000
            nested = images_pb2.ListImagesRequest(filters=[f'labels.a~="{deep}"'])
            code, details = _code(images.List, nested, m)
            assert code == C.INVALID_ARGUMENT and "nests too deeply" in details
            wait_for(lambda: probe.calls >= 5, what="Version calls during the filters")
            subscription.cancel()
        print(f"slowest Version during the filters: {probe.slowest * 1000:.1f} ms")
        assert probe.slowest < BOUND + MARGIN
    finally:
        raw.close()
