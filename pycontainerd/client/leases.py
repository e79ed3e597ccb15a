"""Leases: keep content alive while a pull or a build is half done."""

from __future__ import annotations

import builtins
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from pycontainerd.api.services.leases.v1 import leases_pb2 as api
from pycontainerd.api.services.leases.v1 import leases_pb2_grpc
from pycontainerd.client.models import Lease, LeaseResource, from_timestamp
from pycontainerd.client.rpc import Connection

LABEL_GC_EXPIRE = "containerd.io/gc.expire"


def new_lease_id() -> str:
    """A unique id, sortable by creation time."""
    return f"{time.time_ns()}-{secrets.token_hex(4)}"


def expiry_label(expire: timedelta) -> dict[str, str]:
    """The label that makes the GC drop a lease after ``expire`` (RFC 3339, UTC)."""
    when = datetime.now(UTC) + expire
    return {LABEL_GC_EXPIRE: when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def _from_api(lease: api.Lease) -> Lease:
    return Lease(lease.id, dict(lease.labels), from_timestamp(lease.created_at))


class LeasesService:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = leases_pb2_grpc.LeasesStub(connection.channel)

    async def create(
        self,
        lease_id: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        expire: timedelta | None = None,
    ) -> Lease:
        all_labels = dict(labels or {})
        if expire is not None:
            all_labels.update(expiry_label(expire))
        request = api.CreateRequest(id=lease_id or new_lease_id(), labels=all_labels)
        return _from_api((await self._conn.unary(self._stub.Create, request)).lease)

    async def list(self, filters: Iterable[str] = ()) -> list[Lease]:
        reply = await self._conn.unary(self._stub.List, api.ListRequest(filters=list(filters)))
        return [_from_api(lease) for lease in reply.leases]

    async def delete(self, lease_id: str, *, sync: bool = False) -> None:
        """Delete a lease; with ``sync`` the call returns after the GC has run."""
        await self._conn.unary(self._stub.Delete, api.DeleteRequest(id=lease_id, sync=sync))

    async def resources(self, lease_id: str) -> builtins.list[LeaseResource]:
        reply = await self._conn.unary(
            self._stub.ListResources, api.ListResourcesRequest(id=lease_id)
        )
        return [LeaseResource(r.id, r.type) for r in reply.resources]

    async def add_resource(self, lease_id: str, resource: LeaseResource) -> None:
        request = api.AddResourceRequest(
            id=lease_id, resource=api.Resource(id=resource.id, type=resource.type)
        )
        await self._conn.unary(self._stub.AddResource, request)

    async def delete_resource(self, lease_id: str, resource: LeaseResource) -> None:
        request = api.DeleteResourceRequest(
            id=lease_id, resource=api.Resource(id=resource.id, type=resource.type)
        )
        await self._conn.unary(self._stub.DeleteResource, request)
