"""Whether a process listens on a Unix socket (cheap to import: the shim's start uses it)."""

from __future__ import annotations

import os
import socket


def listening(
    address: str | bytes | os.PathLike[str], kind: socket.SocketKind = socket.SOCK_STREAM
) -> bool:
    """True when a connection to `address` (a path, or an abstract name) is accepted.

    A live server, not a stale socket file; `kind` is the server's socket type.
    """
    with socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC) as probe:
        try:
            probe.connect(address if isinstance(address, bytes) else os.fspath(address))
        except OSError:
            return False
        return True
