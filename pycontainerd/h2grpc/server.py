"""The server: services registered from their descriptors, served on Unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from google.protobuf.descriptor import ServiceDescriptor

from pycontainerd.errdefs import Code
from pycontainerd.h2grpc.connection import Connection
from pycontainerd.h2grpc.handlers import (
    MethodHandler,
    refusing,
    service_handlers,
    unknown_method_text,
)
from pycontainerd.h2grpc.headers import Request
from pycontainerd.listener import Listener

log = logging.getLogger(__name__)

_DEFAULT_MAX_MESSAGE = 4 << 20


class Server:
    """Serves registered services over our HTTP/2 on listening Unix sockets."""

    def __init__(
        self,
        *,
        max_receive_message_length: int = _DEFAULT_MAX_MESSAGE,
        max_send_message_length: int = _DEFAULT_MAX_MESSAGE,
    ) -> None:
        self.max_receive_message_length = max_receive_message_length
        self.max_send_message_length = max_send_message_length
        self._methods: dict[str, MethodHandler] = {}
        self._services: set[str] = set()
        self._listeners: list[Listener] = []
        self._connections: set[Connection] = set()
        self._opening: set[asyncio.Task[object]] = set()
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._stopping = False

    # -- registration ------------------------------------------------------------------

    def add_service(self, descriptor: ServiceDescriptor, servicer: object) -> None:
        """Serve ``descriptor``'s methods with ``servicer``'s methods of the same names."""
        if descriptor.full_name in self._services:
            raise ValueError(f"service {descriptor.full_name} is registered already")
        self._services.add(descriptor.full_name)
        self._methods.update(service_handlers(descriptor, servicer))

    def add_method(self, path: str, handler: MethodHandler) -> None:
        """Serve one method (``/package.Service/Method``) with a handler made by hand."""
        self._services.add(path.lstrip("/").rpartition("/")[0])
        self._methods[path] = handler

    @property
    def service_names(self) -> list[str]:
        return sorted(self._services)

    @property
    def active_calls(self) -> int:
        return sum(connection.active_calls for connection in self._connections)

    def handler_for(self, request: Request) -> MethodHandler:
        handler = self._methods.get(request.method)
        if handler is None:  # grpc-go's words, which clients and searches expect
            return refusing(Code.UNIMPLEMENTED, unknown_method_text(request.method, self._services))
        return handler

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
