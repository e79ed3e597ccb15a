"""The server: handlers registered as on a grpc.aio server, served on Unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable, Mapping

import grpc

from pycontainerd.h2grpc.connection import Connection
from pycontainerd.h2grpc.headers import Request
from pycontainerd.listener import Listener

log = logging.getLogger(__name__)

_LOOKUP_CACHE_LIMIT = 4096
_DEFAULT_MAX_MESSAGE = 4 << 20


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class Server:
    """Takes ``add_generic_rpc_handlers`` as grpc.aio.Server does; serves with our HTTP/2."""

    def __init__(
        self,
        *,
        max_receive_message_length: int = _DEFAULT_MAX_MESSAGE,
        max_send_message_length: int = _DEFAULT_MAX_MESSAGE,
    ) -> None:
        self.max_receive_message_length = max_receive_message_length
        self.max_send_message_length = max_send_message_length
        self._generic: list[grpc.GenericRpcHandler] = []
        self._methods: dict[str, grpc.RpcMethodHandler] = {}
        self._listeners: list[Listener] = []
        self._connections: set[Connection] = set()
        self._opening: set[asyncio.Task[object]] = set()
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._stopping = False

    # -- registration (what generated add_*Servicer_to_server calls) -----------------------

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        """The same handlers as the service's generic one, for a lookup without a search."""
        for name, handler in handlers.items():
            self._methods.setdefault(f"/{service}/{name}", handler)

    @property
    def active_calls(self) -> int:
        return sum(connection.active_calls for connection in self._connections)

    @property
    def generic_handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        return tuple(self._generic)

    def handler_for(self, request: Request) -> grpc.RpcMethodHandler:
        handler = self._methods.get(request.method)
        if handler is not None:
            return handler
        details = _CallDetails(request.method, request.metadata)
        for generic in self._generic:
            found = generic.service(details)
            if found is not None:
                if len(self._methods) < _LOOKUP_CACHE_LIMIT and isinstance(
                    generic, grpc.ServiceRpcHandler
                ):
                    self._methods[request.method] = found
                return found
        return grpc.unary_unary_rpc_method_handler(_method_not_found)

    # -- serving -----------------------------------------------------------------------------

    def serve_socket(self, sock: socket.socket) -> None:
        """Accept connections on a bound, listening socket (the server owns it from now)."""
        listener = Listener(sock, self._accepted)
        self._listeners.append(listener)
        listener.start()

    def _accepted(self, sock: socket.socket) -> None:
        if self._stopping:
            sock.close()
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._open(loop, sock))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        connection = Connection(self)
        self._connections.add(connection)
        self._all_closed.clear()
        try:
            await loop.connect_accepted_socket(lambda: connection, sock)
        except Exception:
            sock.close()
            self.connection_closed(connection)
            raise

    def connection_closed(self, connection: Connection) -> None:
        self._connections.discard(connection)
        if not self._connections:
            self._all_closed.set()

    async def stop(self, grace: float | None) -> None:
        """Stop listening, let running calls end for ``grace`` seconds, then close the rest."""
        self._stopping = True
        for listener in self._listeners:
            listener.close()
        for task in list(self._opening):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        for connection in list(self._connections):
            connection.go_away()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_closed.wait(), grace or 0)
        for connection in list(self._connections):
            connection.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_closed.wait(), 1)


async def _method_not_found(request: bytes, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
