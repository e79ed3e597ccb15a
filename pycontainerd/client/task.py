"""Tasks: a container's running processes (its init process, and processes exec'd in it).

A :class:`Task` is made by :meth:`Container.new_task` (created, not yet
started). ``start`` runs it, ``wait`` returns its :class:`ExitStatus` once it
exited, ``delete`` releases it. Used as ``async with`` it is killed (if still
running) and deleted on exit. :meth:`Task.exec` adds an :class:`ExecProcess`
with the same life cycle.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import enum
import json
import signal as signals
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import Message

from pycontainerd import errdefs
from pycontainerd.api.cgroups.v1 import metrics_pb2 as cgroups_metrics
from pycontainerd.api.services.tasks.v1 import tasks_pb2 as api
from pycontainerd.api.services.tasks.v1 import tasks_pb2_grpc
from pycontainerd.api.types.task import task_pb2
from pycontainerd.client.cio import ClientIO, Stdio, create_io, remove_fifo_dir
from pycontainerd.client.models import from_timestamp
from pycontainerd.client.rpc import Connection
from pycontainerd.oci import Spec, merge_env
from pycontainerd.stdio_paths import StdioPaths

PROCESS_SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
_METRICS_TYPES: dict[str, type[Message]] = {
    cgroups_metrics.Metrics.DESCRIPTOR.full_name: cgroups_metrics.Metrics
}


class TaskStatus(enum.StrEnum):
    UNKNOWN = "UNKNOWN"
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    PAUSED = "PAUSED"
    PAUSING = "PAUSING"


def status_from_api(value: int) -> TaskStatus:
    if value not in task_pb2.Status.values():
        return TaskStatus.UNKNOWN
    return TaskStatus(task_pb2.Status.Name(value))


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: its exit code (128 + N when killed by signal N)."""

    code: int
    exited_at: datetime | None = None

    @property
    def signal(self) -> int | None:
        """The signal that killed the process, as the runtime reports it (else None)."""
        return self.code - 128 if 128 < self.code < 128 + 65 else None


@dataclass(frozen=True)
class ProcessState:
    """What the daemon knows about one process (``pyctr tasks ls`` shows these)."""

    container_id: str
    id: str
    pid: int
    status: TaskStatus
    exit_status: int = 0
    exited_at: datetime | None = None
    stdio: StdioPaths = StdioPaths()


@dataclass(frozen=True)
class ProcessInfo:
    """One process in a task's cgroup (``pyctr tasks ps``)."""

    pid: int
    info: any_pb2.Any | None = None


@dataclass(frozen=True)
class TaskMetrics:
    """One task's resource use; ``data`` is the decoded message (cgroups v1 Metrics)."""

    id: str
    timestamp: datetime | None
    type_url: str
    data: Message | None


def state_from_api(process: task_pb2.Process) -> ProcessState:
    return ProcessState(
        container_id=process.container_id,
        id=process.id,
        pid=process.pid,
        status=status_from_api(process.status),
        exit_status=process.exit_status,
        exited_at=from_timestamp(process.exited_at),
        stdio=StdioPaths(process.stdin, process.stdout, process.stderr, process.terminal),
    )


def metrics_from_api(metric: Any) -> TaskMetrics:
    name = metric.data.type_url.rsplit("/", 1)[-1]
    cls = _METRICS_TYPES.get(name)
    data = cls.FromString(metric.data.value) if cls is not None else None
    return TaskMetrics(metric.id, from_timestamp(metric.timestamp), metric.data.type_url, data)


class Process:
    """A process of a task; ``exec_id`` is "" for the task's init process."""

    def __init__(
        self, connection: Connection, container_id: str, exec_id: str, io: ClientIO | None
    ) -> None:
        self._conn = connection
        self._stub = tasks_pb2_grpc.TasksStub(connection.channel)
        self.container_id = container_id
        self.exec_id = exec_id
        self.io = io
        self.pid = 0
        self._exit: ExitStatus | None = None
        if io is not None:
            io.on_stdin_eof(self._close_io_remote)

    @property
    def id(self) -> str:
        return self.exec_id or self.container_id

    # -- output of capture mode ---------------------------------------------------------

    @property
    def stdout(self) -> bytes:
        """Captured stdout (``Stdio.capture``); complete once :meth:`wait` returned."""
        return self.io.stdout if self.io is not None else b""

    @property
    def stderr(self) -> bytes:
        return self.io.stderr if self.io is not None else b""

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> int:
        """Run the process; returns its pid."""
        request = api.StartRequest(container_id=self.container_id, exec_id=self.exec_id)
        reply = await self._conn.unary(self._stub.Start, request)
        self.pid = reply.pid
        if self.io is not None:
            self.io.connected()
        return self.pid

    async def wait(self) -> ExitStatus:
        """Until the process exits; its status (and, with captured output, all of it)."""
        if self._exit is None:
            request = api.WaitRequest(container_id=self.container_id, exec_id=self.exec_id)
            reply = await self._conn.unary(self._stub.Wait, request)
            self._exit = ExitStatus(reply.exit_status, from_timestamp(reply.exited_at))
        if self.io is not None:
            await self.io.wait()
        return self._exit

    async def kill(self, signal: int = signals.SIGTERM, *, all: bool = False) -> None:  # noqa: A002
        """Send ``signal``; ``all`` sends it to every process of the task."""
        request = api.KillRequest(
            container_id=self.container_id, exec_id=self.exec_id, signal=int(signal), all=all
        )
        await self._conn.unary(self._stub.Kill, request)

    async def close_stdin(self) -> None:
        """End the process's stdin (it reads end-of-file)."""
        if self.io is not None:
            await self.io.close_stdin()
        else:
            await self._close_io_remote()

    async def _close_io_remote(self) -> None:
        request = api.CloseIORequest(
            container_id=self.container_id, exec_id=self.exec_id, stdin=True
        )
        await self._conn.unary(self._stub.CloseIO, request)

    async def resize(self, width: int, height: int) -> None:
        """Set the size of the process's terminal (columns, lines)."""
        request = api.ResizePtyRequest(
            container_id=self.container_id, exec_id=self.exec_id, width=width, height=height
        )
        await self._conn.unary(self._stub.ResizePty, request)

    async def state(self) -> ProcessState:
        request = api.GetRequest(container_id=self.container_id, exec_id=self.exec_id)
        return state_from_api((await self._conn.unary(self._stub.Get, request)).process)

    async def status(self) -> TaskStatus:
        return (await self.state()).status

    async def delete(self, *, force: bool = False) -> ExitStatus:
        """Release the stopped process and return its exit status.

        ``force`` kills a running process first (SIGKILL) instead of refusing.
        """
        if force:
            await self._kill_and_wait()
        if self.io is not None:
            with contextlib.suppress(TimeoutError):
                await self.io.wait(timeout=1.0)
        paths = self.io.paths if self.io is not None else (await self._stdio_paths())
        reply = await self._delete_call()
        if self.io is not None:
            self.io.close()
        remove_fifo_dir(paths)
        return ExitStatus(reply.exit_status, from_timestamp(reply.exited_at))

    async def _stdio_paths(self) -> StdioPaths:
        try:
            return (await self.state()).stdio
        except errdefs.NotFound:
            return StdioPaths()

    async def _delete_call(self) -> api.DeleteResponse:
        raise NotImplementedError

    async def _kill_and_wait(self) -> None:
        try:
            if await self.status() is TaskStatus.STOPPED:
                return
            await self.kill(signals.SIGKILL, all=not self.exec_id)
        except errdefs.NotFound:
            return
        await self.wait()

    async def __aenter__(self) -> Process:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Kill (if running) and delete; a process already gone is fine."""
        with contextlib.suppress(errdefs.NotFound):
            await asyncio.shield(self.delete(force=True))


class ExecProcess(Process):
    """A process added to a running task by :meth:`Task.exec`."""

    async def _delete_call(self) -> api.DeleteResponse:
        request = api.DeleteProcessRequest(container_id=self.container_id, exec_id=self.exec_id)
        return await self._conn.unary(self._stub.DeleteProcess, request)


class Task(Process):
    """A container's task: its init process, and the way to add more."""

    def __init__(
        self,
        connection: Connection,
        container_id: str,
        io: ClientIO | None,
        spec: Spec | None = None,
    ) -> None:
        super().__init__(connection, container_id, "", io)
        self._spec = spec

    async def _delete_call(self) -> api.DeleteResponse:
        request = api.DeleteTaskRequest(container_id=self.container_id)
        return await self._conn.unary(self._stub.Delete, request)

    async def exec(
        self,
        exec_id: str,
        args: Sequence[str],
        *,
        stdio: Stdio | None = None,
        env: Iterable[str] = (),
        cwd: str | None = None,
        process: dict[str, Any] | None = None,
    ) -> ExecProcess:
        """Add process ``exec_id`` running ``args`` (created, call ``start``).

        It inherits the container's process settings (user, env, capabilities...);
        ``env`` entries are merged on top, ``cwd`` replaces the directory.
        ``process`` gives the whole OCI process object instead.
        """
        stdio = stdio or Stdio.null()
        if process is None:
            process = await self._exec_process(args, env, cwd, stdio.is_terminal)
        io = await create_io(stdio)
        try:
            request = api.ExecProcessRequest(
                container_id=self.container_id,
                exec_id=exec_id,
                stdin=io.paths.stdin,
                stdout=io.paths.stdout,
                stderr=io.paths.stderr,
                terminal=io.paths.terminal,
                spec=any_pb2.Any(
                    type_url=PROCESS_SPEC_TYPE_URL, value=json.dumps(process).encode()
                ),
            )
            await self._conn.unary(self._stub.Exec, request)
        except BaseException:
            io.remove()
            raise
        return ExecProcess(self._conn, self.container_id, exec_id, io)

    async def _exec_process(
        self, args: Sequence[str], env: Iterable[str], cwd: str | None, terminal: bool
    ) -> dict[str, Any]:
        if self._spec is None:
            raise errdefs.FailedPrecondition(
                f"task {self.container_id!r} has no spec to exec from: load it through its "
                "container (client.load_container(id).task())"
            )
        process = dict(self._spec.get("process") or {})
        process["args"] = list(args)
        process["env"] = merge_env(process.get("env", []), env)
        process["terminal"] = terminal
        process.pop("consoleSize", None)
        if cwd:
            process["cwd"] = cwd
        return process

    async def load_process(self, exec_id: str) -> ExecProcess:
        """A handle on the existing exec'd process ``exec_id`` (NotFound when none)."""
        process = ExecProcess(self._conn, self.container_id, exec_id, None)
        process.pid = (await process.state()).pid
        return process

    async def pids(self) -> list[ProcessInfo]:
        request = api.ListPidsRequest(container_id=self.container_id)
        reply = await self._conn.unary(self._stub.ListPids, request)
        return [ProcessInfo(p.pid, p.info if p.HasField("info") else None) for p in reply.processes]

    async def pause(self) -> None:
        await self._conn.unary(self._stub.Pause, api.PauseTaskRequest(container_id=self.id))

    async def resume(self) -> None:
        await self._conn.unary(self._stub.Resume, api.ResumeTaskRequest(container_id=self.id))

    async def metrics(self) -> TaskMetrics:
        reply = await self._conn.unary(
            self._stub.Metrics, api.MetricsRequest(filters=[f"id=={self.container_id}"])
        )
        if not reply.metrics:
            raise errdefs.NotFound(f"no metrics for task {self.container_id!r}: is it running?")
        return metrics_from_api(reply.metrics[0])


class TasksService:
    """Namespace-wide task calls (listing, metrics); per-task calls live on :class:`Task`."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = tasks_pb2_grpc.TasksStub(connection.channel)

    async def list(self) -> list[ProcessState]:
        reply = await self._conn.unary(self._stub.List, api.ListTasksRequest())
        return [state_from_api(p) for p in reply.tasks]

    async def metrics(self, filters: Iterable[str] = ()) -> builtins.list[TaskMetrics]:
        reply = await self._conn.unary(
            self._stub.Metrics, api.MetricsRequest(filters=list(filters))
        )
        return [metrics_from_api(m) for m in reply.metrics]
