"""The introspection service: the plugin list (`ctr plugins ls`), one plugin, the server's identity."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message

from pycontainerd import errdefs, filters, h2grpc, plugin
from pycontainerd.api.rpc import status_pb2
from pycontainerd.api.services.introspection.v1 import introspection_pb2 as api
from pycontainerd.api.types import platform_pb2
from pycontainerd.fsutil import atomic_write
from pycontainerd.h2grpc import ServicerContext
from pycontainerd.services.base import rpc


def _plugin_to_api(loaded: plugin.LoadedPlugin) -> api.Plugin:
    reg = loaded.registration
    message = api.Plugin(
        type=reg.type,
        id=reg.id,
        requires=list(reg.requires),
        exports=loaded.exports,
        capabilities=loaded.capabilities,
        platforms=[platform_pb2.Platform(**p) for p in loaded.platforms],
    )
    if loaded.error is not None:
        code = errdefs.code_of(loaded.error)
        message.init_err.CopyFrom(status_pb2.Status(code=int(code), message=str(loaded.error)))
    return message


def _plugin_adaptor(p: api.Plugin) -> filters.Adaptor:
    return filters.adapt(
        {
            "type": p.type,
            "id": p.id,
            "capabilities": list(p.capabilities),
            "platforms": [f"{x.os}/{x.architecture}" for x in p.platforms],
        }
    )


def _pid_namespace() -> int:
    """The inode of our PID namespace (what containerd 2 reports as pidns), 0 if unknown."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def load_server_uuid(path: Path) -> str:
    """The daemon's UUID, made once and kept under its root."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, value.encode())
        return value


class IntrospectionService:
    def __init__(self, plugins: plugin.PluginSet, server_uuid: str) -> None:
        self.plugins = plugins
        self.server_uuid = server_uuid

    @rpc
    async def Plugins(self, request: api.PluginsRequest, context: ServicerContext):  # noqa: N802
        listed = [_plugin_to_api(p) for p in self.plugins.loaded]
        selected: list[api.Plugin] = await filters.select(request.filters, listed, _plugin_adaptor)
        return api.PluginsResponse(plugins=selected)

    @rpc
    async def Server(self, request: empty_pb2.Empty, context: ServicerContext):  # noqa: N802
        return api.ServerResponse(uuid=self.server_uuid, pid=os.getpid(), pidns=_pid_namespace())

    @rpc
    async def PluginInfo(  # noqa: N802
        self, request: api.PluginInfoRequest, context: ServicerContext
    ):
        found = [
            p
            for p in self.plugins.loaded
            if (p.registration.type, p.registration.id) == (request.type, request.id)
        ]
        if not found:
            raise errdefs.NotFound(
                f"plugin {errdefs.echo(request.type)}.{errdefs.echo(request.id)} not found"
            )
        response = api.PluginInfoResponse(plugin=_plugin_to_api(found[0]))
        if request.HasField("options"):
            handler = getattr(found[0].instance, "plugin_info", None)
            if handler is None:
                raise errdefs.NotImplemented_(
                    f"plugin {request.type}.{request.id} gives no extra information "
                    f"for {errdefs.echo(request.options.type_url)} options"
                )
            extra: Message = await handler(request.options)
            # A bare type name, as containerd's typeurl writes it.
            response.extra.CopyFrom(
                any_pb2.Any(type_url=extra.DESCRIPTOR.full_name, value=extra.SerializeToString())
            )
        return response

    def register(self, server: h2grpc.Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Introspection"], self)


@plugin.register(plugin.GRPC, "introspection", requires=(plugin.ALL_TYPES,))
def init_introspection(ic: plugin.InitContext) -> IntrospectionService:
    return IntrospectionService(ic.registry, load_server_uuid(ic.root / "uuid"))
