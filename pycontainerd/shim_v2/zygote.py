"""The shim zygote: a warm process that forks new shims, and how `start` asks it for one.

Starting a shim used to cost a fresh interpreter and its imports for every
container. The zygote pays that once per shim socket directory (so once per
daemon state dir): it imports the long-lived shim's code, freezes the heap
(``gc.freeze``) and serves fork requests on an abstract unix socket named after
that directory. A shim forked from it shares the imported pages copy-on-write,
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

import hashlib
import json
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

from pycontainerd.unix_socket import listening

#: How long `start` waits for a zygote's answer before falling back.
REQUEST_TIMEOUT = 10.0
MAX_MESSAGE = 1 << 20


def zygote_address(socket_dir: str) -> bytes:
    """The zygote's abstract socket name for a shim socket directory (no file to go stale)."""
    digest = hashlib.sha256(os.path.abspath(socket_dir).encode()).hexdigest()[:32]
    return b"\0pycontainerd-shim-zygote/" + digest.encode()


def zygote_running(socket_dir: str) -> bool:
    """Whether a zygote listens for `socket_dir` (it answers the probe with a refusal)."""
    return listening(zygote_address(socket_dir), socket.SOCK_SEQPACKET)


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


def ask_zygote(socket_dir: str, request: dict[str, Any], listen_fd: int) -> int | None:
    """Have the zygote of `socket_dir` fork a shim serving on `listen_fd`; its pid, or None.

    None means no zygote could do it (none running, a stale one, a refusal, a
    timeout): the caller starts the shim another way.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as conn:
        conn.settimeout(REQUEST_TIMEOUT)
        try:
            conn.connect(zygote_address(socket_dir))
            socket.send_fds(conn, [json.dumps(request).encode()], [listen_fd])
            reply = json.loads(conn.recv(MAX_MESSAGE) or b"{}")
        except (OSError, ValueError):
            return None
    pid = reply.get("pid") if isinstance(reply, dict) else None
    return pid if isinstance(pid, int) and pid > 0 else None


if __name__ == "__main__":
    from pycontainerd.shim_v2.zygote_server import run_standalone

    sys.exit(run_standalone(sys.argv[1:]))
