"""What the daemon and pycontainerd's shim agree on: the one module the daemon imports.

Names and defaults both sides read (the shim binary, the environment the daemon
passes, the pool settings, the zygote's module), and the three entry points
through which the daemon starts its own shims without a ``start`` process:
:func:`start_through_zygote`, :func:`zygote_running` and :func:`retire_zygote`.
The shim's internals are imported only when those run, so importing this module
pulls in nothing of the shim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pycontainerd import errdefs

#: The shim binary on PATH for ``io.containerd.pyrunc.v2`` (containerd's naming).
SHIM_BINARY_NAME = "containerd-shim-pyrunc-v2"
#: The module a zygote runs as (``python -m``), given its socket directory.
ZYGOTE_MODULE = "pycontainerd.shim_v2.zygote"

# The environment the daemon gives a shim, beyond containerd's own variables.
RUNC_ROOT_ENV = "PYCONTAINERD_RUNC_ROOT"
SOCKET_DIR_ENV = "PYCONTAINERD_SHIM_SOCKET_DIR"
POOL_SIZE_ENV = "PYCONTAINERD_SHIM_POOL_SIZE"
POOL_IDLE_ENV = "PYCONTAINERD_SHIM_POOL_IDLE"

#: Containers of a namespace that share one pool shim (1: a shim per container).
DEFAULT_POOL_SIZE = 8
#: Seconds an idle pool shim waits for the next container before it exits.
DEFAULT_POOL_IDLE = 10.0


class NoZygote(errdefs.Unavailable):
    """No zygote forked the shim, and the caller did not want one forked: run ``start``."""


def start_through_zygote(
    start_args: Sequence[str], bundle: str, env: Mapping[str, str], options: bytes = b""
) -> str:
    """Do what ``<shim> start_args`` would, through the running zygote; its address.

    `start_args` are the command's flags then ``start``; `options` what it would
    read on stdin. Blocks (binds sockets, waits for the fork): call it in a worker.
    Raises NoZygote when no zygote can fork the shim, and what the command would
    report otherwise.
    """
    from pycontainerd.shim_v2.flags import parse_flags
    from pycontainerd.shim_v2.options import decode_serialized_options
    from pycontainerd.shim_v2.start import start

    flags = parse_flags(list(start_args))
    return start(flags, bundle, env, False, decode_serialized_options(options))


def zygote_running(socket_dir: str) -> bool:
    from pycontainerd.shim_v2 import zygote

    return zygote.zygote_running(socket_dir)


def retire_zygote(socket_dir: str) -> bool:
    """Ask the zygote of `socket_dir` to stop; False when none runs."""
    from pycontainerd.shim_v2 import zygote

    return zygote.retire_zygote(socket_dir)
