"""The zygote process: import the shim once, then fork a shim per request.

It is born from a `start` that found no zygote: `start` forks, and the child
(`become_zygote`) claims the zygote's socket name, imports the long-lived shim's
code, forks the shim `start` asked for, reports its pid, and then serves further
requests. If the name is taken it only forks that one shim and exits; if the
kernel cannot give a forked shim its proper command line, it execs the shim as a
fresh interpreter, exactly as before the zygote existed.

Who may ask: only a caller of the zygote's user in all of its namespaces and
with its credentials (`zygote.peer_fits`, and the capability lines of
/proc/PID/status); anyone else is refused and changes nothing, whatever it asks.

Staleness: the zygote serves only callers that run the same interpreter and
package, in the same cgroup and limits; it retires (removing its socket first,
so the caller's fallback can take the name) when any of that differs for a
`start` command (the daemon, asking directly, is only refused: see
`zygote.fork_request`), when a module it imported changed on disk, when its
socket directory is removed or renamed (the daemon's state dir is gone), when
its daemon stops cleanly and says so (`zygote.retire_zygote`), or after
`IDLE_SECONDS` without a request.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import json
import logging
import os
import select
import signal
import socket
import sys
from typing import Any, NoReturn

from pycontainerd.shim_v2.contract import ZYGOTE_MODULE
from pycontainerd.shim_v2.flags import parse_flags, shim_argv
from pycontainerd.shim_v2.libc import libc
from pycontainerd.shim_v2.proctitle import set_command_line
from pycontainerd.shim_v2.zygote import (
    LOCK_NAME,
    MAX_MESSAGE,
    code_identity,
    namespaces_of,
    peer_fits,
    peer_of,
    zygote_address,
)

IDLE_SECONDS = 900.0
#: What a shim needs at run time, imported before forking so that every shim shares it.
PRELOAD = (
    "pycontainerd.shim_v2.server",
    "pycontainerd.shim_v2.console",
    "pycontainerd.shim_v2.cgroup_stats",
    "pycontainerd.shim_v2.main",
    "pycontainerd.shim_v2.start",
)
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
_IN_MOVE_SELF = 0x800
_IN_DELETE_SELF = 0x400
_IN_DELETE = 0x200
_IN_MOVED_FROM = 0x40
_WATCHED = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_DELETE | _IN_MOVED_FROM
#: Per-process facts a forked shim inherits from the zygote instead of from its requester.
_INHERITED_STATUS_FIELDS = ("Uid:", "Gid:", "Groups:", "Cap", "NoNewPrivs:", "Seccomp:")


_CODE_CHANGED = "its code changed on disk"


class Retire(Exception):
    """The zygote no longer fits its callers: stop serving."""


def process_context(pid: int | str) -> dict[str, Any]:
    """What a process passes on to a child it forks, beyond env, cwd and umask."""
    base = f"/proc/{pid}"

    def read(name: str) -> str:
        try:
            with open(f"{base}/{name}", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    status = [
        line for line in read("status").splitlines() if line.startswith(_INHERITED_STATUS_FIELDS)
    ]
    namespaces = namespaces_of(pid)
    return {
        "cgroup": read("cgroup"),
        "limits": read("limits"),
        "oom_score_adj": read("oom_score_adj"),
        "status": status,
        "namespaces": namespaces,
    }


def _module_stamps() -> list[tuple[str, int, int]]:
    """(file, mtime, size) of every imported module of our package, to notice upgrades."""
    package = code_identity()["package"]
    stamps = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(package + os.sep):
            with contextlib.suppress(OSError):
                st = os.stat(path)
                stamps.append((path, st.st_mtime_ns, st.st_size))
    return sorted(stamps)


def _still_current(stamps: list[tuple[str, int, int]]) -> bool:
    for path, mtime, size in stamps:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_mtime_ns, st.st_size) != (mtime, size):
            return False
    return True


def _watch_removal(directory: str) -> int | None:
    """An inotify fd that turns readable when `directory` or an entry of it goes.

    Entries too: the bound socket pins the directory, so its own removal event
    only comes once the socket is closed; the socket file's removal comes first.
    """
    fd = libc().inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
    if fd < 0:
        return None
    if libc().inotify_add_watch(fd, os.fsencode(directory), _WATCHED) < 0:
        os.close(fd)
        return None
    return fd


def _bind(socket_dir: str) -> tuple[socket.socket, int] | None:
    """The zygote's listening socket and its lock; None when another zygote holds them.

    The lock (an flock held for the zygote's life) tells a socket file left by a
    zygote that died from a live one. The socket is made 0600 before it is bound,
    so that it is never reachable by other users, whatever the umask.
    """
    try:
        lock = os.open(
            os.path.join(socket_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return None
    path = zygote_address(socket_dir)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        os.fchmod(listener.fileno(), 0o600)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a dead zygote's: the lock was free
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(64)
    except OSError:
        listener.close()
        os.close(lock)
        return None
    return listener, lock


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _detach_stdio() -> None:
    """Leave the caller's pipes: containerd waits for `start`'s stdout and stderr to close."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)


#: A compact copy of the zygote's environment, made just before freezing.
_environment_at_fork: dict[str, str] = {}


def _adopt_environment(env: dict[str, str]) -> None:
    """Make the environment `env`, changing only what differs from the zygote's.

    Replacing it whole would touch every one of the zygote's environment objects
    (and copy the pages they sit on into each shim); requests mostly differ from
    the zygote's environment in a few variables.
    """
    for key in _environment_at_fork.keys() - env.keys():
        os.environ.pop(key, None)
    for key, value in env.items():
        if _environment_at_fork.get(key) != value:
            os.environ[key] = value


def _exec_shim(request: dict[str, Any], listen_fd: int) -> NoReturn:
    """The plain path: a fresh interpreter running the shim (this process becomes it)."""
    flags = parse_flags(request["argv"])
    flags.listen_fd = str(listen_fd)
    argv = shim_argv(flags)
    os.set_inheritable(listen_fd, True)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.execve(argv[0], argv, request["env"])


def _become_shim(request: dict[str, Any], listen_fd: int, ready_fd: int) -> NoReturn:
    """In the forked child: take on the requester's context and run the long-lived shim.

    Writes its pid to `ready_fd` once it shows the shim's command line, so that
    nobody told about the shim sees it in the zygote's clothes.
    """
    code = 1
    try:
        os.setsid()
        gc.enable()
        os.umask(request["umask"])
        os.chdir(request["cwd"])
        _adopt_environment(request["env"])
        from pycontainerd.shim_v2.server import run_server

        flags = parse_flags(request["argv"])
        flags.listen_fd = str(listen_fd)
        set_command_line(shim_argv(flags), request["env"])
        os.write(ready_fd, str(os.getpid()).encode())
        os.close(ready_fd)
        run_server(flags, request["cwd"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a forked child must never return to the zygote
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            logging.shutdown()
        os._exit(code)


def fork_shim(request: dict[str, Any], listen_fd: int, close_in_child: list[int]) -> int:
    """Fork a shim for `request` through a short-lived middle process; the shim's pid.

    The middle process exits at once, so the shim is reparented just like one
    spawned by a `start` that has exited. `close_in_child` are the zygote's own
    descriptors; their Python objects stay referenced by the zygote's frames on
    the child's stack (which never returns), so nothing closes the numbers again.
    """
    gc.freeze()  # objects made since the last fork stay shared too
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(read_end)
            for fd in close_in_child:
                os.close(fd)
            if os.fork() == 0:
                _become_shim(request, listen_fd, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        answer = os.read(read_end, 64)
    finally:
        os.close(read_end)
        os.waitpid(middle, 0)
    if not answer:
        raise OSError("the shim could not be forked")
    return int(answer)


def _end_unwanted(shim: int) -> None:
    """End a shim just forked for a caller that is no longer there to be told of it."""
    with contextlib.suppress(OSError):
        os.kill(shim, signal.SIGKILL)


class Zygote:
    """Serves fork requests on its socket until it retires."""

    def __init__(
        self, socket_dir: str, listener: socket.socket, lock: int, watch: int | None
    ) -> None:
        self.socket_dir = socket_dir
        self.listener = listener
        self.lock: int | None = lock
        self.identity = code_identity()
        self.context = process_context("self")
        self.stamps = _module_stamps()
        self.watch = watch
        self.socket_inode = _inode(zygote_address(socket_dir))

    def owned_fds(self) -> list[int]:
        fds = [self.listener.fileno()]
        return [*fds, *(fd for fd in (self.lock, self.watch) if fd is not None)]

    def serve(self) -> None:
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        if self.watch is not None:
            poller.register(self.watch, select.POLLIN)
        try:
            while True:
                if not self._socket_in_place():
                    return  # the socket file or its directory is gone
                ready = poller.poll(IDLE_SECONDS * 1000)
                if not ready:
                    return  # idle too long
                if any(fd == self.watch for fd, _ in ready):
                    with contextlib.suppress(OSError):
                        os.read(self.watch, 1 << 16)  # type: ignore[arg-type]
                    continue
                conn, _ = self.listener.accept()
                with conn:
                    self._answer(conn)
        except Retire:
            return
        finally:
            self.close()

    def _socket_in_place(self) -> bool:
        inode = _inode(zygote_address(self.socket_dir))
        return inode is not None and inode == self.socket_inode

    def close(self) -> None:
        """Stop serving: the socket file goes first (while the lock still says it is ours)."""
        if self.lock is not None and self._socket_in_place():
            with contextlib.suppress(OSError):
                os.unlink(zygote_address(self.socket_dir))
        self.listener.close()
        for fd in (self.lock, self.watch):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.lock = self.watch = None

    def _answer(self, conn: socket.socket) -> None:
        """Answer one connection: a fork, a refusal, or (raising Retire) a retirement."""
        conn.settimeout(5.0)
        try:
            pid, _uid = peer_of(conn)
            message, fds, flags, _ = socket.recv_fds(conn, MAX_MESSAGE, 1)
        except OSError:
            return
        try:
            if not self._caller_fits(conn):
                self._reply(conn, {"error": "refused: a caller of another user or context"})
                return  # whatever it asked: never a fork, never retiring for it
            try:
                request = json.loads(message)
            except ValueError:
                request = None
            if not isinstance(request, dict) or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                self._reply(conn, {"error": "refused: bad request"})
                return
            if request.get("retire") is True and not fds:
                self.close()
                self._reply(conn, {"retired": True})
                raise Retire("asked to by its daemon")
            if len(fds) != 1:
                self._reply(conn, {"error": "refused: bad request"})
                return
            reason = self._unfit_for(request, pid)
            if reason and not self._retires_for(request, reason):
                self._reply(conn, {"error": f"refused: {reason}"})
                return
            if reason:
                self.close()  # first, so that the caller's fallback can take the name
                self._reply(conn, {"error": f"retired: {reason}"})
                raise Retire(reason)
            try:
                shim = fork_shim(request, fds[0], [*self.owned_fds(), conn.fileno()])
            except OSError as exc:
                self._reply(conn, {"error": str(exc)})
                return
            if not self._reply(conn, {"pid": shim}):
                # The caller gave up waiting and starts a shim another way on the
                # same socket: this one must not serve beside it.
                _end_unwanted(shim)
        finally:
            for fd in fds:
                os.close(fd)

    def _caller_fits(self, conn: socket.socket) -> bool:
        """Our user, our namespaces and our credentials: the only callers heard at all."""
        if not peer_fits(conn):
            return False
        try:
            pid, _uid = peer_of(conn)
        except OSError:
            return False
        return process_context(pid)["status"] == self.context["status"]

    def _unfit_for(self, request: dict[str, Any], pid: int) -> str:
        if not _still_current(self.stamps):
            return _CODE_CHANGED
        if any(request.get(key) != value for key, value in self.identity.items()):
            return "another interpreter or package"
        if process_context(pid) != self.context:
            return "the caller runs in another context (cgroup, limits)"
        return ""

    @staticmethod
    def _retires_for(request: dict[str, Any], reason: str) -> bool:
        """Changed code retires the zygote for everyone; a misfit caller only if it may."""
        return reason == _CODE_CHANGED or request.get("may_retire", True) is not False

    @staticmethod
    def _reply(conn: socket.socket, reply: dict[str, Any]) -> bool:
        """Send `reply`; whether the caller was still there to get it."""
        try:
            conn.send(json.dumps(reply).encode())
        except OSError:
            return False
        return True


def _zygote_argv(socket_dir: str) -> list[str]:
    return [sys.executable, "-m", ZYGOTE_MODULE, socket_dir]


def _prepare(socket_dir: str) -> tuple[socket.socket, int, int | None] | None:
    """Claim the socket, watch the directory, import everything; (listener, lock, watch).

    None when another zygote holds the socket, or when the directory is already
    gone (its daemon stopped while this process started): no zygote then.
    The watch is set before the imports, so a removal during them is seen.
    """
    bound = _bind(socket_dir)
    watch = _watch_removal(socket_dir) if bound is not None else None
    if bound is not None and watch is None and not os.path.isdir(socket_dir):
        bound[0].close()
        os.close(bound[1])
        bound = None
    preload()
    if bound is not None:
        from pycontainerd.shim_v2.rehearsal import rehearse

        rehearse()
    _environment_at_fork.clear()
    _environment_at_fork.update(os.environ)
    gc.freeze()
    return None if bound is None else (*bound, watch)


def become_zygote(
    request: dict[str, Any], listen_fd: int, report_fd: int, socket_dir: str
) -> NoReturn:
    """In the child `start` forked: start the requested shim, then stay as the zygote.

    Writes ``pid N`` (or ``error MESSAGE``) to `report_fd` for `start`.
    """
    code = 1
    try:
        os.setsid()
        _detach_stdio()
        gc.disable()
        if not set_command_line(_zygote_argv(socket_dir), dict(os.environ)):
            os.write(report_fd, f"pid {os.getpid()}\n".encode())
            _exec_shim(request, listen_fd)
        os.chdir("/")
        prepared = _prepare(socket_dir)
        zygote = Zygote(socket_dir, *prepared) if prepared is not None else None
        shim = fork_shim(request, listen_fd, [report_fd, *(zygote.owned_fds() if zygote else [])])
        try:
            os.write(report_fd, f"pid {shim}\n".encode())
        except OSError:
            _end_unwanted(shim)  # `start` gave up waiting and failed the task
            raise
        os.close(report_fd)
        os.close(listen_fd)
        if zygote is not None:
            zygote.serve()
        code = 0
    except BaseException as exc:  # noqa: BLE001 - report, never return into `start`
        with contextlib.suppress(OSError):
            os.write(report_fd, f"error {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(code)


def run_standalone(args: list[str]) -> int:
    """``python -m pycontainerd.shim_v2.zygote DIR``: serve as DIR's zygote in the foreground."""
    if len(args) != 1:
        sys.stderr.write("usage: python -m pycontainerd.shim_v2.zygote SOCKET_DIR\n")
        return 2
    socket_dir = os.path.abspath(args[0])
    gc.disable()
    prepared = _prepare(socket_dir)
    if prepared is None:
        sys.stderr.write(f"a zygote for {socket_dir} is already running, or it is gone\n")
        return 1
    Zygote(socket_dir, *prepared).serve()
    return 0
