"""The containers service's record conversion, filled in place, equals the plain construction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import any_pb2, timestamp_pb2

from pycontainerd.api.services.containers.v1 import containers_pb2 as api
from pycontainerd.metadata.containers import AnyValue, Container, RuntimeInfo
from pycontainerd.services.containers import container_to_api

NOW = datetime(2026, 12, 3, 11, 40, 0, 123456, tzinfo=UTC)
SPEC = AnyValue("types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{}" * 100)


def _any(value: AnyValue | None) -> any_pb2.Any | None:
    return None if value is None else any_pb2.Any(type_url=value.type_url, value=value.value)


def _stamp(value: datetime | None) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    if value is not None:
        stamp.FromDatetime(value)
    return stamp


def reference(c: Container) -> api.Container:
    return api.Container(
        id=c.id,
        labels=c.labels,
        image=c.image,
        runtime=api.Container.Runtime(name=c.runtime.name, options=_any(c.runtime.options)),
        spec=_any(c.spec),
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        created_at=_stamp(c.created_at),
        updated_at=_stamp(c.updated_at),
        extensions={
            k: any_pb2.Any(type_url=e.type_url, value=e.value) for k, e in c.extensions.items()
        },
    )


RECORDS = [
    Container(
        id="full",
        runtime=RuntimeInfo(
            "io.containerd.runc.v2", AnyValue("containerd.runc.v1.Options", b"\x08\x01")
        ),
        spec=SPEC,
        image="docker.io/library/busybox:latest",
        snapshotter="overlayfs",
        snapshot_key="full",
        labels={"a": "b", "c": ""},
        extensions={"x": AnyValue("t", b"v")},
        created_at=NOW,
        updated_at=NOW,
    ),
    Container(id="bare"),  # no runtime name, no times: present but empty messages
    Container(  # set but empty Any values stay set
        id="empty-anys",
        runtime=RuntimeInfo("", AnyValue("", b"")),
        spec=AnyValue("", b""),
        extensions={"e": AnyValue("", b"")},
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda c: c.id)
def test_same_message_and_bytes(record: Container) -> None:
    got, want = container_to_api(record), reference(record)
    assert got == want
    assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
    assert got.HasField("runtime") and got.HasField("created_at") and got.HasField("updated_at")
    assert got.HasField("spec") == (record.spec is not None)
    assert got.runtime.HasField("options") == (record.runtime.options is not None)
