"""``start``: place a container on a shim (a new one, or its group's or pool's) and print its address.

containerd runs this with the bundle as working directory and reads everything
it prints as the address, so nothing else may reach stdout or stderr on success,
and the spawned shim must not inherit them (containerd waits for both pipes to
close). The socket is bound here, before the shim exists, so the address works
the moment it is printed; the shim inherits the listening descriptor. The shim is
forked by the socket directory's zygote (`zygote`), or by a new zygote that this
process forks when there is none; either way it runs in a new session, so it
outlives containerd and gets no signals meant for containerd's process group.

Which shim serves the container is `pool`'s business: the shim of its group
(annotation), a pool shim with room, or one of its own. When that shim already
listens, ``start`` only prints its address. A new shim is started under the
placement lock, so no other container is placed on it before it runs: when it
cannot be started (the daemon, finding no zygote, runs this command instead),
its socket is gone again before anyone else sees it. A container whose runtime options
name a ``shim_cgroup`` gets a shim of its own, put into that cgroup, as
containerd's runc shim does (a pool shim would drag other containers' shims in).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pycontainerd import errdefs
from pycontainerd.fsutil import atomic_write
from pycontainerd.shim_v2 import pool
from pycontainerd.shim_v2.contract import SOCKET_DIR_ENV, NoZygote
from pycontainerd.shim_v2.flags import ShimFlags

if TYPE_CHECKING:
    from pycontainerd.shim_v2.options import RuntimeOptions

GROUP_ANNOTATIONS = ("io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id")
DEFAULT_SOCKET_DIR = "/run/pycontainerd-shim"
ADDRESS_FILE = "address"
PID_FILE = "shim.pid"
UNIX_PREFIX = "unix://"
#: How long `start` waits for a new zygote to import the shim and fork it.
ZYGOTE_START_TIMEOUT = 25.0


def group_of(bundle: str) -> str:
    """The shim group a container's spec asks for by annotation ("" for none)."""
    try:
        with open(os.path.join(bundle, "config.json"), encoding="utf-8") as f:
            annotations = json.load(f).get("annotations") or {}
    except FileNotFoundError:
        return ""
    except ValueError as exc:
        raise errdefs.InvalidArgument(f"{bundle}/config.json is not valid JSON: {exc}") from exc
    for key in GROUP_ANNOTATIONS:
        if annotations.get(key):
            return str(annotations[key])
    return ""


def write_file_atomically(path: str, text: str) -> None:
    """Replace `path` whole. No fsync: these files describe running processes, which
    a crash of the machine ends too; a crash of a process leaves the page cache intact."""
    atomic_write(Path(path), text, durable=False)


@dataclass(frozen=True)
class Placement:
    """The shim a container goes to; `listener` is set when that shim is to be spawned."""

    path: str
    listener: socket.socket | None
    linger: float


def socket_dir_of(env: Mapping[str, str]) -> str:
    return env.get(SOCKET_DIR_ENV) or DEFAULT_SOCKET_DIR


def place(
    flags: ShimFlags, bundle: str, env: Mapping[str, str], own_shim: bool = False
) -> Placement:
    """Choose the container's shim (see `pool`), binding its socket if it is a new one.

    Call it under the placement lock of the socket directory, and hold the lock
    until a new shim runs (see `start`). `own_shim` asks for a shim of the
    container's own unless its group has one.
    """
    directory = socket_dir_of(env)
    group = group_of(bundle)
    size = pool.pool_size(env)
    if group or size == 1 or own_shim:
        key = group or flags.id
        path = pool.shim_socket_path(flags.address, flags.namespace, key, directory)
        return Placement(path, pool.bind_shim_socket(path), 0.0)
    path, listener = pool.place_in_pool(flags.address, flags.namespace, directory, size)
    return Placement(path, listener, pool.pool_idle(env))


def child_flags(flags: ShimFlags, socket: str) -> ShimFlags:
    """The long-lived shim's flags (its listening fd is added where it is known)."""
    return ShimFlags(
        namespace=flags.namespace,
        id=flags.id,
        address=flags.address,
        publish_binary=flags.publish_binary,
        debug=flags.debug,
        socket=socket,
    )


def spawn_shim(
    flags: ShimFlags,
    listener: socket.socket,
    bundle: str,
    env: Mapping[str, str] | None = None,
    fork_zygote: bool = True,
    lock_fd: int | None = None,
) -> int:
    """Start the long-lived shim on `listener`; return its pid.

    The zygote of the socket directory forks it when there is one; otherwise this
    process forks and the child becomes the zygote (see `zygote_server`), or, with
    `fork_zygote` False, NoZygote is raised. `lock_fd` is the placement lock this
    process holds, which a forked zygote must not keep.
    """
    from pycontainerd.shim_v2 import zygote

    socket_dir = os.path.dirname(listener.getsockname())
    argv = child_flags(flags, listener.getsockname()).to_argv()
    request = zygote.fork_request(argv, bundle, env, may_retire=fork_zygote)
    pid, why_not = zygote.ask_zygote(socket_dir, request, listener.fileno())
    if pid is None and not fork_zygote:
        raise NoZygote(f"the shim zygote of {socket_dir} started no shim: {why_not}")
    if pid is None:
        pid = _fork_zygote(request, listener.fileno(), socket_dir, lock_fd)
    # Never waited for: the shim is not our child (it is reparented to init or a subreaper).
    return pid


def _fork_zygote(
    request: dict[str, object], listen_fd: int, socket_dir: str, lock_fd: int | None
) -> int:
    """Fork the child that becomes the zygote and starts our shim; the shim's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    try:
        child = os.fork()
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise errdefs.Unavailable(f"cannot fork the shim: {exc}; retry") from exc
    if child == 0:
        os.close(read_end)
        if lock_fd is not None:
            os.close(lock_fd)  # the zygote outlives our hold on the placement lock
        from pycontainerd.shim_v2.zygote_server import become_zygote

        become_zygote(request, listen_fd, write_end, socket_dir)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        ready, _, _ = select.select([report], [], [], ZYGOTE_START_TIMEOUT)
        line = report.readline().decode(errors="replace").strip() if ready else ""
    kind, _, value = line.partition(" ")
    if kind == "pid" and value.isdigit():
        return int(value)
    raise errdefs.FailedPrecondition(
        f"the shim did not start: {value if kind == 'error' else 'no answer from the zygote'}"
    )


def start(
    flags: ShimFlags,
    bundle: str,
    env: Mapping[str, str] | None = None,
    fork_zygote: bool = True,
    options: RuntimeOptions | None = None,
) -> str:
    """Do the ``start`` action; returns the address to print.

    `env` is the shim's environment (this process's by default; its socket
    directory and pool variables are honoured). The daemon calls this directly
    for its own shim with `fork_zygote` False: it must not fork itself, so without
    a zygote it gets NoZygote and runs the ``start`` command instead. `options`
    are the task's runtime options (containerd sends them on stdin).
    """
    if not flags.id:
        raise errdefs.InvalidArgument("start needs -id")
    env = dict(os.environ if env is None else env)
    shim_cgroup = options.shim_cgroup if options is not None else ""
    # Held until a new shim runs: no other container sees its socket before that.
    with pool.placement_lock(socket_dir_of(env)) as lock_fd:
        placement = place(flags, bundle, env, own_shim=bool(shim_cgroup))
        address = UNIX_PREFIX + placement.path
        listener = placement.listener
        try:
            write_file_atomically(os.path.join(bundle, ADDRESS_FILE), address)
            pool.join(placement.path, flags.id)  # first: a bad id fails before a shim exists
            if listener is None:
                shim_pid = _read_shim_pid(placement.path)
            else:
                env[pool.LINGER_ENV] = str(placement.linger)
                pid = spawn_shim(flags, listener, bundle, env, fork_zygote, lock_fd)
                if shim_cgroup:
                    _join_or_kill(shim_cgroup, pid)
                shim_pid = str(pid)
                write_file_atomically(placement.path + pool.PID_SUFFIX, shim_pid)
        except BaseException:
            if listener is None:
                pool.leave(placement.path, flags.id)
            else:
                pool.forget_shim(placement.path)  # it served nobody: we held the lock throughout
            raise
        finally:
            if listener is not None:
                listener.close()
    if shim_pid:
        write_file_atomically(os.path.join(bundle, PID_FILE), shim_pid)
    return address


def _read_shim_pid(path: str) -> str:
    """The pid a running shim's starter recorded beside its socket ("" if none)."""
    try:
        with open(path + pool.PID_SUFFIX, "rb") as f:
            return f.read().decode()
    except FileNotFoundError:
        return ""


def _join_or_kill(cgroup: str, pid: int) -> None:
    """Put the new shim into `cgroup`; a shim that cannot join is killed, as containerd does."""
    from pycontainerd.shim_v2.shim_cgroup import join_cgroup

    try:
        join_cgroup(cgroup, pid)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        raise
