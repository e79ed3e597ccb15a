"""Namespaces: create, list, get, label, delete."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import field_mask_pb2

from pycontainerd.api.services.namespaces.v1 import namespace_pb2 as api
from pycontainerd.api.services.namespaces.v1 import namespace_pb2_grpc
from pycontainerd.client.models import Namespace
from pycontainerd.client.rpc import Connection


def _from_api(namespace: api.Namespace) -> Namespace:
    return Namespace(namespace.name, dict(namespace.labels))


def label_paths(labels: Mapping[str, str]) -> list[str]:
    """Field paths that set (or, with an empty value, remove) exactly these labels."""
    return [f"labels.{key}" for key in labels]


class NamespacesService:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = namespace_pb2_grpc.NamespacesStub(connection.channel)

    async def create(self, name: str, labels: Mapping[str, str] | None = None) -> Namespace:
        request = api.CreateNamespaceRequest(
            namespace=api.Namespace(name=name, labels=dict(labels or {}))
        )
        return _from_api((await self._conn.unary(self._stub.Create, request)).namespace)

    async def get(self, name: str) -> Namespace:
        request = api.GetNamespaceRequest(name=name)
        return _from_api((await self._conn.unary(self._stub.Get, request)).namespace)

    async def list(self, filter: str = "") -> list[Namespace]:  # noqa: A002 - the API's name
        reply = await self._conn.unary(self._stub.List, api.ListNamespacesRequest(filter=filter))
        return [_from_api(n) for n in reply.namespaces]

    async def set_labels(self, name: str, labels: Mapping[str, str]) -> Namespace:
        """Set the given labels; an empty value removes that label."""
        request = api.UpdateNamespaceRequest(
            namespace=api.Namespace(name=name, labels=dict(labels)),
            update_mask=field_mask_pb2.FieldMask(paths=label_paths(labels)),
        )
        return _from_api((await self._conn.unary(self._stub.Update, request)).namespace)

    async def delete(self, name: str) -> None:
        await self._conn.unary(self._stub.Delete, api.DeleteNamespaceRequest(name=name))
