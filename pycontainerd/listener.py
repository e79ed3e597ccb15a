"""Accepting connections on a listening socket (ttrpc and gRPC), with Go-like retry on fd exhaustion."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

# Accept failures that pass (out of fds or memory, a peer gone before accept):
# back off and retry, as Go's Serve does for temporary errors.
_RETRYABLE_ACCEPT_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}
)
_ACCEPTS_PER_WAKEUP = 64


class Listener:
    """Accepts connections on one listening socket and hands them over at once.

    A reader callback rather than asyncio.start_unix_server or a sock_accept task:
    with those, a connection accepted just before close can be dropped without
    being closed, leaving its client waiting forever.
    """

    def __init__(self, sock: socket.socket, on_connection: Callable[[socket.socket], None]) -> None:
        self._sock = sock
        self._on_connection = on_connection
        self._loop = asyncio.get_running_loop()
        self._retry: asyncio.TimerHandle | None = None
        self._backoff = 0.0
        self._closed = False

    def start(self) -> None:
        self._retry = None
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._accept_ready)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        else:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def _accept_ready(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._accept_failed(exc)
                return
            self._backoff = 0.0
            conn.setblocking(False)
            self._on_connection(conn)

    def _accept_failed(self, exc: OSError) -> None:
        if exc.errno not in _RETRYABLE_ACCEPT_ERRORS:
            log.error("accept failed, no longer serving this socket: %s", exc)
            self.close()
            return
        # Like Go's Serve: back off (1 ms doubling to 1 s) and try again.
        self._backoff = min(max(self._backoff * 2, 0.001), 1.0)
        log.warning("accept failed, retrying in %.3fs: %s", self._backoff, exc)
        self._loop.remove_reader(self._sock.fileno())
        self._retry = self._loop.call_later(self._backoff, self.start)
