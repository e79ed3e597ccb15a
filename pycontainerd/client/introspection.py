"""The daemon's version and its plugins."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import empty_pb2

from pycontainerd.api.services.introspection.v1 import introspection_pb2 as api
from pycontainerd.api.services.introspection.v1 import introspection_pb2_grpc
from pycontainerd.api.services.version.v1 import version_pb2_grpc
from pycontainerd.client.models import Plugin, Version
from pycontainerd.client.rpc import Connection


def _platform_text(platform: object) -> str:
    os_name = getattr(platform, "os", "")
    arch = getattr(platform, "architecture", "")
    variant = getattr(platform, "variant", "")
    text = f"{os_name}/{arch}"
    return f"{text}/{variant}" if variant else text


def _plugin_from_api(plugin: api.Plugin) -> Plugin:
    error = ""
    if plugin.HasField("init_err"):
        error = plugin.init_err.message or f"code {plugin.init_err.code}"
    return Plugin(
        type=plugin.type,
        id=plugin.id,
        requires=tuple(plugin.requires),
        platforms=tuple(_platform_text(p) for p in plugin.platforms),
        exports=dict(plugin.exports),
        capabilities=tuple(plugin.capabilities),
        init_error=error,
    )


class IntrospectionService:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = introspection_pb2_grpc.IntrospectionStub(connection.channel)
        self._version = version_pb2_grpc.VersionStub(connection.channel)

    async def version(self) -> Version:
        reply = await self._conn.unary(self._version.Version, empty_pb2.Empty())
        return Version(reply.version, reply.revision)

    async def plugins(self, filters: Iterable[str] = ()) -> list[Plugin]:
        """Plugins matching any of ``filters`` (containerd filter syntax, e.g. ``type==...``)."""
        reply = await self._conn.unary(
            self._stub.Plugins, api.PluginsRequest(filters=list(filters))
        )
        return [_plugin_from_api(p) for p in reply.plugins]

    async def server_uuid(self) -> str:
        reply = await self._conn.unary(self._stub.Server, empty_pb2.Empty())
        return reply.uuid
