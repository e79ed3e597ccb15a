"""A dry run of a shim's serving path, done once in the zygote before it forks shims.

CPython writes into code objects the first times it runs them (warm-up counters,
then specialised bytecode) and sets up caches lazily. Done in each forked shim,
those writes copy the touched pages out of the zygote and make them private to
the shim; done once in the zygote, the pages stay shared. So the zygote runs an
event loop, serves the Task API over a throwaway abstract socket and calls it a
few times. Nothing of it outlives `rehearse`: the loop, sockets and service go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.shim_v2.events import EventPublisher
from pycontainerd.shim_v2.reaper import Reaper
from pycontainerd.shim_v2.service import TaskService
from pycontainerd.ttrpc import ServiceStub, TtrpcClient, TtrpcServer, register_service

#: Enough calls for CPython 3.11 to quicken and specialise the code on the path.
ROUNDS = 64
TIMEOUT = 5.0
TASK_SERVICE = shim_pb2.DESCRIPTOR.services_by_name["Task"]


async def _calls(stub: ServiceStub) -> None:
    for _ in range(ROUNDS):
        await stub.Connect(shim_pb2.ConnectRequest(id="rehearsal"), timeout=TIMEOUT)
        with contextlib.suppress(errdefs.NotFound):
            await stub.State(shim_pb2.StateRequest(id="rehearsal"), timeout=TIMEOUT)


async def _rehearsal() -> None:
    name = f"@pycontainerd-shim-rehearsal/{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    listener.bind("\0" + name[1:])
    listener.listen(1)
    server = TtrpcServer(require_same_user=True)
    service = TaskService("rehearsal", EventPublisher("", "rehearsal"), Reaper(), lambda: None)
    register_service(server, TASK_SERVICE, service)
    await server.serve_on_socket(listener)
    try:
        async with await TtrpcClient.connect(name, timeout=TIMEOUT) as client:
            await _calls(ServiceStub(client, TASK_SERVICE))
    finally:
        await server.shutdown(timeout=TIMEOUT)


def rehearse() -> None:
    """Run the rehearsal on a fresh event loop; failures only cost the warm-up."""
    try:
        asyncio.run(_rehearsal())
    except Exception:  # noqa: BLE001 - a shim forked without warm-up works the same
        return
