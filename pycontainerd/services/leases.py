"""The leases service."""

from __future__ import annotations

from google.protobuf import empty_pb2

from pycontainerd import filters, plugin
from pycontainerd.api.services.leases.v1 import leases_pb2 as api
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.leases import LABEL_GC_EXPIRE, Lease, Resource
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.services.base import namespace_of, rpc, timestamp


def _to_api(lease: Lease) -> api.Lease:
    return api.Lease(id=lease.id, labels=lease.labels, created_at=timestamp(lease.created_at))


def _resource(resource: api.Resource) -> Resource:
    return Resource(resource.id, resource.type)


class LeasesService:
    def __init__(self, metadata: MetadataStore, gc: GCScheduler) -> None:
        self.store = metadata.leases
        self.gc = gc

    @rpc
    async def Create(self, request: api.CreateRequest, context: ServicerContext):  # noqa: N802
        lease = await call(
            self.store.create, namespace_of(context), request.id, dict(request.labels)
        )
        if LABEL_GC_EXPIRE in lease.labels:
            self.gc.retime()
        return api.CreateResponse(lease=_to_api(lease))

    @rpc
    async def Delete(self, request: api.DeleteRequest, context: ServicerContext):  # noqa: N802
        await call(self.store.delete, namespace_of(context), request.id)
        if request.sync:
            await self.gc.collect()
        else:
            self.gc.schedule()
        return empty_pb2.Empty()

    @rpc
    async def List(self, request: api.ListRequest, context: ServicerContext):  # noqa: N802
        found = await call(self.store.list, namespace_of(context))
        selected = await filters.select(
            request.filters, found, lambda lease: filters.adapt({"id": lease.id}, lease.labels)
        )
        return api.ListResponse(leases=[_to_api(lease) for lease in selected])

    @rpc
    async def AddResource(self, request: api.AddResourceRequest, context: ServicerContext):  # noqa: N802
        await call(
            self.store.add_resource, namespace_of(context), request.id, _resource(request.resource)
        )
        return empty_pb2.Empty()

    @rpc
    async def DeleteResource(  # noqa: N802
        self, request: api.DeleteResourceRequest, context: ServicerContext
    ):
        await call(
            self.store.delete_resource,
            namespace_of(context),
            request.id,
            _resource(request.resource),
        )
        return empty_pb2.Empty()

    @rpc
    async def ListResources(  # noqa: N802
        self, request: api.ListResourcesRequest, context: ServicerContext
    ):
        found = await call(self.store.list_resources, namespace_of(context), request.id)
        return api.ListResourcesResponse(
            resources=[api.Resource(id=r.id, type=r.type) for r in found]
        )

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Leases"], self)


@plugin.register(plugin.GRPC, "leases", requires=(plugin.METADATA, plugin.GC))
def init_leases(ic: plugin.InitContext) -> LeasesService:
    return LeasesService(ic.get(plugin.METADATA), ic.get(plugin.GC))
