"""One running shim as the daemon sees it: its bundle, binary, log and ttrpc client.

:class:`ShimTask` and :class:`ShimProcess` implement the runtime's ``Task`` and
``Process`` interfaces (runtime/task.py) over the shim's ttrpc Task service.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence

from google.protobuf import any_pb2

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.runc.options import oci_pb2 as runc_options
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.runtime.bundle import LOG_FIFO, Bundle
from pycontainerd.runtime.shim_binary import ShimBinary
from pycontainerd.runtime.shim_log import ShimLog
from pycontainerd.runtime.task import Exit, ProcessInfo, ProcessState, Status
from pycontainerd.stdio_paths import StdioPaths
from pycontainerd.ttrpc import ServiceStub, TtrpcClient

log = logging.getLogger(__name__)

TASK_SERVICE = shim_pb2.DESCRIPTOR.services_by_name["Task"]
CONNECT_TIMEOUT = 5.0
SHUTDOWN_TIMEOUT = 3.0
_CHECKPOINT_OPTIONS = runc_options.CheckpointOptions.DESCRIPTOR.full_name


@contextlib.contextmanager
def shim_gone_is_not_found(task_id: str) -> Iterator[None]:
    """A shim that is gone means its task is gone: NotFound, as containerd answers."""
    try:
        yield
    except errdefs.Unavailable as exc:
        raise errdefs.NotFound(f"task {task_id!r}: its shim is gone") from exc


class ShimProcess:
    """One process of a task (``exec_id`` "" for the init), through the task's shim."""

    def __init__(self, task: ShimTask, exec_id: str) -> None:
        self._task = task
        self.exec_id = exec_id

    @property
    def id(self) -> str:
        return self.exec_id or self._task.id

    async def start(self) -> int:
        task = self._task
        started = await task.stub.Start(shim_pb2.StartRequest(id=task.id, exec_id=self.exec_id))
        return int(started.pid)

    async def kill(self, signal: int, *, all: bool = False) -> None:
        request = shim_pb2.KillRequest(
            id=self._task.id, exec_id=self.exec_id, signal=signal, all=all
        )
        await self._task.stub.Kill(request)

    async def wait(self) -> Exit:
        task = self._task
        with shim_gone_is_not_found(task.id):
            waited = await task.stub.Wait(shim_pb2.WaitRequest(id=task.id, exec_id=self.exec_id))
        return Exit(0, waited.exit_status, waited.exited_at)

    async def state(self, *, timeout: float | None = None) -> ProcessState:
        task = self._task
        request = shim_pb2.StateRequest(id=task.id, exec_id=self.exec_id)
        with shim_gone_is_not_found(task.id):
            state = await task.stub.State(request, timeout=timeout)
        return ProcessState(
            id=self.id,
            pid=state.pid,
            status=Status(state.status),
            io=StdioPaths(state.stdin, state.stdout, state.stderr, state.terminal),
            exit_status=state.exit_status,
            exited_at=state.exited_at,
        )

    async def resize(self, width: int, height: int) -> None:
        request = shim_pb2.ResizePtyRequest(
            id=self._task.id, exec_id=self.exec_id, width=width, height=height
        )
        await self._task.stub.ResizePty(request)

    async def close_io(self) -> None:
        request = shim_pb2.CloseIORequest(id=self._task.id, exec_id=self.exec_id, stdin=True)
        await self._task.stub.CloseIO(request)

    async def delete(self) -> Exit:
        task = self._task
        with shim_gone_is_not_found(task.id):
            deleted = await task.stub.Delete(
                shim_pb2.DeleteRequest(id=task.id, exec_id=self.exec_id)
            )
        return Exit(deleted.pid, deleted.exit_status, deleted.exited_at)


class ShimTask:
    """A task served by a shim; ``stub`` calls the shim's Task service.

    ``detached`` is set when the daemon lets go of the shim on purpose (task
    deleted, daemon stopping), so losing the connection is not a shim death.
    """

    def __init__(self, bundle: Bundle, binary: ShimBinary) -> None:
        self.bundle = bundle
        self._init = ShimProcess(self, "")
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

    # The init process (runtime.task.Process)

    async def start(self) -> int:
        return await self._init.start()

    async def kill(self, signal: int, *, all: bool = False) -> None:
        await self._init.kill(signal, all=all)

    async def wait(self) -> Exit:
        return await self._init.wait()

    async def state(self, *, timeout: float | None = None) -> ProcessState:
        return await self._init.state(timeout=timeout)

    async def resize(self, width: int, height: int) -> None:
        await self._init.resize(width, height)

    async def close_io(self) -> None:
        await self._init.close_io()

    async def delete(self) -> Exit:
        """Delete the init process in the shim (the task manager then retires the shim)."""
        return await self._init.delete()

    # The whole task (runtime.task.Task)

    def process(self, exec_id: str) -> ShimProcess:
        return ShimProcess(self, exec_id) if exec_id else self._init

    async def exec(self, exec_id: str, io: StdioPaths, spec: any_pb2.Any) -> ShimProcess:
        request = shim_pb2.ExecProcessRequest(
            id=self.id,
            exec_id=exec_id,
            stdin=io.stdin,
            stdout=io.stdout,
            stderr=io.stderr,
            terminal=io.terminal,
            spec=spec,
        )
        await self.stub.Exec(request)
        return ShimProcess(self, exec_id)

    async def pids(self) -> Sequence[ProcessInfo]:
        found = await self.stub.Pids(shim_pb2.PidsRequest(id=self.id))
        return [ProcessInfo(p.pid, p.info if p.HasField("info") else None) for p in found.processes]

    async def pause(self) -> None:
        await self.stub.Pause(shim_pb2.PauseRequest(id=self.id))

    async def resume(self) -> None:
        await self.stub.Resume(shim_pb2.ResumeRequest(id=self.id))

    async def update(self, resources: any_pb2.Any, annotations: Mapping[str, str]) -> None:
        request = shim_pb2.UpdateTaskRequest(
            id=self.id, resources=resources, annotations=dict(annotations)
        )
        await self.stub.Update(request)

    async def stats(self) -> any_pb2.Any:
        return (await self.stub.Stats(shim_pb2.StatsRequest(id=self.id))).stats

    async def checkpoint(self, options: any_pb2.Any | None) -> None:
        image_path = _checkpoint_image_path(options)
        if not image_path:
            raise errdefs.NotImplemented_(
                "checkpoints into the content store are not supported by pycontainerd; "
                "pass an image path in the runc CheckpointOptions (ctr: --image-path)"
            )
        request = shim_pb2.CheckpointTaskRequest(id=self.id, path=image_path, options=options)
        await self.stub.Checkpoint(request)

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


def _checkpoint_image_path(options: any_pb2.Any | None) -> str:
    if options is None:
        return ""
    name = options.type_url.rsplit("/", 1)[-1]
    if name != _CHECKPOINT_OPTIONS:
        raise errdefs.InvalidArgument(
            f"checkpoint options of type {options.type_url!r} are not understood; "
            f"send {_CHECKPOINT_OPTIONS}"
        )
    return runc_options.CheckpointOptions.FromString(options.value).image_path
