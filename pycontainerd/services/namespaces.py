"""The namespaces service."""

from __future__ import annotations

from google.protobuf import empty_pb2

from pycontainerd import plugin
from pycontainerd.api.events import namespace_pb2 as events
from pycontainerd.api.services.namespaces.v1 import namespace_pb2 as api
from pycontainerd.events.exchange import Exchange
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.namespaces import Namespace
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.services.base import caller_namespace, field_paths, rpc


def _to_api(ns: Namespace) -> api.Namespace:
    return api.Namespace(name=ns.name, labels=ns.labels)


class NamespacesService:
    def __init__(self, metadata: MetadataStore, exchange: Exchange) -> None:
        self.store = metadata.namespaces
        self.exchange = exchange

    @rpc
    async def Get(self, request: api.GetNamespaceRequest, context: ServicerContext):  # noqa: N802
        # Like containerd, a namespace nobody wrote to yet reads as existing and empty:
        # clients look up labels (e.g. the default runtime) before their first write.
        labels = await call(self.store.labels, request.name)
        return api.GetNamespaceResponse(namespace=api.Namespace(name=request.name, labels=labels))

    @rpc
    async def List(self, request: api.ListNamespacesRequest, context: ServicerContext):  # noqa: N802
        found = await call(self.store.list)
        return api.ListNamespacesResponse(namespaces=[_to_api(ns) for ns in found])

    @rpc
    async def Create(self, request: api.CreateNamespaceRequest, context: ServicerContext):  # noqa: N802
        ns = request.namespace
        caller = caller_namespace(context)
        created = await call(self.store.create, ns.name, dict(ns.labels))
        # As containerd 1.6 (the version we report): published in the caller's
        # namespace, where a subscriber filtering on its own namespace sees it.
        self.exchange.publish(
            caller or created.name,
            "/namespaces/create",
            events.NamespaceCreate(name=created.name, labels=created.labels),
        )
        return api.CreateNamespaceResponse(namespace=_to_api(created))

    @rpc
    async def Update(self, request: api.UpdateNamespaceRequest, context: ServicerContext):  # noqa: N802
        ns = Namespace(request.namespace.name, dict(request.namespace.labels))
        caller = caller_namespace(context)
        updated = await call(self.store.update, ns, field_paths(request.update_mask))
        self.exchange.publish(
            caller or updated.name,
            "/namespaces/update",
            events.NamespaceUpdate(name=updated.name, labels=updated.labels),
        )
        return api.UpdateNamespaceResponse(namespace=_to_api(updated))

    @rpc
    async def Delete(self, request: api.DeleteNamespaceRequest, context: ServicerContext):  # noqa: N802
        await call(self.store.delete, request.name)
        self.exchange.publish(
            request.name, "/namespaces/delete", events.NamespaceDelete(name=request.name)
        )
        return empty_pb2.Empty()

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Namespaces"], self)


@plugin.register(plugin.GRPC, "namespaces", requires=(plugin.METADATA, plugin.EVENT))
def init_namespaces(ic: plugin.InitContext) -> NamespacesService:
    return NamespacesService(ic.get(plugin.METADATA), ic.get(plugin.EVENT))
