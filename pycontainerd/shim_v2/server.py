"""The long-lived shim: reap children, serve the Task API, forward events.

It runs in its own session with the bundle as working directory and the
listening socket inherited from ``start``. As a child subreaper it becomes the
parent of every container process once the runtime command that forked it
exits. Logs go to the bundle's ``log`` FIFO, which containerd reads and copies
to its own output. The process exits after Shutdown once no container is left
(or on SIGTERM/SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.shim_v2.events import EventPublisher
from pycontainerd.shim_v2.flags import ShimFlags
from pycontainerd.shim_v2.reaper import Reaper, set_child_subreaper
from pycontainerd.shim_v2.service import TaskService
from pycontainerd.ttrpc import TtrpcServer, register_service

log = logging.getLogger(__name__)

TTRPC_ADDRESS_ENV = "TTRPC_ADDRESS"
LOG_FIFO = "log"
SHUTDOWN_GRACE = 2.0
#: Built at import (in the zygote, so forked shims share it rather than build their own).
_LOG_FORMAT = logging.Formatter(
    "time=%(asctime)s level=%(levelname)s msg=%(message)s runtime=pyrunc"
)


def setup_logging(bundle: str, debug: bool) -> None:
    """Log to the bundle's ``log`` FIFO when containerd has it open, else nowhere."""
    logging.raiseExceptions = False
    level = logging.DEBUG if debug else logging.INFO
    try:
        fd = os.open(os.path.join(bundle, LOG_FIFO), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        logging.basicConfig(level=logging.CRITICAL + 1, handlers=[logging.NullHandler()])
        return
    os.set_blocking(fd, True)
    stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_LOG_FORMAT)
    logging.root.addHandler(handler)
    logging.root.setLevel(level)


async def serve(flags: ShimFlags, listener: socket.socket) -> None:
    """Serve until Shutdown (with no containers left) or a terminating signal."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reaper = Reaper()
    reaper.install()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    publisher = EventPublisher(os.environ.get(TTRPC_ADDRESS_ENV, ""), flags.namespace)
    service = TaskService(flags.namespace, publisher, reaper, on_shutdown=stop.set)
    server = TtrpcServer(require_same_user=True)
    register_service(server, shim_pb2.DESCRIPTOR.services_by_name["Task"], service)
    await server.serve_on_socket(listener)
    log.info("shim %d serving %s for namespace %s", os.getpid(), flags.socket, flags.namespace)
    try:
        await stop.wait()
    finally:
        # Answer the Shutdown call (and any other in flight) before going away.
        await server.shutdown(timeout=SHUTDOWN_GRACE)
        if flags.socket:
            for path in (flags.socket, flags.socket + ".pid"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        await publisher.close()
        reaper.uninstall()
    log.info("shim %d exiting", os.getpid())


def run_server(flags: ShimFlags, bundle: str) -> None:
    """Entry of the long-lived shim process (spawned by `start`)."""
    setup_logging(bundle, flags.debug)
    set_child_subreaper()
    if not flags.listen_fd:
        raise SystemExit("the long-lived shim is started by `start`; it needs -listen-fd")
    listener = socket.socket(fileno=int(flags.listen_fd))
    listener.set_inheritable(False)
    asyncio.run(serve(flags, listener))
