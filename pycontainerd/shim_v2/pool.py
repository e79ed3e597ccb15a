"""Which shim serves a new container, and when a shim may go away.

A container goes to the shim of its group when its spec names one (the
``io.containerd.runc.v2.group`` annotation, as containerd's runc shim does);
otherwise to a *pool* shim of its namespace that serves fewer than
``PYCONTAINERD_SHIM_POOL_SIZE`` containers (default `DEFAULT_POOL_SIZE`; 1 gives
every container a shim of its own, as containerd does). A Python interpreter
costs megabytes that a Go shim does not; shared by a pool, they are paid once.
The price is a wider blast radius: a pool shim killed takes the stdio and exit
reporting of all its containers with it (the containers keep running).

Every shim socket has a *members* directory beside it, one entry per container
placed there: `start` adds the entry before the shim knows of the container,
the shim removes it at Delete (``delete`` does, after a dead shim). Choosing a
shim, starting a new one and retiring one all happen under one lock per socket
directory (`placement_lock`), so a container is only ever placed on a shim that
is running and stays: a new shim's socket is bound and its process started (or
the attempt undone) before any other container can see the socket, and a shim
retires only when it has no containers and no recent entry. An idle pool shim lingers
(``PYCONTAINERD_SHIM_POOL_IDLE`` seconds, default `DEFAULT_POOL_IDLE`) so that a
container started soon after joins a warm shim instead of forking a new one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

from pycontainerd import errdefs
from pycontainerd.shim_v2.contract import (
    DEFAULT_POOL_IDLE,
    DEFAULT_POOL_SIZE,
    POOL_IDLE_ENV,
    POOL_SIZE_ENV,
)
from pycontainerd.unix_socket import listening

#: Set by `start` in the environment of the shim it spawns: how long it lingers when idle.
LINGER_ENV = "PYCONTAINERD_SHIM_LINGER"
#: An entry whose container never reached its shim is ignored after this long.
ENTRY_TTL = 60.0
LOCK_FILE = ".placement.lock"
MEMBERS_SUFFIX = ".members"
PID_SUFFIX = ".pid"
SOCKET_MODE = 0o600
#: Pools of one namespace tried before giving up (far more than any host runs).
MAX_POOLS = 4096


def _env_number(
    env: Mapping[str, str], name: str, default: float, minimum: float, kind: type
) -> Any:
    try:
        return max(minimum, kind(env.get(name, default)))
    except ValueError as exc:
        what = "an integer" if kind is int else "a number"
        raise errdefs.InvalidArgument(f"{name} must be {what}: {exc}") from exc


def pool_size(env: Mapping[str, str]) -> int:
    """The pool size the environment asks for (at least 1)."""
    return _env_number(env, POOL_SIZE_ENV, DEFAULT_POOL_SIZE, 1, int)


def pool_idle(env: Mapping[str, str]) -> float:
    """How long an idle pool shim waits for a new container before it exits."""
    return _env_number(env, POOL_IDLE_ENV, DEFAULT_POOL_IDLE, 0.0, float)


def linger(env: Mapping[str, str]) -> float:
    """How long this shim lingers when idle, as `start` set it (0 when unset or garbled)."""
    try:
        return _env_number(env, LINGER_ENV, 0.0, 0.0, float)
    except errdefs.InvalidArgument:
        return 0.0


def shim_socket_path(daemon_address: str, namespace: str, key: str, directory: str) -> str:
    """Where a shim listens: a short name (sun_path holds 108 bytes) derived from `key`."""
    digest = hashlib.sha256(f"{daemon_address}/{namespace}/{key}".encode()).hexdigest()
    path = os.path.join(directory, digest[:32])
    if len(path.encode()) >= 108:
        raise errdefs.InvalidArgument(
            f"shim socket path {path} is too long; use a shorter shim socket directory"
        )
    return path


def pool_key(index: int) -> str:
    """The key of a namespace's pool shim number `index` (no group annotation is empty)."""
    return f"\0pool/{index}"


@contextlib.contextmanager
def placement_lock(directory: str) -> Iterator[int]:
    """Serialise placing containers, starting shims and retiring shims in one socket directory.

    Yields the locked descriptor: a process forked while holding the lock must
    close it (an flock lasts while any descriptor of its open file lives). Not
    reentrant: a holder that takes it again waits for itself.
    """
    os.makedirs(directory, mode=0o711, exist_ok=True)
    fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _members(path: str) -> str:
    return path + MEMBERS_SUFFIX


def join(path: str, container_id: str) -> None:
    """Record that `container_id` is placed on the shim at `path` (under the lock)."""
    if not container_id or os.sep in container_id or container_id.startswith("."):
        raise errdefs.InvalidArgument(f"container id {container_id!r} cannot name a shim member")
    directory = _members(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with open(os.path.join(directory, container_id), "wb"):
        pass


def leave(path: str, container_id: str) -> None:
    """Forget `container_id`'s place on the shim at `path` (its task is deleted)."""
    if not path or not container_id:
        return
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(os.path.join(_members(path), container_id))


def member_count(path: str) -> int:
    try:
        return len(os.listdir(_members(path)))
    except FileNotFoundError:
        return 0


def recent_members(path: str, now: float | None = None) -> list[str]:
    """Entries younger than `ENTRY_TTL`: containers on their way to the shim at `path`."""
    now = time.time() if now is None else now
    recent = []
    try:
        entries = list(os.scandir(_members(path)))
    except FileNotFoundError:
        return []
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            if now - entry.stat().st_mtime < ENTRY_TTL:
                recent.append(entry.name)
    return recent


def forget_shim(path: str) -> None:
    """Remove a shim's socket, pid file and members (the shim exits, or is found dead)."""
    for name in (path, path + PID_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    shutil.rmtree(_members(path), ignore_errors=True)


def bind_shim_socket(path: str) -> socket.socket | None:
    """A listening socket on `path`; None when a live shim already listens there.

    A dead shim's leftovers (socket, pid file, members) are cleared first. The
    socket is a file only its owner may connect to (0600 before it is bound, so
    whatever the umask), never an abstract name a network namespace shares.
    """
    for _attempt in range(2):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.fchmod(listener.fileno(), SOCKET_MODE)
            listener.bind(path)
            os.chmod(path, SOCKET_MODE)
            listener.listen(128)
            return listener
        except OSError as exc:
            listener.close()
            if exc.errno != errno.EADDRINUSE:
                raise errdefs.FailedPrecondition(
                    f"cannot create shim socket {path}: {exc}"
                ) from exc
        if listening(path):
            return None
        forget_shim(path)
    raise errdefs.Unavailable(f"shim socket {path} keeps being taken; retry")


def place_in_pool(
    daemon_address: str, namespace: str, directory: str, size: int
) -> tuple[str, socket.socket | None]:
    """The first pool shim with room, or a new one; (socket path, listener if new)."""
    for index in range(MAX_POOLS):
        path = shim_socket_path(daemon_address, namespace, pool_key(index), directory)
        listener = bind_shim_socket(path)
        if listener is not None or member_count(path) < size:
            return path, listener
    raise errdefs.ResourceExhausted(
        f"all {MAX_POOLS} shim pools of namespace {namespace!r} are full; raise {POOL_SIZE_ENV}"
    )


def retire_if_unused(path: str, serving: bool) -> bool:
    """Under the lock: True (and the socket is gone) when nobody uses or joins the shim."""
    with placement_lock(os.path.dirname(path)):
        if serving or recent_members(path):
            return False
        forget_shim(path)
        return True
