"""The gRPC health service (``grpc.health.v1.Health``), as containerd's healthcheck plugin.

Clients use it to learn that the daemon is back after a restart: dockerd polls
``Check`` before it subscribes to events again. The daemon answers SERVING for
the server as a whole (service name ""), like containerd, which registers no
per-service statuses.

The messages and the service are built from a descriptor at import time, so no
generated module is needed; they are wire-identical to grpc's health.proto.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from pycontainerd import errdefs, plugin
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.services.base import rpc

PACKAGE = "grpc.health.v1"
SERVICE = f"{PACKAGE}.Health"
SERVING = 1  # HealthCheckResponse.ServingStatus
SERVICE_UNKNOWN = 3
WHOLE_SERVER = ""


def _message_classes() -> tuple[type[Message], type[Message], ServiceDescriptor]:
    """HealthCheckRequest {string service = 1}, HealthCheckResponse {ServingStatus status = 1}, Health."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="pycontainerd/services/grpc_health_v1.proto", package=PACKAGE, syntax="proto3"
    )
    request = proto.message_type.add(name="HealthCheckRequest")
    request.field.add(name="service", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    response = proto.message_type.add(name="HealthCheckResponse")
    status = response.enum_type.add(name="ServingStatus")
    for number, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
        status.value.add(name=name, number=number)
    response.field.add(
        name="status",
        number=1,
        type=field.TYPE_ENUM,
        type_name=f".{PACKAGE}.HealthCheckResponse.ServingStatus",
        label=field.LABEL_OPTIONAL,
    )
    service = proto.service.add(name="Health")
    for name, streaming in (("Check", False), ("Watch", True)):
        service.method.add(
            name=name,
            input_type=f".{PACKAGE}.HealthCheckRequest",
            output_type=f".{PACKAGE}.HealthCheckResponse",
            server_streaming=streaming,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.HealthCheckRequest")),
        GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.HealthCheckResponse")),
        pool.FindServiceByName(SERVICE),
    )


HealthCheckRequest, HealthCheckResponse, HEALTH_SERVICE = _message_classes()


class HealthService:
    """Reports the whole server as serving; other service names are unknown."""

    @rpc
    async def Check(self, request, context: ServicerContext):  # noqa: N802
        if request.service != WHOLE_SERVER:
            raise errdefs.NotFound(
                f"no health status for service {request.service!r}; ask for '' (the server)"
            )
        return HealthCheckResponse(status=SERVING)

    @rpc
    async def Watch(self, request, context: ServicerContext) -> AsyncIterator[Message]:  # noqa: N802
        # The status never changes while the server runs: send it, then hold the stream.
        status = SERVING if request.service == WHOLE_SERVER else SERVICE_UNKNOWN
        yield HealthCheckResponse(status=status)
        await asyncio.Event().wait()

    def register(self, server: Server) -> None:
        server.add_service(HEALTH_SERVICE, self)


@plugin.register(plugin.GRPC, "healthcheck")
def init_healthcheck(ic: plugin.InitContext) -> HealthService:
    return HealthService()
