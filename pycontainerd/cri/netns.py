"""Pinned network namespaces for pods: a bind mount of a new namespace on a file.

``unshare --net=<file>`` makes the namespace and pins it (util-linux); removal
unmounts and deletes the file. The host side of whatever CNI sets up (bridges,
routes, firewall rules) lands in the daemon's own network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from pycontainerd import errdefs
from pycontainerd.mount import MNT_DETACH, unmount


async def create(path: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    with open(path, "x"):
        pass
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        f"--net={path}",
        "true",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        os.unlink(path)
        raise errdefs.Internal(f"creating network namespace {path}: {err.decode().strip()}")


def is_pinned(path: str) -> bool:
    return os.path.ismount(path)


def remove(path: str) -> None:
    """Unpin and delete; a namespace already gone is fine."""
    if not path:
        return
    with contextlib.suppress(errdefs.ContainerdError, OSError):
        unmount(path, flags=MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
