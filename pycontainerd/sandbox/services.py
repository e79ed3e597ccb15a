"""The sandbox Store and Controller gRPC services (containerd 2), and their plugins.

Store is a thin adapter over :class:`~pycontainerd.sandbox.store.SandboxStore`.
Controller needs a sandboxer (containerd's podsandbox or shim controllers);
pycontainerd has none yet, so each of its methods answers Unimplemented with
a message naming the call.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2

from pycontainerd import errdefs, filters, plugin
from pycontainerd.api.services.sandbox.v1 import sandbox_pb2 as api
from pycontainerd.api.types import sandbox_pb2 as types
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.containers import AnyValue
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.sandbox.store import Sandbox, SandboxStore
from pycontainerd.services.base import namespace_of, rpc, timestamp

SANDBOX_STORE_PLUGIN = "io.containerd.sandbox.store.v1"


def _any_from_api(value: any_pb2.Any, present: bool) -> AnyValue | None:
    return AnyValue(value.type_url, value.value) if present else None


def _any_to_api(value: AnyValue | None) -> any_pb2.Any | None:
    return None if value is None else any_pb2.Any(type_url=value.type_url, value=value.value)


def sandbox_from_api(message: types.Sandbox) -> Sandbox:
    runtime = message.runtime
    return Sandbox(
        id=message.sandbox_id,
        runtime_name=runtime.name,
        runtime_options=_any_from_api(runtime.options, runtime.HasField("options")),
        spec=_any_from_api(message.spec, message.HasField("spec")),
        labels=dict(message.labels),
        extensions={k: AnyValue(v.type_url, v.value) for k, v in message.extensions.items()},
        sandboxer=message.sandboxer,
    )


def sandbox_to_api(sandbox: Sandbox) -> types.Sandbox:
    return types.Sandbox(
        sandbox_id=sandbox.id,
        runtime=types.Sandbox.Runtime(
            name=sandbox.runtime_name, options=_any_to_api(sandbox.runtime_options)
        ),
        spec=_any_to_api(sandbox.spec),
        labels=sandbox.labels,
        created_at=timestamp(sandbox.created_at),
        updated_at=timestamp(sandbox.updated_at),
        extensions={
            k: any_pb2.Any(type_url=v.type_url, value=v.value)
            for k, v in sandbox.extensions.items()
        },
        sandboxer=sandbox.sandboxer,
    )


def _adaptor(sandbox: Sandbox) -> filters.Adaptor:
    return filters.adapt(
        {"id": sandbox.id, "runtime.name": sandbox.runtime_name, "sandboxer": sandbox.sandboxer},
        sandbox.labels,
    )


class SandboxStoreService:
    def __init__(self, store: SandboxStore) -> None:
        self.store = store

    @rpc
    async def Create(self, request: api.StoreCreateRequest, context: ServicerContext):  # noqa: N802
        created = await call(
            self.store.create, namespace_of(context), sandbox_from_api(request.sandbox)
        )
        return api.StoreCreateResponse(sandbox=sandbox_to_api(created))

    @rpc
    async def Update(self, request: api.StoreUpdateRequest, context: ServicerContext):  # noqa: N802
        updated = await call(
            self.store.update,
            namespace_of(context),
            sandbox_from_api(request.sandbox),
            list(request.fields),
        )
        return api.StoreUpdateResponse(sandbox=sandbox_to_api(updated))

    @rpc
    async def Delete(self, request: api.StoreDeleteRequest, context: ServicerContext):  # noqa: N802
        await call(self.store.delete, namespace_of(context), request.sandbox_id)
        return api.StoreDeleteResponse()

    @rpc
    async def List(self, request: api.StoreListRequest, context: ServicerContext):  # noqa: N802
        found = await call(self.store.list, namespace_of(context))
        selected = await filters.select(request.filters, found, _adaptor)
        return api.StoreListResponse(list=[sandbox_to_api(s) for s in selected])

    @rpc
    async def Get(self, request: api.StoreGetRequest, context: ServicerContext):  # noqa: N802
        found = await call(self.store.get, namespace_of(context), request.sandbox_id)
        return api.StoreGetResponse(sandbox=sandbox_to_api(found))

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Store"], self)


def _no_sandboxer(method: str) -> Any:
    @rpc
    async def unimplemented(self: Any, request: Any, context: ServicerContext) -> Any:
        raise errdefs.NotImplemented_(
            f"sandbox Controller.{method}: pycontainerd has no sandbox controller "
            f"(sandboxer {getattr(request, 'sandboxer', '') or 'default'!r} is not available)"
        )

    unimplemented.__name__ = unimplemented.__qualname__ = method
    return unimplemented


class SandboxControllerService:
    Create = _no_sandboxer("Create")
    Start = _no_sandboxer("Start")
    Platform = _no_sandboxer("Platform")
    Stop = _no_sandboxer("Stop")
    Wait = _no_sandboxer("Wait")
    Status = _no_sandboxer("Status")
    Shutdown = _no_sandboxer("Shutdown")
    Metrics = _no_sandboxer("Metrics")
    Update = _no_sandboxer("Update")

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Controller"], self)


@plugin.register(SANDBOX_STORE_PLUGIN, "local", requires=(plugin.METADATA,))
def init_sandbox_store(ic: plugin.InitContext) -> SandboxStore:
    metadata: MetadataStore = ic.get(plugin.METADATA)
    return SandboxStore(metadata.db, metadata.namespaces)


@plugin.register(plugin.GRPC, "sandboxes", requires=(SANDBOX_STORE_PLUGIN,))
def init_sandbox_store_service(ic: plugin.InitContext) -> SandboxStoreService:
    return SandboxStoreService(ic.get(SANDBOX_STORE_PLUGIN))


@plugin.register(plugin.GRPC, "sandbox-controllers")
def init_sandbox_controller_service(ic: plugin.InitContext) -> SandboxControllerService:
    return SandboxControllerService()
