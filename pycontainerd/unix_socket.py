"""Whether a process listens on a Unix socket path (cheap to import: the shim's start uses it)."""

from __future__ import annotations

import os
import socket


def listening(path: str | os.PathLike[str]) -> bool:
    """True when a connection to `path` is accepted (a live server, not a stale file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
        return True
