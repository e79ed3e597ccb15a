"""asyncio ttrpc server, wire-compatible with containerd/ttrpc 1.1 (server.go).

Each connection has one reader loop; every request runs as its own task, so many
calls proceed at once on one connection and answers go out in completion order.
When the peer goes away, its in-flight handlers are cancelled (Go cancels their
context). ``shutdown`` stops listening and closes each connection once it has no
call in flight; ``close`` stops everything at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import struct
from collections.abc import Callable, Mapping

from pycontainerd.errdefs import AlreadyExists, Code, FailedPrecondition
from pycontainerd.ttrpc.address import is_abstract, socket_path
from pycontainerd.ttrpc.dispatch import Method, Reply, ServiceTable
from pycontainerd.ttrpc.framing import (
    MESSAGE_LENGTH_MAX,
    Frame,
    MessageType,
    encode_frame,
    oversized_message,
    read_frame,
)
from pycontainerd.ttrpc.protocol import (
    DecodeError,
    ReceivedRequest,
    decode_request,
    encode_response,
)

log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# Accept failures that pass (out of fds or memory, a peer gone before accept):
# back off and retry, as Go's Serve does for temporary errors.
_RETRYABLE_ACCEPT_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED, errno.EINTR}
)


class TtrpcServer:
    """Serves registered services on any number of Unix listening sockets.

    ``require_same_user`` refuses connections whose peer (SO_PEERCRED) has another
    uid or gid than this process, like Go's ``UnixSocketRequireSameUser`` that the
    shims use.
    """

    def __init__(self, *, require_same_user: bool = False) -> None:
        self._services = ServiceTable()
        self._require_same_user = require_same_user
        self._accept_loops: list[asyncio.Task[None]] = []
        self._owned_paths: list[tuple[str, int]] = []
        self._connections: set[_Connection] = set()
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
        self._start_accepting(sock)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, then close each connection as soon as it is idle.

        Calls that are running finish and are answered. After ``timeout`` seconds
        the remaining connections are closed and their calls cancelled.
        """
        await self._stop_listening()
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
        await self._stop_listening()
        await self._close_connections()
        self._closed.set()

    async def wait_closed(self) -> None:
        """Block until ``shutdown`` or ``close`` has completed."""
        await self._closed.wait()

    def _check_open(self) -> None:
        if self._stopping:
            raise FailedPrecondition("ttrpc server is shut down; create a new one to serve again")

    def _start_accepting(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        self._accept_loops.append(loop.create_task(self._accept_loop(listener)))

    async def _accept_loop(self, listener: socket.socket) -> None:
        # Our own loop rather than asyncio.start_unix_server: its close() can strand
        # a connection accepted just before (never handed over, never closed).
        loop = asyncio.get_running_loop()
        backoff = 0.0
        try:
            while True:
                try:
                    conn, _ = await loop.sock_accept(listener)
                except OSError as exc:
                    if exc.errno not in _RETRYABLE_ACCEPT_ERRORS:
                        log.error("ttrpc: accept failed, no longer serving: %s", exc)
                        return
                    backoff = min(max(backoff * 2, 0.001), 1.0)
                    log.warning("ttrpc: accept failed, retrying in %.3fs: %s", backoff, exc)
                    await asyncio.sleep(backoff)
                    continue
                backoff = 0.0
                self._adopt(conn)
        finally:
            listener.close()

    def _adopt(self, conn: socket.socket) -> None:
        if self._stopping or not self._peer_allowed(conn):
            conn.close()
            return
        connection = _Connection(self._services, conn, self._on_change)
        self._connections.add(connection)
        connection.start()

    async def _stop_listening(self) -> None:
        self._stopping = True
        loops, self._accept_loops = self._accept_loops, []
        for accept_loop in loops:
            accept_loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
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

    def _on_change(self, connection: _Connection) -> None:
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


class _Connection:
    """One accepted connection: reads requests, runs them, writes answers."""

    def __init__(
        self,
        services: ServiceTable,
        conn: socket.socket,
        on_change: Callable[[_Connection], None],
    ) -> None:
        self._services = services
        self._socket = conn
        self._on_change = on_change
        self._writer: asyncio.StreamWriter | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.done = False

    @property
    def idle(self) -> bool:
        return not self._calls

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        """Close the transport; the reader loop then ends and cancels running calls."""
        self._closing = True
        if self._writer is not None:
            self._writer.close()

    async def finished(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(sock=self._socket)
            while not self._closing:
                try:
                    frame = await read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                await self._on_frame(frame)
        except Exception:  # a bug here must not leave the peer hanging forever
            log.exception("ttrpc: connection failed")
        finally:
            await self._teardown()

    async def _on_frame(self, frame: Frame) -> None:
        if frame.oversized:
            await self._send(
                frame.stream_id, Reply(Code.RESOURCE_EXHAUSTED, oversized_message(frame.length))
            )
            return
        if frame.type != MessageType.REQUEST:
            return  # Go ignores anything but requests
        try:
            request = decode_request(frame.payload)
        except DecodeError as exc:
            await self._send(
                frame.stream_id, Reply(Code.INVALID_ARGUMENT, f"unmarshal request error: {exc}")
            )
            return
        if frame.stream_id % 2 != 1:
            await self._send(
                frame.stream_id,
                Reply(Code.INVALID_ARGUMENT, "StreamID must be odd for client initiated streams"),
            )
            return
        call = asyncio.get_running_loop().create_task(self._serve(frame.stream_id, request))
        self._calls.add(call)
        call.add_done_callback(self._call_done)

    async def _serve(self, stream_id: int, request: ReceivedRequest) -> None:
        reply = await self._services.call(request)
        await self._send(stream_id, reply)

    def _call_done(self, call: asyncio.Task[None]) -> None:
        self._calls.discard(call)
        if not call.cancelled() and call.exception() is not None:
            log.error("ttrpc: failed to answer a call", exc_info=call.exception())
        if not self._calls:
            self._on_change(self)

    async def _send(self, stream_id: int, reply: Reply) -> None:
        body = encode_response(reply.code, reply.message, reply.payload)
        if len(body) > MESSAGE_LENGTH_MAX:
            body = encode_response(Code.RESOURCE_EXHAUSTED, oversized_message(len(body)))
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        writer.write(encode_frame(stream_id, MessageType.RESPONSE, body))
        try:
            await writer.drain()
        except ConnectionError:
            self.close()

    async def _teardown(self) -> None:
        calls = list(self._calls)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        if self._writer is None:
            self._socket.close()
        else:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self.done = True
        self._on_change(self)


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
