"""The version service: what ctr version and dockerd ask first."""

from __future__ import annotations

from google.protobuf import empty_pb2

from pycontainerd import CONTAINERD_COMPAT_VERSION, __version__, plugin
from pycontainerd.api.services.version.v1 import version_pb2
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.services.base import rpc


class VersionService:
    @rpc
    async def Version(  # noqa: N802 - gRPC method name
        self, request: empty_pb2.Empty, context: ServicerContext
    ) -> version_pb2.VersionResponse:
        # Clients gate features on the containerd version, so we report the
        # containerd API level we implement and name ourselves in the revision.
        return version_pb2.VersionResponse(
            version=CONTAINERD_COMPAT_VERSION, revision=f"pycontainerd-{__version__}"
        )

    def register(self, server: Server) -> None:
        server.add_service(version_pb2.DESCRIPTOR.services_by_name["Version"], self)


@plugin.register(plugin.GRPC, "version")
def init_version(ic: plugin.InitContext) -> VersionService:
    return VersionService()
