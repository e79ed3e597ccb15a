"""One running shim as the daemon sees it: its bundle, binary, log and ttrpc client."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.runtime.bundle import LOG_FIFO, Bundle
from pycontainerd.runtime.shim_binary import ShimBinary
from pycontainerd.runtime.shim_log import ShimLog
from pycontainerd.ttrpc import ServiceStub, TtrpcClient

log = logging.getLogger(__name__)

TASK_SERVICE = shim_pb2.DESCRIPTOR.services_by_name["Task"]
CONNECT_TIMEOUT = 5.0
SHUTDOWN_TIMEOUT = 3.0


class ShimTask:
    """A task served by a shim; ``stub`` calls the shim's Task service.

    ``detached`` is set when the daemon lets go of the shim on purpose (task
    deleted, daemon stopping), so losing the connection is not a shim death.
    """

    def __init__(self, bundle: Bundle, binary: ShimBinary) -> None:
        self.bundle = bundle
        self.binary = binary
        self.log = ShimLog(bundle.path / LOG_FIFO, bundle.id)
        self.client: TtrpcClient | None = None
        self._stub: ServiceStub | None = None
        self.detached = False
        self._cleanup_claimed = False

    @property
    def id(self) -> str:
        return self.bundle.id

    @property
    def namespace(self) -> str:
        return self.bundle.namespace

    @property
    def stub(self) -> ServiceStub:
        if self._stub is None:
            raise errdefs.Unavailable(f"task {self.id!r}: not connected to its shim")
        return self._stub

    async def attach(self, address: str, on_close: Callable[[], None]) -> shim_pb2.ConnectResponse:
        """Connect to the shim at ``address`` and check it serves this task."""
        self.client = await TtrpcClient.connect(address, timeout=CONNECT_TIMEOUT, on_close=on_close)
        self._stub = ServiceStub(self.client, TASK_SERVICE)
        return await self.stub.Connect(shim_pb2.ConnectRequest(id=self.id), timeout=CONNECT_TIMEOUT)

    async def state(
        self, exec_id: str = "", timeout: float | None = None
    ) -> shim_pb2.StateResponse:
        """The process's state; NotFound when the shim is gone (containerd does the same)."""
        request = shim_pb2.StateRequest(id=self.id, exec_id=exec_id)
        try:
            return await self.stub.State(request, timeout=timeout)
        except errdefs.Unavailable as exc:
            raise errdefs.NotFound(f"task {self.id!r}: its shim is gone") from exc

    async def shutdown(self) -> None:
        """Ask the shim to exit (it does once it serves no task); a gone shim is fine."""
        try:
            await self.stub.Shutdown(shim_pb2.ShutdownRequest(id=self.id), timeout=SHUTDOWN_TIMEOUT)
        except (errdefs.Unavailable, errdefs.DeadlineExceeded) as exc:
            log.debug("shutdown of shim for %s: %s", self.id, exc)

    def claim_cleanup(self) -> bool:
        """True for the first caller only: a dead shim is cleaned up once."""
        claimed, self._cleanup_claimed = self._cleanup_claimed, True
        return not claimed

    def detach(self) -> None:
        """Close the connection and the log without touching the shim process."""
        self.detached = True
        if self.client is not None:
            self.client.close()
        self.log.close()
