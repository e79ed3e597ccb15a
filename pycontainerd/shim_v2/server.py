"""The long-lived shim: reap children, serve the Task API, forward events.

It runs in its own session, in ``/`` (not the first container's bundle, which
may be deleted while the shim serves others), with the listening socket
inherited from ``start``. As a child subreaper it becomes the parent of every
container process once the runtime command that forked it exits. Logs go to a
served bundle's ``log`` FIFO (`shim_log`), which containerd reads and copies to
its own output. Once Shutdown finds no container left, the shim retires (see
`pool`): at once, or for a pool shim after lingering idle a while; a container
placed on it meanwhile keeps it serving. SIGTERM/SIGINT end it at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Coroutine
from typing import Any

from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.heap import HeapTrimmer
from pycontainerd.shim_v2 import pool
from pycontainerd.shim_v2.events import EventPublisher
from pycontainerd.shim_v2.flags import ShimFlags
from pycontainerd.shim_v2.reaper import Reaper, set_child_subreaper
from pycontainerd.shim_v2.service import TaskService
from pycontainerd.shim_v2.shim_log import BundleLogHandler, setup_logging
from pycontainerd.ttrpc import TtrpcServer, register_service

log = logging.getLogger(__name__)

TTRPC_ADDRESS_ENV = "TTRPC_ADDRESS"
SHUTDOWN_GRACE = 2.0
#: How often an idle shim looks for new containers or its vanished socket.
IDLE_POLL = 0.25
#: How long an idle shim waits again after a container was on its way but never came.
IDLE_RECHECK = 5.0


async def serve(
    flags: ShimFlags, listener: socket.socket, log_handler: BundleLogHandler | None = None
) -> None:
    """Serve until the shim retires (see `retire_when_idle`) or a terminating signal."""
    loop = asyncio.get_running_loop()
    terminate = asyncio.Event()
    idle = asyncio.Event()
    reaper = Reaper()
    reaper.install()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, terminate.set)
    publisher = EventPublisher(os.environ.get(TTRPC_ADDRESS_ENV, ""), flags.namespace)
    service = TaskService(
        flags.namespace, publisher, reaper, on_shutdown=idle.set, socket_path=flags.socket
    )
    if log_handler is not None:
        log_handler.bundles = service.bundles
    server = TtrpcServer(require_same_user=True)
    register_service(server, shim_pb2.DESCRIPTOR.services_by_name["Task"], service)
    await server.serve_on_socket(listener)
    log.info("shim %d serving %s for namespace %s", os.getpid(), flags.socket, flags.namespace)
    linger = pool.linger(os.environ)
    trimmer = asyncio.ensure_future(HeapTrimmer().run())
    try:
        while not terminate.is_set():
            await _first_of(terminate.wait(), idle.wait())
            if idle.is_set():
                idle.clear()
                if await retire_when_idle(service, flags.socket, linger, terminate):
                    break
    finally:
        # Answer the Shutdown call (and any other in flight) before going away.
        trimmer.cancel()
        await server.shutdown(timeout=SHUTDOWN_GRACE)
        if terminate.is_set() and flags.socket:
            pool.forget_shim(flags.socket)
        await publisher.close()
        reaper.uninstall()
    log.info("shim %d exiting", os.getpid())


async def retire_when_idle(
    service: TaskService, socket_path: str, linger: float, terminate: asyncio.Event
) -> bool:
    """Wait `linger` seconds without containers, then retire unless one is on its way.

    False when a container arrived (serve on, until the next Shutdown).
    """
    if not socket_path:
        return not service.containers
    deadline = time.monotonic() + linger
    while True:
        if service.containers:
            return False
        if terminate.is_set() or not os.path.exists(socket_path):
            return True  # asked to stop, or our socket directory went away
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            # The placement lock may be held by a shim start: wait for it in a worker,
            # so the containers this shim serves are not held up meanwhile.
            serving = bool(service.containers)
            if await asyncio.to_thread(pool.retire_if_unused, socket_path, serving):
                return True
            deadline = time.monotonic() + max(linger, IDLE_RECHECK)
            continue
        await asyncio.sleep(min(remaining, IDLE_POLL))


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def run_server(flags: ShimFlags, bundle: str) -> None:
    """Entry of the long-lived shim process (spawned by `start`)."""
    log_handler = setup_logging(bundle, flags.debug)
    # The first bundle may go while the shim serves others (pools, groups); runtime
    # commands inherit the working directory, and a shell wrapper fails in a deleted one.
    os.chdir("/")
    set_child_subreaper()
    if not flags.listen_fd:
        raise SystemExit("the long-lived shim is started by `start`; it needs -listen-fd")
    listener = socket.socket(fileno=int(flags.listen_fd))
    listener.set_inheritable(False)
    asyncio.run(serve(flags, listener, log_handler))
