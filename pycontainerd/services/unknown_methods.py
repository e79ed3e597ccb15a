"""Answers for methods nobody serves, worded as grpc-go's servers word them.

grpc-python answers an unknown method with ``UNIMPLEMENTED: Method not found!``;
containerd (grpc-go) says ``unknown service X`` or ``unknown method M for
service X``, which is what clients and people searching for the error expect.
This handler goes last: it only sees calls no service handler took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import grpc


def unknown_method_text(method: str, services: Iterable[str]) -> str:
    """grpc-go's text for a call of `method` (``/package.Service/Method``)."""
    service, _, name = method.lstrip("/").rpartition("/")
    if not service:
        return f'malformed method name: "{method}"'
    if service in set(services):
        return f"unknown method {name} for service {service}"
    return f"unknown service {service}"


class UnknownMethods(grpc.GenericRpcHandler):
    """Takes every call; answers UNIMPLEMENTED with grpc-go's text."""

    def __init__(self) -> None:
        self.services: set[str] = set()

    def add_services(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """Learn the service names of handlers registered before this one."""
        for handler in handlers:
            if isinstance(handler, grpc.ServiceRpcHandler):
                self.services.add(handler.service_name())

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        text = unknown_method_text(handler_call_details.method, self.services)

        async def refuse(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[bytes]:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, text)
            yield b""  # pragma: no cover - abort raises; this makes a generator

        # Raw bytes in and out: any method's messages pass without decoding.
        return grpc.stream_stream_rpc_method_handler(refuse)
