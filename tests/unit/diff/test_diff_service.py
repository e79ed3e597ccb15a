"""The diff service's choice of differ, its request decoding, and the chain IDs of unpack."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import pytest

from pycontainerd import errdefs
from pycontainerd.api.types import mount_pb2
from pycontainerd.client.unpack import chain_ids, gc_snapshot_label
from pycontainerd.diff import CompareOptions
from pycontainerd.metadata.placement import call, in_worker
from pycontainerd.mount import Mount
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.services.diff import DiffService, mounts_from_api

LAYER = Descriptor("application/vnd.oci.image.layer.v1.tar", "sha256:" + "a" * 64, 10)


class FakeDiffer:
    def __init__(self, name: str, implemented: bool, calls: list[str]) -> None:
        self.name = name
        self.implemented = implemented
        self.calls = calls

    @in_worker
    def apply(self, namespace: str, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        self.calls.append(f"{self.name}.apply")
        if not self.implemented:
            raise errdefs.NotImplemented_(f"{self.name} cannot")
        return LAYER

    @in_worker
    def compare(
        self,
        namespace: str,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        options: CompareOptions | None = None,
    ) -> Descriptor:
        self.calls.append(f"{self.name}.compare")
        raise errdefs.InvalidArgument("bad trees")


def test_differs_are_tried_in_order_until_one_implements_the_call() -> None:
    calls: list[str] = []
    service = DiffService([FakeDiffer("a", False, calls), FakeDiffer("b", True, calls)])

    result = asyncio.run(service._first_implemented(lambda d: call(d.apply, "ns", LAYER, [])))

    assert result == LAYER
    assert calls == ["a.apply", "b.apply"]


def test_other_errors_stop_the_search() -> None:
    calls: list[str] = []
    service = DiffService([FakeDiffer("a", True, calls), FakeDiffer("b", True, calls)])

    with pytest.raises(errdefs.InvalidArgument):
        asyncio.run(service._first_implemented(lambda d: call(d.compare, "ns", [], [])))
    assert calls == ["a.compare"]


def test_not_implemented_by_every_differ_is_reported() -> None:
    service = DiffService([FakeDiffer("a", False, []), FakeDiffer("b", False, [])])

    with pytest.raises(errdefs.NotImplemented_, match="b cannot"):
        asyncio.run(service._first_implemented(lambda d: call(d.apply, "ns", LAYER, [])))


def test_a_service_without_differs_is_refused() -> None:
    with pytest.raises(errdefs.FailedPrecondition):
        DiffService([])


def test_mounts_from_api_keep_type_source_and_options() -> None:
    api = [mount_pb2.Mount(type="overlay", source="overlay", options=["lowerdir=/a:/b", "ro"])]
    assert mounts_from_api(api) == [Mount("overlay", "overlay", options=["lowerdir=/a:/b", "ro"])]


def test_chain_ids_follow_the_oci_image_spec() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()

    assert chain_ids([]) == []
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b, c]) == [a, ab, abc]


def test_gc_label_names_the_snapshotter() -> None:
    assert gc_snapshot_label("overlayfs") == "containerd.io/gc.ref.snapshot.overlayfs"
