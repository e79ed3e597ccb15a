"""Glue between generated ``*_pb2`` service descriptors and the ttrpc client/server.

``register_service`` serves an object's ``MethodName(request, ctx)`` coroutines
under the descriptor's service; ``ServiceStub`` gives ``await stub.MethodName(req)``
on a client. Only unary methods exist in ttrpc 1.1.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.ttrpc.client import TtrpcClient
from pycontainerd.ttrpc.dispatch import Method
from pycontainerd.ttrpc.protocol import MetadataArg
from pycontainerd.ttrpc.server import TtrpcServer


def message_class(descriptor: Descriptor) -> type[Message]:
    """The generated class for a message descriptor (its ``*_pb2`` must be imported)."""
    return GetMessageClass(descriptor)


def register_service(server: TtrpcServer, service: ServiceDescriptor, impl: object) -> None:
    """Register ``impl.<MethodName>`` for each method of ``service`` that ``impl`` has.

    Methods ``impl`` lacks stay unregistered, so callers get UNIMPLEMENTED for them.
    """
    methods: dict[str, Method] = {}
    for method in service.methods:
        handler = getattr(impl, method.name, None)
        if handler is None:
            continue
        if not callable(handler):
            raise InvalidArgument(
                f"{type(impl).__name__}.{method.name} must be an async method (request, ctx)"
            )
        methods[method.name] = Method(message_class(method.input_type), handler)
    server.register(service.full_name, methods)


class UnaryMethod:
    """One remote method bound to a client: ``await method(request)``."""

    def __init__(self, client: TtrpcClient, service: str, method: MethodDescriptor) -> None:
        self.client = client
        self.service = service
        self.name = method.name
        self.request_type = message_class(method.input_type)
        self.response_type = message_class(method.output_type)

    async def __call__(
        self,
        request: Message,
        *,
        timeout: float | None = None,
        metadata: MetadataArg | None = None,
    ) -> Any:
        return await self.client.call(
            self.service,
            self.name,
            request,
            self.response_type,
            timeout=timeout,
            metadata=metadata,
        )


class ServiceStub:
    """Client-side view of a service: one ``UnaryMethod`` attribute per method.

    ``ServiceStub(client, shim_pb2.DESCRIPTOR.services_by_name["Task"])`` lets you
    ``await stub.Connect(shim_pb2.ConnectRequest(id=...))``.
    """

    def __init__(self, client: TtrpcClient, service: ServiceDescriptor) -> None:
        self.service_name = service.full_name
        self.methods: dict[str, UnaryMethod] = {}
        for method in service.methods:
            bound = UnaryMethod(client, service.full_name, method)
            self.methods[method.name] = bound
            setattr(self, method.name, bound)

    def __getattr__(self, name: str) -> UnaryMethod:
        # Only reached for names that are not methods of the service.
        raise AttributeError(f"service {self.service_name} has no method {name}")
