"""Container records: metadata only (spec, image, runtime, snapshot); no processes.

A record is what ``ctr containers ls`` lists. Running something in it is the
job of a task (:mod:`pycontainerd.client.task`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf import any_pb2, field_mask_pb2

from pycontainerd import errdefs
from pycontainerd.api.services.containers.v1 import containers_pb2 as api
from pycontainerd.api.services.containers.v1 import containers_pb2_grpc
from pycontainerd.client.models import from_timestamp
from pycontainerd.client.rpc import Connection
from pycontainerd.oci import Spec

#: containerd's type URL for a runtime spec stored as JSON in an Any.
SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"


@dataclass(frozen=True)
class ContainerInfo:
    """One container record; ``spec`` is the decoded OCI runtime spec (None if unset)."""

    id: str
    image: str = ""
    runtime: str = ""
    runtime_options: any_pb2.Any | None = None
    spec: Spec | None = None
    snapshotter: str = ""
    snapshot_key: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extensions: Mapping[str, any_pb2.Any] = field(default_factory=dict)


def spec_to_any(spec: Spec) -> any_pb2.Any:
    return any_pb2.Any(type_url=SPEC_TYPE_URL, value=json.dumps(spec).encode())


def spec_from_any(value: any_pb2.Any) -> Spec:
    try:
        spec = json.loads(value.value)
    except ValueError as exc:
        raise errdefs.InvalidArgument(f"container spec is not JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise errdefs.InvalidArgument("container spec must be a JSON object")
    return spec


def container_from_api(message: api.Container) -> ContainerInfo:
    runtime = message.runtime
    return ContainerInfo(
        id=message.id,
        image=message.image,
        runtime=runtime.name,
        runtime_options=runtime.options if runtime.HasField("options") else None,
        spec=spec_from_any(message.spec) if message.HasField("spec") else None,
        snapshotter=message.snapshotter,
        snapshot_key=message.snapshot_key,
        labels=dict(message.labels),
        created_at=from_timestamp(message.created_at),
        updated_at=from_timestamp(message.updated_at),
        extensions=dict(message.extensions),
    )


def container_to_api(info: ContainerInfo) -> api.Container:
    return api.Container(
        id=info.id,
        image=info.image,
        runtime=api.Container.Runtime(name=info.runtime, options=info.runtime_options),
        spec=spec_to_any(info.spec) if info.spec is not None else None,
        snapshotter=info.snapshotter,
        snapshot_key=info.snapshot_key,
        labels=dict(info.labels),
        extensions=dict(info.extensions),
    )


class ContainersService:
    """Create, read, update and delete container records in the client's namespace."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = containers_pb2_grpc.ContainersStub(connection.channel)

    async def get(self, container_id: str) -> ContainerInfo:
        reply = await self._conn.unary(self._stub.Get, api.GetContainerRequest(id=container_id))
        return container_from_api(reply.container)

    async def list(self, filters: Iterable[str] = ()) -> list[ContainerInfo]:
        request = api.ListContainersRequest(filters=list(filters))
        reply = await self._conn.unary(self._stub.List, request)
        return [container_from_api(c) for c in reply.containers]

    async def create(self, info: ContainerInfo) -> ContainerInfo:
        request = api.CreateContainerRequest(container=container_to_api(info))
        return container_from_api((await self._conn.unary(self._stub.Create, request)).container)

    async def update(self, info: ContainerInfo, fields: Iterable[str] = ()) -> ContainerInfo:
        """Update the record; ``fields`` are field-mask paths (none: every mutable field)."""
        request = api.UpdateContainerRequest(
            container=container_to_api(info),
            update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
        )
        return container_from_api((await self._conn.unary(self._stub.Update, request)).container)

    async def set_labels(self, container_id: str, labels: Mapping[str, str]) -> ContainerInfo:
        """Set exactly these labels (an empty value removes one); others are kept."""
        info = ContainerInfo(id=container_id, labels=dict(labels))
        return await self.update(info, [f"labels.{key}" for key in labels])

    async def delete(self, container_id: str) -> None:
        await self._conn.unary(self._stub.Delete, api.DeleteContainerRequest(id=container_id))


def runtime_options_any(message: Any) -> any_pb2.Any:
    """Pack runtime options (e.g. ``containerd.runc.v1.Options``) as containerd does."""
    return any_pb2.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())
