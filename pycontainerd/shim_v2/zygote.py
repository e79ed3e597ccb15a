"""The shim zygote: a warm process that forks new shims, and how `start` asks it for one.

Starting a shim used to cost a fresh interpreter and its imports for every
container. The zygote pays that once per shim socket directory (so once per
daemon state dir): it imports the long-lived shim's code, freezes the heap
(``gc.freeze``) and serves fork requests on a socket file in that directory
(`zygote_address`), which only its owner can connect to. Both sides check who is
at the other end before anything is sent (`peer_fits`): a fork request carries
the shim's listening socket and environment, so it goes only to a zygote of the
same user in the same namespaces, and the zygote serves (or retires for) only
such callers. A shim forked from it shares the imported pages copy-on-write,
which cuts both start latency and memory per shim. The forked shim is
indistinguishable from one `start` would have exec'ed: own session, parent gone
(so it is reparented like before), the requester's environment, umask and
working directory, and the same command line (see `proctitle`).

This module is the client side and the wire format, kept to cheap imports
because `start` runs once per container; `zygote_server` is the zygote itself.
Any failure to use the zygote means "fall back": `start` then forks a new one.
Run ``python -m pycontainerd.shim_v2.zygote DIR`` to start a zygote by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import sys
from collections.abc import Mapping
from typing import Any

from pycontainerd.unix_socket import listening

#: How long `start` waits for a zygote's answer before falling back.
REQUEST_TIMEOUT = 10.0
#: How long the daemon waits for its zygote to acknowledge a request to retire.
RETIRE_TIMEOUT = 2.0
MAX_MESSAGE = 1 << 20
SOCKET_NAME = ".zygote"
#: Held (flock) by the live zygote, so that a new one knows a socket file left behind is stale.
LOCK_NAME = ".zygote.lock"
#: Namespaces a zygote and its callers must share: a process in others is foreign.
SHARED_NAMESPACES = ("mnt", "pid", "user", "net", "ipc", "uts", "cgroup")
_PEERCRED = struct.Struct("3i")


def zygote_address(socket_dir: str) -> str:
    """The zygote's socket file for a shim socket directory.

    A file, not an abstract name: abstract names have no permissions and are
    shared by every process of the network namespace (containerd's shim sockets
    moved to files for the same reason). The file is the owner's only (0600).
    """
    return os.path.join(os.path.abspath(socket_dir), SOCKET_NAME)


def zygote_running(socket_dir: str) -> bool:
    """Whether a zygote listens for `socket_dir` (it answers the probe with a refusal)."""
    return listening(zygote_address(socket_dir), socket.SOCK_SEQPACKET)


def peer_of(conn: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a connected unix socket."""
    pid, uid, _gid = _PEERCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return pid, uid


def namespaces_of(pid: int | str) -> dict[str, str]:
    """The namespaces of a process that must match ours (empty when it is gone)."""
    found = {}
    for name in SHARED_NAMESPACES:
        with contextlib.suppress(OSError):
            found[name] = os.readlink(f"/proc/{pid}/ns/{name}")
    return found


def peer_fits(conn: socket.socket) -> bool:
    """Whether the peer runs as our user in all of our namespaces (so may see a fork request).

    A peer in a pid namespace we cannot see has pid 0; one in other mount or pid
    namespaces (a container sharing our network namespace, say) is foreign.
    """
    try:
        pid, uid = peer_of(conn)
    except OSError:
        return False
    if pid <= 0 or uid != os.geteuid():
        return False
    ours = namespaces_of("self")
    return bool(ours) and namespaces_of(pid) == ours


def code_identity() -> dict[str, str]:
    """Which interpreter and which pycontainerd: a zygote only serves its own kind.

    The interpreter is compared by its real path: the daemon may run as
    ``.../bin/python`` while the shim script's shebang names ``.../bin/python3.11``.
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {"python": os.path.realpath(sys.executable), "package": package}


def current_umask() -> int:
    """This process's umask, read without changing it (safe beside other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fork_request(
    argv: list[str],
    cwd: str,
    env: Mapping[str, str] | None = None,
    *,
    may_retire: bool = True,
) -> dict[str, Any]:
    """What the zygote needs to make a shim for the caller: flags, and the caller's context.

    `env` is the shim's environment (the caller's own by default). With
    `may_retire` False, a zygote that does not fit the caller only refuses instead
    of retiring: the daemon asks that way, so that it never ends a zygote that
    serves the shim binary's own `start` well.
    """
    return {
        "argv": argv,
        "cwd": cwd,
        "env": dict(os.environ if env is None else env),
        "umask": current_umask(),
        "may_retire": may_retire,
        **code_identity(),
    }


def ask_zygote(socket_dir: str, request: dict[str, Any], listen_fd: int) -> tuple[int | None, str]:
    """Have the zygote of `socket_dir` fork a shim serving on `listen_fd`: (its pid, "").

    (None, why) means no zygote could do it (none running, a stale one, a
    refusal, a timeout): the caller starts the shim another way.
    """
    reply = _exchange(socket_dir, request, [listen_fd], REQUEST_TIMEOUT)
    pid = reply.get("pid")
    if isinstance(pid, int) and pid > 0:
        return pid, ""
    return None, str(reply.get("error") or "no answer")


def retire_zygote(socket_dir: str) -> bool:
    """Ask the zygote of `socket_dir` to stop serving (the daemon stops); whether it did."""
    reply = _exchange(socket_dir, {"retire": True}, [], RETIRE_TIMEOUT)
    return reply.get("retired") is True


def _exchange(
    socket_dir: str, request: dict[str, Any], fds: list[int], timeout: float
) -> dict[str, Any]:
    """Send `request` (with `fds`) to a fitting zygote and return its reply.

    A failure to get one is a reply too: ``{"error": why}``.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(zygote_address(socket_dir))
            if not peer_fits(conn):
                return {"error": "the zygote socket is served by a process of another context"}
            socket.send_fds(conn, [json.dumps(request).encode()], fds)
            reply = json.loads(conn.recv(MAX_MESSAGE) or b"{}")
        except TimeoutError:
            reply = _last_word(conn) or {"error": f"no answer within {timeout:.0f}s"}
        except (OSError, ValueError) as exc:
            return {"error": f"no zygote to ask ({exc})"}
    return reply if isinstance(reply, dict) else {"error": "a reply that is not an object"}


def _last_word(conn: socket.socket) -> Any:
    """After a wait ran out: close our receiving side, then take a reply already sent.

    Once our side is shut, the zygote's send of a reply fails, so a shim it
    forks too late for us is one it knows nobody will use (it ends it). A
    reply sent just before is still queued here: taking it keeps that shim.
    """
    try:
        conn.shutdown(socket.SHUT_RD)
        return json.loads(conn.recv(MAX_MESSAGE, socket.MSG_DONTWAIT) or b"null")
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    from pycontainerd.heap import tune_allocator
    from pycontainerd.rlimits import raise_open_files_limit
    from pycontainerd.shim_v2.zygote_server import run_standalone

    raise_open_files_limit()  # as `start` does: its shims get what exec'ed ones get
    tune_allocator()

    sys.exit(run_standalone(sys.argv[1:]))
