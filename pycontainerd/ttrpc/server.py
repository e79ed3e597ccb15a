"""asyncio ttrpc server, wire-compatible with containerd/ttrpc 1.1 (server.go).

``shutdown`` stops listening and closes each connection once it has no call in
flight (Go's Shutdown); ``close`` stops everything at once, cancelling running
handlers (Go's Close). Connection handling lives in ``connection.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
from collections.abc import Mapping

from pycontainerd.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument
from pycontainerd.listener import Listener
from pycontainerd.ttrpc.address import is_abstract, socket_path
from pycontainerd.ttrpc.connection import ServerConnection
from pycontainerd.ttrpc.dispatch import Method, ServiceTable

log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class TtrpcServer:
    """Serves registered services on any number of Unix listening sockets.

    ``require_same_user`` refuses connections whose peer (SO_PEERCRED) has another
    uid or gid than this process, like Go's ``UnixSocketRequireSameUser`` that the
    shims use.
    """

    def __init__(self, *, require_same_user: bool = False) -> None:
        self._services = ServiceTable()
        self._require_same_user = require_same_user
        self._listeners: list[Listener] = []
        self._owned_paths: list[tuple[str, int]] = []
        self._connections: set[ServerConnection] = set()
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._stopping = False

    def register(self, service_name: str, methods: Mapping[str, Method]) -> None:
        """Add a service; raises AlreadyExists if the name is taken."""
        self._services.register(service_name, methods)

    @property
    def service_names(self) -> list[str]:
        return self._services.service_names

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def serve_unix(self, address: str, *, backlog: int = 128) -> None:
        """Listen on a Unix socket path (``unix://`` prefix and ``@abstract`` accepted).

        Returns once the socket accepts connections. A leftover socket file with
        nobody listening is replaced; a live one raises AlreadyExists. The file is
        removed again by ``shutdown``/``close``.
        """
        self._check_open()
        path = socket_path(address)
        if not is_abstract(path):
            await _remove_stale_socket(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(backlog)
        except OSError:
            listener.close()
            raise
        if not is_abstract(path):
            self._owned_paths.append((path, os.stat(path).st_ino))
        self._start_accepting(listener)

    async def serve_on_socket(self, sock: socket.socket) -> None:
        """Serve on an already bound and listening Unix socket (e.g. inherited fd 3).

        Returns once accepting; the socket is closed by ``shutdown``/``close``.
        """
        self._check_open()
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise InvalidArgument(
                f"socket {sock.fileno()} is not listening; call listen() on it first"
            )
        self._start_accepting(sock)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, then close each connection as soon as it is idle.

        Calls that are running finish and are answered. After ``timeout`` seconds
        the remaining connections are closed and their calls cancelled.
        """
        self._stop_listening()
        try:
            async with asyncio.timeout(timeout):
                await self._close_when_idle()
        except TimeoutError:
            log.warning(
                "ttrpc: %d connection(s) still busy at shutdown; closing them",
                len(self._connections),
            )
            await self._close_connections()
        self._closed.set()

    async def close(self) -> None:
        """Stop accepting and close every connection now, cancelling running calls."""
        self._stop_listening()
        await self._close_connections()
        self._closed.set()

    async def wait_closed(self) -> None:
        """Block until ``shutdown`` or ``close`` has completed."""
        await self._closed.wait()

    def _check_open(self) -> None:
        if self._stopping:
            raise FailedPrecondition("ttrpc server is shut down; create a new one to serve again")

    def _start_accepting(self, sock: socket.socket) -> None:
        listener = Listener(sock, self._adopt)
        listener.start()
        self._listeners.append(listener)

    def _adopt(self, conn: socket.socket) -> None:
        if self._stopping or not self._peer_allowed(conn):
            conn.close()
            return
        connection = ServerConnection(self._services, conn, self._on_change)
        self._connections.add(connection)
        connection.start()

    def _stop_listening(self) -> None:
        self._stopping = True
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for path, inode in self._owned_paths:
            _unlink_if_same(path, inode)
        self._owned_paths.clear()

    async def _close_when_idle(self) -> None:
        while self._connections:
            self._changed.clear()
            for connection in list(self._connections):
                if connection.idle:
                    connection.close()
            await self._changed.wait()

    async def _close_connections(self) -> None:
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        await asyncio.gather(*(c.finished() for c in connections), return_exceptions=True)

    def _on_change(self, connection: ServerConnection) -> None:
        if connection.done:
            self._connections.discard(connection)
        self._changed.set()

    def _peer_allowed(self, conn: socket.socket) -> bool:
        if not self._require_same_user:
            return True
        try:
            _pid, uid, gid = _PEERCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
        except OSError as exc:
            log.warning("ttrpc: refusing connection, cannot read peer credentials: %s", exc)
            return False
        if (uid, gid) != (os.geteuid(), os.getegid()):
            log.warning("ttrpc: refusing connection from uid %d gid %d", uid, gid)
            return False
        return True


async def _remove_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to replace a live one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AlreadyExists(f"{path} exists and is not a socket; remove it or pick another path")
    try:
        _reader, writer = await asyncio.open_unix_connection(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    writer.close()
    raise AlreadyExists(
        f"{path}: a server is already listening there; stop it or pick another path"
    )


def _unlink_if_same(path: str, inode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == inode:
            os.unlink(path)
