"""A network namespace of a test's own, and a loopback relay into it.

Networking tests (CNI bridges, port mappings) run their daemon and clients
inside a namespace made here, so the host's network namespace never gets a
bridge, address, route or firewall rule. :meth:`NetNamespace.relay` makes a
loopback port of the host (the test registry) reachable at the same address
inside: a listening socket created in the namespace, whose connections the
test process forwards to the host's loopback. No packet leaves loopback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Sequence

CLONE_NEWNET = 0x40000000
_CHUNK = 64 * 1024


def _enter_netns(path: str) -> None:
    """setns(2) for the calling thread only (Python 3.11's os has no setns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


class NetNamespace:
    """``ip netns add`` with loopback up; removed (with its relays) on exit, always."""

    def __init__(self, prefix: str = "pcdt") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.path = f"/run/netns/{self.name}"
        self._listeners: list[socket.socket] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> NetNamespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            subprocess.run(
                ["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the namespace.

        nsenter, not ``ip netns exec``: that one also gives the program a mount
        namespace with a fresh /sys, without the cgroup mounts runc needs.
        """
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.argv(argv), capture_output=True, timeout=timeout)

    def relay(self, port: int, host: str = "127.0.0.1") -> None:
        """Forward `host:port` inside the namespace to the same address of the host."""
        created: list[socket.socket | BaseException] = []

        def listen_inside() -> None:  # a thread of its own: setns changes only this one
            try:
                _enter_netns(self.path)
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((host, port))
                listener.listen(64)
                created.append(listener)
            except BaseException as exc:  # handed to the caller's thread
                created.append(exc)

        thread = threading.Thread(target=listen_inside)
        thread.start()
        thread.join()
        result = created[0]
        if isinstance(result, BaseException):
            raise result
        self._listeners.append(result)
        threading.Thread(target=self._accept, args=(result, host, port), daemon=True).start()

    def _accept(self, listener: socket.socket, host: str, port: int) -> None:
        while True:
            try:
                inside, _ = listener.accept()
            except OSError:  # closed by close()
                return
            try:
                outside = socket.create_connection((host, port), timeout=10)
            except OSError:
                inside.close()
                continue
            outside.settimeout(None)
            with self._lock:
                self._open.update((inside, outside))
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept loop
            with contextlib.suppress(OSError):
                listener.close()
        self._listeners.clear()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()
            self._open.clear()
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
