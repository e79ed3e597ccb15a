"""Starting pycontainerd's own shim without running its ``start`` command.

Running ``containerd-shim-pyrunc-v2 start`` costs a fresh interpreter per
container (tens of milliseconds before it does anything). When the runtime's
shim binary is our own, the daemon does what that command would do, in a worker
thread: bind the shim's socket, write the bundle's address and pid files, and
ask the shim zygote of the socket directory to fork the shim. The shim gets the
environment, working directory and flags the command would have given it.

Without a zygote (the first container of a daemon, or after the zygote retired),
or when the zygote serves other code than the daemon's, this path gives up and
the caller runs the ``start`` command, which forks a zygote for the next time.
The daemon itself never forks: it has threads. So that not even the first
container waits for a zygote to import the shim, the daemon starts one at
start-up (`prewarm_zygote`), as a program of its own in a session of its own,
and retires it when it stops cleanly (`retire_own_zygote`): only the shims of
running containers outlive a clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence

import pycontainerd.shim_v2.contract as contract

log = logging.getLogger(__name__)


def is_own_shim(path: str) -> bool:
    """Whether the shim binary at `path` is pycontainerd's Python shim (by its name)."""
    return os.path.basename(path) == contract.SHIM_BINARY_NAME


async def start_through_zygote(
    start_args: Sequence[str], bundle: str, env: Mapping[str, str], options: bytes = b""
) -> str | None:
    """The address of a shim the zygote forked for ``<shim> start_args``; None without one.

    `start_args` are the command's arguments (flags, then ``start``) and `options`
    what it would read on stdin; errors other than a missing zygote are raised as
    the command would report them.
    """
    try:
        return await asyncio.to_thread(
            contract.start_through_zygote, start_args, bundle, env, options
        )
    except contract.NoZygote as exc:
        # The slow path (a fresh interpreter, and a new zygote): worth knowing why.
        log.info("shim start through the zygote: %s; running the start command", exc)
        return None


async def prewarm_zygote(socket_dir: str) -> None:
    """Run the zygote of `socket_dir` unless one runs; returns when it retires.

    It runs in its own session and is not killed with the daemon; awaiting it
    only reaps it once it retires (idle, its directory gone, or its code changed).
    """
    if await asyncio.to_thread(contract.zygote_running, socket_dir):
        return
    os.makedirs(socket_dir, mode=0o711, exist_ok=True)
    devnull = asyncio.subprocess.DEVNULL
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", contract.ZYGOTE_MODULE, socket_dir,
            cwd="/", stdin=devnull, stdout=devnull, stderr=devnull, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        log.warning("cannot start the shim zygote (shims start slower): %s", exc)
        return
    await proc.wait()


async def retire_own_zygote(socket_dir: str) -> None:
    """Have the zygote of `socket_dir` stop (the daemon stops cleanly); none is fine."""
    if not await asyncio.to_thread(contract.retire_zygote, socket_dir):
        log.debug("no shim zygote of %s to retire", socket_dir)
