"""The pieces behind containerd's answers (issue 10), one by one, without a daemon."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.h2grpc import unknown_method_text
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.namespaces import Namespace, NamespaceStore
from pycontainerd.runtime.bundle import BundleStore, remapped_root_gid
from pycontainerd.shim_v2 import pool
from pycontainerd.shim_v2 import start as shim_start
from pycontainerd.shim_v2.flags import ShimFlags
from pycontainerd.shim_v2.options import RuntimeOptions, decode_serialized_options
from pycontainerd.shim_v2.shim_cgroup import cgroup_dirs
from pycontainerd.snapshots.overlay import remapped_root


@pytest.fixture
def namespaces(tmp_path: Path) -> Iterator[NamespaceStore]:
    db = Database(tmp_path / "meta.db")
    try:
        yield NamespaceStore(db)
    finally:
        db.close()


def test_set_label_creates_a_missing_namespace(namespaces: NamespaceStore) -> None:
    updated = namespaces.update(Namespace("fresh", {"a": "1", "b": "2"}), ["labels.a"])
    assert updated.labels == {"a": "1"}
    assert namespaces.get("fresh").labels == {"a": "1"}
    namespaces.update(Namespace("fresh", {}), ["labels.a"])  # unset, namespace kept
    assert namespaces.get("fresh").labels == {}
    namespaces.update(Namespace("absent", {}), [])
    with pytest.raises(errdefs.NotFound):
        namespaces.get("absent")
    with pytest.raises(errdefs.InvalidArgument):
        namespaces.update(Namespace("never", {"a": "1"}), ["labels.a", "name"])
    with pytest.raises(errdefs.NotFound):
        namespaces.get("never")


@pytest.mark.parametrize(
    "method, text",
    [
        ("/a.B/Get", "unknown method Get for service a.B"),
        ("/x.Y/Get", "unknown service x.Y"),
        ("nonsense", 'malformed method name: "nonsense"'),
    ],
)
def test_unknown_method_texts_are_grpc_gos(method: str, text: str) -> None:
    assert unknown_method_text(method, ["a.B"]) == text


@pytest.mark.parametrize(
    "error, text",
    [
        (errdefs.NotFound("container x"), "container x: not found"),
        (errdefs.NotFound("container x: not found"), "container x: not found"),
        (errdefs.AlreadyExists("blob y"), "blob y: already exists"),
        (errdefs.FailedPrecondition("busy"), "busy: failed precondition"),
        (errdefs.NotImplemented_("nope"), "nope: not implemented"),
        (errdefs.ContainerdError("odd"), "odd"),
        (ValueError("bad"), "bad"),
    ],
)
def test_status_messages_carry_containerds_suffix(error: BaseException, text: str) -> None:
    assert errdefs.status_message(error) == text


def _spec(gid_mappings: list[dict[str, int]]) -> bytes:
    return json.dumps({"linux": {"gidMappings": gid_mappings}}).encode()


def test_the_bundle_opens_to_the_remapped_root(tmp_path: Path) -> None:
    mapping = [
        {"containerID": 1, "hostID": 5, "size": 1},
        {"containerID": 0, "hostID": 7, "size": 9},
    ]
    assert remapped_root_gid(_spec(mapping)) == 7
    assert remapped_root_gid(b"{}") == 0
    store = BundleStore(state=tmp_path / "state", root=tmp_path / "root")
    bundle = store.create("ns", "u", _spec(mapping))
    assert (bundle.path.stat().st_mode & 0o777, bundle.path.stat().st_gid) == (0o710, 7)
    plain = store.create("ns", "p", b"{}")
    assert plain.path.stat().st_mode & 0o777 == 0o700
    with pytest.raises(errdefs.InvalidArgument):
        store.create("ns", "bad", b"{not json")
    assert not store.path_of("ns", "bad").exists()


def test_remap_labels_name_the_snapshots_owner() -> None:
    labels = {
        "containerd.io/snapshot/uidmapping": "0:100000:65536",
        "containerd.io/snapshot/gidmapping": "1:200001:10,0:200000:1",
    }
    assert remapped_root(labels) == (100000, 200000)
    assert remapped_root({}) is None
    with pytest.raises(errdefs.InvalidArgument, match="do not map the root"):
        remapped_root({"containerd.io/snapshot/uidmapping": "1:5:3"})
    with pytest.raises(errdefs.InvalidArgument, match="is not"):
        remapped_root({"containerd.io/snapshot/uidmapping": "zero"})


MOUNTINFO_V1 = """\
30 25 0:26 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""
MOUNTINFO_V2 = "30 25 0:26 / {root} rw - cgroup2 cgroup2 rw\n"


def test_shim_cgroup_directories(tmp_path: Path) -> None:
    # Hybrid or legacy: every v1 hierarchy where the cgroup exists, not the v2 one.
    v1 = MOUNTINFO_V1.replace("/sys/fs/cgroup", str(tmp_path))
    (tmp_path / "pids" / "shims").mkdir(parents=True)
    (tmp_path / "unified" / "shims").mkdir(parents=True)
    assert cgroup_dirs("/shims", v1) == [tmp_path / "pids" / "shims"]
    assert cgroup_dirs("/elsewhere", v1) == []
    v2 = MOUNTINFO_V2.format(root=tmp_path / "unified")
    assert cgroup_dirs("/shims", v2) == [tmp_path / "unified" / "shims"]


def test_options_from_start_stdin() -> None:
    from google.protobuf import any_pb2

    from pycontainerd.api.runtime.v2.runc.options import oci_pb2

    value = oci_pb2.Options(shim_cgroup="/pods/x").SerializeToString()
    data = any_pb2.Any(type_url="containerd.runc.v1.Options", value=value).SerializeToString()
    assert decode_serialized_options(data).shim_cgroup == "/pods/x"
    assert decode_serialized_options(b"") == RuntimeOptions()
    with pytest.raises(errdefs.InvalidArgument):
        decode_serialized_options(b"\xff\xff")


def test_a_shim_cgroup_means_a_shim_of_its_own(tmp_path: Path) -> None:
    env = {shim_start.SOCKET_DIR_ENV: str(tmp_path / "s"), "PYCONTAINERD_SHIM_POOL_SIZE": "8"}
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    held: list[socket.socket] = []
    try:
        with pool.placement_lock(str(tmp_path / "s")):
            placements = [
                shim_start.place(
                    ShimFlags(namespace="ns", id=cid, address="/a.sock"), str(bundle), env, own
                )
                for cid, own in (("p1", False), ("p2", False), ("own", True))
            ]
        held = [p.listener for p in placements if p.listener is not None]
        pooled, pooled_again, own = (p.path for p in placements)
        assert pooled == pooled_again
        assert own != pooled and placements[2].listener is not None
        assert placements[2].linger == 0.0
    finally:
        for listener in held:
            listener.close()
