"""The containers service: container records over gRPC, with their events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf import any_pb2, empty_pb2

from pycontainerd import errdefs, filters, plugin
from pycontainerd.api.events import container_pb2 as events
from pycontainerd.api.services.containers.v1 import containers_pb2 as api
from pycontainerd.events.exchange import Exchange
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.containers import AnyValue, Container, RuntimeInfo, container_adaptor
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.services.base import field_paths, namespace_of, rpc
from pycontainerd.timestamps import set_datetime


def any_to_api(value: AnyValue) -> any_pb2.Any:
    return any_pb2.Any(type_url=value.type_url, value=value.value)


def optional_any_to_api(value: AnyValue | None) -> any_pb2.Any | None:
    """None leaves the message field unset, as containerd leaves a nil Any."""
    return None if value is None else any_to_api(value)


def any_from_api(value: any_pb2.Any) -> AnyValue:
    return AnyValue(value.type_url, value.value)


def _set_any(field: any_pb2.Any, value: AnyValue) -> None:
    field.type_url = value.type_url
    field.value = value.value
    field.SetInParent()


def container_to_api(container: Container) -> api.Container:
    message = api.Container()
    fill_container(message, container)
    return message


def fill_container(message: api.Container, container: Container) -> None:
    """Fill an empty API record in place (a list's element, a stream message's field):
    building submessages and copying them in costs twice as much."""
    message.id = container.id
    message.labels.update(container.labels)
    message.image = container.image
    message.snapshotter = container.snapshotter
    message.snapshot_key = container.snapshot_key
    runtime = message.runtime
    runtime.name = container.runtime.name
    runtime.SetInParent()
    if container.runtime.options is not None:
        _set_any(runtime.options, container.runtime.options)
    if container.spec is not None:
        _set_any(message.spec, container.spec)
    for key, ext in container.extensions.items():
        _set_any(message.extensions[key], ext)
    set_datetime(message.created_at, container.created_at)
    set_datetime(message.updated_at, container.updated_at)


def container_from_api(message: api.Container) -> Container:
    """A store record from a request; unset Any fields stay None (not empty)."""
    runtime = message.runtime
    options = any_from_api(runtime.options) if runtime.HasField("options") else None
    return Container(
        id=message.id,
        runtime=RuntimeInfo(runtime.name, options),
        spec=any_from_api(message.spec) if message.HasField("spec") else None,
        image=message.image,
        snapshotter=message.snapshotter,
        snapshot_key=message.snapshot_key,
        labels=dict(message.labels),
        extensions={key: any_from_api(ext) for key, ext in message.extensions.items()},
    )


def _refuse_sandbox(container: api.Container) -> None:
    """containerd 2's Container.sandbox: not recorded here, so refused rather than dropped."""
    if container.sandbox:
        raise errdefs.NotImplemented_(
            f"container {container.id!r}: placing containers in a sandbox "
            f"({container.sandbox!r}) is not supported by pycontainerd"
        )


class ContainersService:
    def __init__(self, metadata: MetadataStore, exchange: Exchange, gc: GCScheduler) -> None:
        self.store = metadata.containers
        self.exchange = exchange
        self.gc = gc

    @rpc
    async def Get(self, request: api.GetContainerRequest, context: ServicerContext):  # noqa: N802
        found = await call(self.store.get, namespace_of(context), request.id)
        return api.GetContainerResponse(container=container_to_api(found))

    async def _list(
        self, request: api.ListContainersRequest, context: ServicerContext
    ) -> list[Container]:
        found = await call(self.store.list, namespace_of(context))
        # Filters parse and match off the loop (a costly filter must not stall it).
        return await filters.select(request.filters, found, container_adaptor)

    @rpc
    async def List(self, request: api.ListContainersRequest, context: ServicerContext):  # noqa: N802
        response = api.ListContainersResponse()
        for found in await self._list(request, context):
            fill_container(response.containers.add(), found)
        return response

    @rpc
    async def ListStream(  # noqa: N802
        self, request: api.ListContainersRequest, context: ServicerContext
    ) -> AsyncIterator[api.ListContainerMessage]:
        for found in await self._list(request, context):
            message = api.ListContainerMessage()
            fill_container(message.container, found)
            yield message

    @rpc
    async def Create(self, request: api.CreateContainerRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        _refuse_sandbox(request.container)
        created = await call(self.store.create, namespace, container_from_api(request.container))
        self.exchange.publish(
            namespace,
            "/containers/create",
            events.ContainerCreate(
                id=created.id,
                image=created.image,
                runtime=events.ContainerCreate.Runtime(
                    name=created.runtime.name,
                    options=optional_any_to_api(created.runtime.options),
                ),
            ),
        )
        return api.CreateContainerResponse(container=container_to_api(created))

    @rpc
    async def Update(self, request: api.UpdateContainerRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        _refuse_sandbox(request.container)
        updated = await call(
            self.store.update,
            namespace,
            container_from_api(request.container),
            field_paths(request.update_mask),
        )
        self.exchange.publish(
            namespace,
            "/containers/update",
            events.ContainerUpdate(
                id=updated.id,
                image=updated.image,
                labels=updated.labels,
                snapshot_key=updated.snapshot_key,
            ),
        )
        return api.UpdateContainerResponse(container=container_to_api(updated))

    @rpc
    async def Delete(self, request: api.DeleteContainerRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        await call(self.store.delete, namespace, request.id)
        self.exchange.publish(
            namespace, "/containers/delete", events.ContainerDelete(id=request.id)
        )
        # What the container held (its snapshot, gc.ref labels) may now be garbage.
        self.gc.schedule()
        return empty_pb2.Empty()

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Containers"], self)


@plugin.register(plugin.GRPC, "containers", requires=(plugin.METADATA, plugin.EVENT, plugin.GC))
def init_containers(ic: plugin.InitContext) -> ContainersService:
    return ContainersService(ic.get(plugin.METADATA), ic.get(plugin.EVENT), ic.get(plugin.GC))
